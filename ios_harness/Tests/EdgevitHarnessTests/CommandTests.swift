// edgevit-ios-bench's argument handling and its modes, run in-process.

import Foundation
import XCTest
@testable import EdgevitHarness

final class CommandTests: FixtureTestCase {
    func testParsesEveryOption() throws {
        let options = try BenchOptions.parse(["--artifacts", "/a", "--out", "/o/r.json", "--rounds", "3", "--iterations=7",
                                              "--warmup", "0", "--trim-fraction", "0.25", "--compute-units", "all,cpuOnly"])
        XCTAssertEqual(options.artifacts?.path, "/a")
        XCTAssertEqual(options.out?.path, "/o/r.json")
        XCTAssertEqual(options.rounds, 3)
        XCTAssertEqual(options.iterations, 7)
        XCTAssertEqual(options.warmup, 0)
        XCTAssertEqual(options.trimFraction, 0.25)
        XCTAssertEqual(options.computeUnits, [.all, .cpuOnly])
        XCTAssertFalse(options.check)
        XCTAssertTrue(try BenchOptions.parse(["--artifacts", "/a", "--check"]).check)
        XCTAssertTrue(try BenchOptions.parse(["-h"]).help)
    }

    func testBadArgumentsSayWhatIsWrong() {
        let cases: [([String], String)] = [
            (["--artifacts"], "--artifacts needs a value"),
            (["--artifacts", "--out", "x"], "--artifacts needs a value"),
            (["--artifacts", "a", "--out", "o", "--rounds", "many"], "--rounds needs an integer, got \"many\""),
            (["--artifacts", "a", "--out", "o", "--trim-fraction", "nan"], "--trim-fraction needs a number, got \"nan\""),
            (["--artifacts", "a", "--out", "o", "--compute-units", "gpu"],
             "unknown compute unit \"gpu\"; choose from cpuOnly, cpuAndGPU, cpuAndNeuralEngine, all"),
            (["--artifacts", "a", "--out", "o", "--compute-units", ","], "--compute-units needs at least one unit"),
            (["--artifacts", "a", "--out", "o", "--fast"], "unknown argument --fast"),
            (["--out", "o"], "--artifacts DIR is required"),
            (["--artifacts", "a"], "--out FILE is required (or --check to only check the folder)"),
        ]
        for (args, message) in cases {
            XCTAssertThrowsError(try BenchOptions.parse(args), "\(args)") { error in
                XCTAssertEqual(error as? HarnessError, .badArgument(message))
            }
        }
    }

    func run(_ args: [String], runtime: (any ModelRuntime)?) async -> (Int32, [String], [String]) {
        var out: [String] = []
        var err: [String] = []
        let status = await BenchCommand.main(args, runtime: runtime, out: { out.append($0) }, err: { err.append($0) })
        return (status, out, err)
    }

    func testCheckPrintsThePlanAndExitsZero() async {
        let (status, out, err) = await run(["--artifacts", artifacts.path, "--check", "--rounds", "2"], runtime: nil)
        XCTAssertEqual(status, 0, "\(err)")
        XCTAssertEqual(out.first, "\(artifacts.path): 2 artifact(s); 1 warm-up + 2 x 50 iterations, trim fraction 0.1, "
                       + "on cpuOnly, cpuAndGPU, cpuAndNeuralEngine, all")
        XCTAssertEqual(out.last, "ok: the staged folder is complete")
        XCTAssertEqual(err, [])
    }

    func testCheckOfABrokenFolderExitsTwo() async throws {
        try FileManager.default.removeItem(at: artifacts.appendingPathComponent("tiny-tensor.coreml.fp32.json"))
        let (status, _, err) = await run(["--artifacts", artifacts.path, "--check"], runtime: nil)
        XCTAssertEqual(status, 2)
        XCTAssertEqual(err.first, "problem: tiny-tensor.coreml.fp32.mlpackage: manifest tiny-tensor.coreml.fp32.json not "
                       + "found beside the artifact; stage artifacts made by `edgevit convert`")
        XCTAssertEqual(err.last, "1 problem(s); re-stage with `edgevit harness ios`")
    }

    func testBadConfigAndBadArgumentsExitTwoWithUsage() async throws {
        try Data("{\"format\": \"edgevit-ios-config/1\"}".utf8).write(to: artifacts.appendingPathComponent("config.json"))
        let (status, _, err) = await run(["--artifacts", artifacts.path, "--check"], runtime: nil)
        XCTAssertEqual(status, 2)
        XCTAssertEqual(err.first, "error: config.json: missing key \"rounds\"")
        let (status2, _, err2) = await run(["--nope"], runtime: nil)
        XCTAssertEqual(status2, 2)
        XCTAssertTrue(err2.last?.contains("usage: edgevit-ios-bench") ?? false)
        try FileManager.default.removeItem(at: artifacts.appendingPathComponent("config.json"))  // scan the folder
        let (status3, _, err3) = await run(["--artifacts", artifacts.path, "--out", "r.json", "--iterations", "0"],
                                           runtime: nil)
        XCTAssertEqual(status3, 2)
        XCTAssertEqual(err3.first, "error: iterations must be at least 1, got 0")
    }

    func testRunWithoutCoreMLSaysWhereToRun() async {
        let out = scratch.url.appendingPathComponent("r.json").path
        let (status, _, err) = await run(["--artifacts", artifacts.path, "--out", out], runtime: nil)
        XCTAssertEqual(status, 1)
        XCTAssertTrue(err.first?.contains("no CoreML runtime") ?? false, "\(err)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testRunWritesResultsAndExitStatusReflectsFailures() async throws {
        let out = scratch.url.appendingPathComponent("run/results.json")
        var args = ["--artifacts", artifacts.path, "--out", out.path, "--rounds", "1", "--iterations", "3",
                    "--compute-units", "cpuOnly"]
        let (status, lines, err) = await run(args, runtime: ScriptedRuntime())
        XCTAssertEqual(status, 0, "\(err)")
        XCTAssertTrue(lines.contains("results: \(out.path)"))
        let doc = try JSONDecoder().decode(ResultsDocument.self, from: Data(contentsOf: out))
        XCTAssertEqual(doc.results.map(\.status), ["ok", "ok"])
        XCTAssertEqual(doc.results.map(\.iterations), [1, 1])

        args[args.count - 1] = "cpuOnly,cpuAndGPU"
        var failing = ScriptedRuntime()
        failing.failLoad = [.cpuAndGPU]
        let (status2, _, err2) = await run(args, runtime: failing)
        XCTAssertEqual(status2, 1)
        XCTAssertEqual(err2, ["2 of 4 runs failed; see the error field in \(out.path)"])
    }
}
