// edgevit-ios-bench: the harness as a macOS command line tool (Apple silicon Macs have the same Neural
// Engine family as iPhones). Same library, same protocol and statistics as the iOS app.
//
//   swift run -c release edgevit-ios-bench --artifacts DIR --out results.json \
//       [--rounds 20] [--iterations 50] [--warmup 1] [--trim-fraction 0.1] \
//       [--compute-units all,cpuOnly,cpuAndGPU,cpuAndNeuralEngine]

import EdgevitHarness
import Foundation

let usage = """
usage: edgevit-ios-bench --artifacts DIR --out FILE [--rounds N] [--iterations N] [--warmup N]
                         [--trim-fraction F] [--compute-units all,cpuOnly,cpuAndGPU,cpuAndNeuralEngine]

Benchmarks every CoreML artifact in DIR (config.json from `edgevit harness ios` if present, else every
.mlpackage/.mlmodelc with its manifest) on each compute unit, and writes FILE in edgevit's results schema
plus <artifact>[.<unit>].device-outputs.json beside it. Options override config.json.
"""

struct Options {
    var artifacts: URL?
    var out: URL?
    var rounds: Int?
    var iterations: Int?
    var warmup: Int?
    var trimFraction: Double?
    var computeUnits: [ComputeUnit]?
}

func parse(_ args: [String]) throws -> Options {
    var options = Options()
    var i = 0
    func value(_ flag: String) throws -> String {
        i += 1
        guard i < args.count else { throw HarnessError.badArgument("\(flag) needs a value") }
        return args[i]
    }
    func integer(_ flag: String) throws -> Int {
        let text = try value(flag)
        guard let n = Int(text) else { throw HarnessError.badArgument("\(flag) needs an integer, got \(text)") }
        return n
    }
    while i < args.count {
        let flag = args[i]
        switch flag {
        case "--artifacts": options.artifacts = URL(fileURLWithPath: try value(flag), isDirectory: true)
        case "--out": options.out = URL(fileURLWithPath: try value(flag))
        case "--rounds": options.rounds = try integer(flag)
        case "--iterations": options.iterations = try integer(flag)
        case "--warmup": options.warmup = try integer(flag)
        case "--trim-fraction":
            let text = try value(flag)
            guard let f = Double(text) else { throw HarnessError.badArgument("--trim-fraction needs a number") }
            options.trimFraction = f
        case "--compute-units": options.computeUnits = try ComputeUnit.parseList(try value(flag))
        case "-h", "--help":
            print(usage)
            exit(0)
        default:
            throw HarnessError.badArgument("unknown argument \(flag)")
        }
        i += 1
    }
    return options
}

@main
struct EdgevitIosBench {
    static func main() async {
        do {
            let options = try parse(Array(CommandLine.arguments.dropFirst()))
            guard let artifacts = options.artifacts, let out = options.out else {
                throw HarnessError.badArgument("--artifacts and --out are required")
            }
            var config = try Staging.config(in: artifacts)
            if let v = options.rounds { config.rounds = v }
            if let v = options.iterations { config.iterations = v }
            if let v = options.warmup { config.warmup = v }
            if let v = options.trimFraction { config.trimFraction = v }
            if let v = options.computeUnits { config.computeUnits = v }
            try config.validate()
            let document = try await Harness(config: config, artifactsDir: artifacts).run(resultsFile: out)
            let failed = document.results.filter { $0.status == "failed" }.count
            if failed > 0 {
                let message = "\(failed) of \(document.results.count) runs failed; see the error field in \(out.path)\n"
                FileHandle.standardError.write(Data(message.utf8))
                exit(1)
            }
        } catch let error as HarnessError {
            FileHandle.standardError.write(Data("error: \(error)\n\n\(usage)\n".utf8))
            exit(2)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        }
    }
}
