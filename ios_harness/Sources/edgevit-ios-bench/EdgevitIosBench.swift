// edgevit-ios-bench: the harness as a macOS command line tool (Apple silicon Macs have the same Neural
// Engine family as iPhones). Same library, same protocol and statistics as the iOS app. The argument
// handling and the modes live in the library (Command.swift), where they are tested.
//
//   swift run -c release edgevit-ios-bench --artifacts DIR --out results.json \
//       [--rounds 20] [--iterations 50] [--warmup 1] [--trim-fraction 0.1] \
//       [--compute-units all,cpuOnly,cpuAndGPU,cpuAndNeuralEngine]
//   swift run edgevit-ios-bench --artifacts DIR --check      (any platform: is the staged folder complete?)

import EdgevitHarness
import Foundation

@main
struct EdgevitIosBench {
    static func main() async {
        let status = await BenchCommand.main(Array(CommandLine.arguments.dropFirst()), runtime: Harness.platformRuntime)
        exit(status)
    }
}
