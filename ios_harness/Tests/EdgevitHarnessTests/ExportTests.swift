// Files for the Python side to judge. tests/test_ios_harness.py runs this test with
//   EDGEVIT_SWIFT_ARTIFACTS = a folder staged by `edgevit harness ios` (config.json, manifests, validation)
//   EDGEVIT_SWIFT_EXPORT    = where to write results.json and the device-outputs files
// and then validates results.json with schema.json and `edgevit report`, and the device outputs with
// `edgevit validate --device-outputs`. Without them it runs on the fixtures into a scratch folder.

import Foundation
import XCTest
@testable import EdgevitHarness

final class ExportTests: XCTestCase {
    func testSessionOnStagedFolderForPython() async throws {
        let env = ProcessInfo.processInfo.environment
        let scratch = try ScratchFolder()
        defer { scratch.remove() }
        let artifacts = try env["EDGEVIT_SWIFT_ARTIFACTS"].map { URL(fileURLWithPath: $0) } ?? scratch.fixtures()
        let export = env["EDGEVIT_SWIFT_EXPORT"].map { URL(fileURLWithPath: $0) } ?? scratch.url.appendingPathComponent("export")

        let config = try Staging.config(in: artifacts)  // as staged: rounds, iterations, units
        XCTAssertEqual(Staging.problems(in: config, at: artifacts), [])
        var runtime = ScriptedRuntime()
        runtime.failLoad = [.cpuAndGPU]  // a failed result too, whose unmeasured fields must be null
        runtime.warnings = ["scripted runtime: outputs are 2 x the input"]
        let harness = Harness(config: config, artifactsDir: artifacts, runtime: runtime, device: DeviceProbe.current(),
                              clock: runtime.timeline.now, memory: { 150 << 20 }, log: { _ in })
        let document = try await harness.run(resultsFile: export.appendingPathComponent("results.json"))
        XCTAssertFalse(document.results.isEmpty)
        XCTAssertTrue(document.results.contains { $0.status == "ok" })
        XCTAssertTrue(document.results.contains { $0.status == "failed" } == config.computeUnits.contains(.cpuAndGPU))
    }
}
