// The app's screen state (BenchRunner, @MainActor): a run goes off the main actor and its log comes back
// in order; what the app shows before, during and after.

import Foundation
import XCTest
@testable import EdgevitHarness

@MainActor
final class BenchRunnerTests: XCTestCase {
    func testRunWritesResultsLogAndReportsPhases() async throws {
        let scratch = try ScratchFolder()
        defer { scratch.remove() }
        let staged = try scratch.fixtures()
        let out = scratch.url.appendingPathComponent("Documents/edgevit")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("old".utf8).write(to: out.appendingPathComponent("stale.device-outputs.json"))
        // a short run: 1 round x 3 iterations on one unit
        var config = try jsonObject(staged.appendingPathComponent("config.json"))
        config["rounds"] = 1
        config["iterations"] = 3
        config["compute_units"] = ["cpuOnly"]
        config["autostart"] = true
        try JSONSerialization.data(withJSONObject: config).write(to: staged.appendingPathComponent("config.json"))

        let runner = BenchRunner(stagedFolder: staged, runtime: ScriptedRuntime(), outputFolder: { out })
        XCTAssertTrue(runner.autostart)
        XCTAssertEqual(runner.summary, "2 artifact(s); 1 warm-up + 1 x 3 iterations on cpuOnly")
        var running: [Bool] = []
        runner.onRunningChanged = { running.append($0) }
        let task = try XCTUnwrap(runner.start())
        XCTAssertEqual(runner.phase, .running)
        XCTAssertNil(runner.start(), "a second start while running is ignored")
        await task.value
        XCTAssertEqual(runner.phase, .finished)
        XCTAssertEqual(running, [true, false])
        XCTAssertEqual(runner.resultsFile, out.appendingPathComponent("results.json"))
        XCTAssertTrue(runner.lines.first?.hasPrefix("edgevit iOS harness") ?? false)
        XCTAssertEqual(runner.lines.last, "results: \(out.appendingPathComponent("results.json").path)")
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: out.path))
        XCTAssertFalse(names.contains("stale.device-outputs.json"), "an earlier run's files are removed")
        XCTAssertTrue(names.isSuperset(of: ["results.json", "run.log", "tiny-tensor.coreml.fp32.device-outputs.json"]))
        let log = try String(contentsOf: out.appendingPathComponent("run.log"), encoding: .utf8)
        XCTAssertEqual(log, runner.lines.joined(separator: "\n") + "\n")
    }

    func testWithoutStagedArtifactsOrRuntime() throws {
        let none = BenchRunner(stagedFolder: nil, runtime: ScriptedRuntime())
        XCTAssertTrue(none.summary.hasPrefix("No staged artifacts in this build"))
        XCTAssertFalse(none.autostart)
        XCTAssertNil(none.start())
        XCTAssertEqual(none.phase, .failed("no staged artifacts in the app"))

        let scratch = try ScratchFolder()
        defer { scratch.remove() }
        let noRuntime = BenchRunner(stagedFolder: try scratch.fixtures(), runtime: nil)
        XCTAssertNil(noRuntime.start())
        XCTAssertEqual(noRuntime.phase, .failed("this build has no CoreML runtime"))
    }

    func testAFailedRunSaysWhy() async throws {
        let scratch = try ScratchFolder()
        defer { scratch.remove() }
        let staged = try scratch.fixtures()
        try Data("{\"format\": \"edgevit-ios-config/0\"}".utf8).write(to: staged.appendingPathComponent("config.json"))
        let runner = BenchRunner(stagedFolder: staged, runtime: ScriptedRuntime(),
                                 outputFolder: { scratch.url.appendingPathComponent("out") })
        XCTAssertTrue(runner.summary.hasPrefix("The staged config cannot be used: config.json has format"))
        try FileManager.default.createDirectory(at: scratch.url.appendingPathComponent("out"), withIntermediateDirectories: true)
        await runner.start()?.value
        guard case .failed(let why) = runner.phase else { return XCTFail("\(runner.phase)") }
        XCTAssertTrue(why.contains("this harness reads edgevit-ios-config/1"), why)
        XCTAssertEqual(runner.lines, ["error: \(why)"])
    }
}
