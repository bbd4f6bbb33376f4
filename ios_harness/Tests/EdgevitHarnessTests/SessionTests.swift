// A whole session (artifacts x compute units, the timing protocol, the statistics, results.json and the
// device-outputs files) on the scripted runtime: the same Harness code the app and the Mac tool run, with
// only the model call replaced, so it runs on Linux too.

import Foundation
import XCTest
@testable import EdgevitHarness

final class SessionTests: FixtureTestCase {
    func harness(_ config: HarnessConfig, _ runtime: ScriptedRuntime = ScriptedRuntime(),
                 memory: @escaping () -> UInt64? = { nil }, log: @escaping (String) -> Void = { _ in }) -> Harness {
        Harness(config: config, artifactsDir: artifacts, runtime: runtime, device: testDevice,
                clock: runtime.timeline.now, memory: memory, log: log)
    }

    func testTimingProtocolDropsEachRoundsExtremesAndPoolsTheRest() throws {
        var k = 0
        var now: UInt64 = 0
        var between = 0
        let rounds = try TimingProtocol(rounds: 3, iterations: 5, warmup: 2).measure(
            clock: { now }, predict: { now += FakeTimeline.duration(k); k += 1 }, between: { between += 1 })
        XCTAssertEqual(k, 2 + 15)  // warm-up predictions are run but not timed
        XCTAssertEqual(between, 15)
        let expected = (0..<3).map { r in (0..<5).map { i in Double(FakeTimeline.duration(2 + 5 * r + i)) / 1e6 } }
        XCTAssertEqual(rounds, expected)
        XCTAssertEqual(Stats.protocolSamples(rounds).count, 3 * 3)
    }

    func testSessionWritesResultsAndDeviceOutputs() async throws {
        var config = try Staging.config(in: artifacts)  // config.json written by `edgevit harness ios`
        config.rounds = 4
        config.iterations = 6
        config.warmup = 1
        config.computeUnits = [.cpuOnly, .all]
        let runtime = ScriptedRuntime()
        var lines: [String] = []
        var footprint: UInt64 = 100 << 20
        let resultsFile = scratch.url.appendingPathComponent("out/results.json")
        let document = try await harness(config, runtime, memory: { footprint += 1 << 20; return footprint },
                                         log: { lines.append($0) }).run(resultsFile: resultsFile)

        XCTAssertEqual(document.harness, "ios")
        XCTAssertEqual(document.results.map(\.artifact),
                       ["tiny-image.coreml.fp32.mlpackage", "tiny-image.coreml.fp32.mlpackage",
                        "tiny-tensor.coreml.fp32.mlpackage", "tiny-tensor.coreml.fp32.mlpackage"])
        XCTAssertEqual(document.results.compactMap(\.computeUnit), ["cpuOnly", "all", "cpuOnly", "all"])
        for r in document.results {
            XCTAssertEqual(r.status, "ok", r.error ?? "")
            XCTAssertNil(r.error)
            XCTAssertEqual(r.iterations, 4 * (6 - 2))  // each round drops its highest and lowest time
            XCTAssertEqual(r.perIterationMs.count, r.iterations)
            let summary = try Stats.summarize(r.perIterationMs, trimFraction: config.trimFraction)
            XCTAssertEqual(r.medianMs, summary.medianMs)
            XCTAssertEqual(r.trimmedMeanMs, summary.trimmedMeanMs)
            XCTAssertEqual(r.p90Ms, summary.p90Ms)
            XCTAssertEqual(r.loadTimeMs, 3.0)
            XCTAssertEqual(r.memoryKind, "phys_footprint")
            XCTAssertGreaterThan(try XCTUnwrap(r.peakMemoryMb), 100)
            XCTAssertEqual(r.warmup, 1)
            XCTAssertEqual(r.device, testDevice)
            XCTAssertEqual([r.form, r.runtime], ["coreml", "coreml"])
            XCTAssertNil(r.backend)
            XCTAssertEqual(r.inputShape, [1, 3, 16, 16])
            XCTAssertEqual(r.batch, 1)
            XCTAssertEqual(r.precision, "fp32")
            XCTAssertEqual(r.artifactSha256?.count, 64)
            XCTAssertEqual(r.toolVersions["edgevit-ios-harness"], harnessVersion)
            XCTAssertEqual(r.toolVersions["converted-with-coremltools"], "9.0")
        }
        // The per-iteration samples are exactly the protocol's: prediction k took duration(k).
        var k = 0
        var expected: [[Double]] = []
        for _ in document.results {
            k += 1  // warm-up
            var rounds: [[Double]] = []
            for _ in 0..<4 {
                rounds.append((0..<6).map { i in Double(FakeTimeline.duration(k + i)) / 1e6 })
                k += 6
            }
            expected.append(Stats.protocolSamples(rounds))  // validation predictions are not timed
        }
        XCTAssertEqual(document.results.map(\.perIterationMs), expected)
        XCTAssertEqual(runtime.timeline.predictions, 4 * (1 + 24))

        let onDisk = try JSONDecoder().decode(ResultsDocument.self, from: Data(contentsOf: resultsFile))
        XCTAssertEqual(onDisk, document)
        XCTAssertTrue(lines.contains { $0.contains("[2/2] tiny-tensor.coreml.fp32.mlpackage") })
        XCTAssertTrue(lines.contains { $0.hasPrefix("  cpuOnly: load 3.0 ms, median") })

        // Device outputs: one file per unit, and the unsuffixed one from "all".
        let out = resultsFile.deletingLastPathComponent()
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: out.path))
        XCTAssertEqual(names, ["results.json",
                               "tiny-image.coreml.fp32.device-outputs.json", "tiny-image.coreml.fp32.cpuOnly.device-outputs.json",
                               "tiny-image.coreml.fp32.all.device-outputs.json",
                               "tiny-tensor.coreml.fp32.device-outputs.json", "tiny-tensor.coreml.fp32.cpuOnly.device-outputs.json",
                               "tiny-tensor.coreml.fp32.all.device-outputs.json"])
        let tensor = try JSONDecoder().decode(
            DeviceOutputs.self, from: Data(contentsOf: out.appendingPathComponent("tiny-tensor.coreml.fp32.device-outputs.json")))
        XCTAssertEqual(tensor.format, "edgevit-device-outputs/2")
        XCTAssertEqual(tensor.computeUnit, "all")
        XCTAssertEqual(tensor.outputs.map(\.name), ["photo_0", "photo_1", "random_0", "random_1"])
        XCTAssertNil(tensor.error)
        XCTAssertEqual(tensor.warnings, [])
        let bundle = artifacts.appendingPathComponent("tiny-tensor.coreml.fp32.validation")
        XCTAssertEqual(tensor.outputs[2].values, try readFloat32(bundle.appendingPathComponent("random_0.f32")).map { $0 * 2 })
        XCTAssertEqual(tensor.outputs[2].shape, [1, 3, 16, 16])
        let image = try JSONDecoder().decode(
            DeviceOutputs.self,
            from: Data(contentsOf: out.appendingPathComponent("tiny-image.coreml.fp32.cpuOnly.device-outputs.json")))
        XCTAssertEqual(image.outputs.map(\.name), ["photo_0", "photo_1"])  // an image model takes no random tensor
        XCTAssertEqual(image.computeUnit, "cpuOnly")
    }

    func testFailuresAreRecordedAndTheRunGoesOn() async throws {
        let manifest = artifacts.appendingPathComponent("tiny-tensor.coreml.fp32.json")
        try FileManager.default.copyItem(at: manifest, to: artifacts.appendingPathComponent("m.executorch.coreml.fp16.json"))
        try Data("not a program".utf8).write(to: artifacts.appendingPathComponent("m.executorch.coreml.fp16.pte"))
        try FileManager.default.copyItem(at: manifest, to: artifacts.appendingPathComponent("ghost.coreml.fp32.json"))
        var config = HarnessConfig(rounds: 1, iterations: 3, computeUnits: [.cpuOnly, .cpuAndGPU])
        config.artifacts = [
            ArtifactEntry(artifact: "m.executorch.coreml.fp16.pte", kind: .pte, manifest: "m.executorch.coreml.fp16.json",
                          validation: nil),
            ArtifactEntry(artifact: "ghost.coreml.fp32.mlpackage", kind: .mlpackage, manifest: "ghost.coreml.fp32.json",
                          validation: nil),
            ArtifactEntry(artifact: "tiny-image.coreml.fp32.mlpackage", kind: .mlpackage,
                          manifest: "no-such-manifest.json", validation: nil),
            ArtifactEntry(artifact: "tiny-tensor.coreml.fp32.mlpackage", kind: .mlpackage,
                          manifest: "tiny-tensor.coreml.fp32.json", validation: "tiny-tensor.coreml.fp32.validation"),
        ]
        var runtime = ScriptedRuntime()
        runtime.failLoad = [.cpuAndGPU]
        runtime.failInputs = ["random_0"]
        runtime.nonFinite = ["photo_1"]
        let resultsFile = scratch.url.appendingPathComponent("out/results.json")
        let document = try await harness(config, runtime).run(resultsFile: resultsFile)
        XCTAssertEqual(document.results.map(\.status), ["not_run", "failed", "failed", "failed", "ok", "failed"])
        XCTAssertEqual(document.results[0].form, "executorch")
        XCTAssertNil(document.results[0].computeUnit)
        XCTAssertTrue(document.results[0].error?.contains("no ExecuTorch runtime") ?? false)
        XCTAssertEqual(document.results[1].error, "compiling the model failed: artifact ghost.coreml.fp32.mlpackage "
                       + "not found in \(artifacts.path)")
        XCTAssertTrue(document.results[3].error?.contains("manifest no-such-manifest.json not found") ?? false)
        XCTAssertEqual(document.results[4].iterations, 1)  // 3 times, highest and lowest dropped
        XCTAssertEqual(document.results[4].memoryKind, nil)  // no footprint probe: null, not 0
        XCTAssertEqual(document.results[4].peakMemoryMb, nil)
        let failed = document.results[5]
        XCTAssertEqual(failed.error, "scripted load failure on cpuAndGPU")
        XCTAssertEqual(failed.loadTimeMs, nil)
        XCTAssertEqual(failed.perIterationMs, [])
        XCTAssertEqual(failed.medianMs, nil)

        // The outputs so far, and why the rest are missing; NaN/inf written as null.
        let file = resultsFile.deletingLastPathComponent().appendingPathComponent("tiny-tensor.coreml.fp32.device-outputs.json")
        let outputs = try JSONDecoder().decode(DeviceOutputs.self, from: Data(contentsOf: file))
        XCTAssertEqual(outputs.computeUnit, "cpuOnly")  // "all" did not run: the first unit that did
        XCTAssertEqual(outputs.outputs.map(\.name), ["photo_0", "photo_1"])
        XCTAssertEqual(outputs.error, "validation input random_0 failed: scripted failure")
        let raw = try jsonObject(file)
        let values = try XCTUnwrap(((raw["outputs"] as? [[String: Any]])?[1])?["values"] as? [Any])
        XCTAssertTrue(values[0] is NSNull && values[1] is NSNull)
        XCTAssertTrue(outputs.outputs[1].values[0].isNaN)
    }

    func testResultsFileIsRewrittenAfterEveryArtifact() async throws {
        var config = try Staging.config(in: artifacts)
        (config.rounds, config.iterations, config.computeUnits) = (1, 1, [.all])
        let resultsFile = scratch.url.appendingPathComponent("results.json")
        var seen: [Int] = []
        let h = harness(config, log: { line in
            if line.hasPrefix("[2/2]"), let doc = try? JSONDecoder().decode(
                ResultsDocument.self, from: Data(contentsOf: resultsFile)) {
                seen.append(doc.results.count)
            }
        })
        try await h.run(resultsFile: resultsFile)
        XCTAssertEqual(seen, [1])  // while the second artifact runs, the first one's result is on disk
    }

    func testEmptyConfigStillWritesAResultsFile() async throws {
        let resultsFile = scratch.url.appendingPathComponent("empty/results.json")
        let document = try await harness(HarnessConfig()).run(resultsFile: resultsFile)
        XCTAssertEqual(document.results, [])
        XCTAssertEqual((try jsonObject(resultsFile)["results"] as? [Any])?.count, 0)
    }
}
