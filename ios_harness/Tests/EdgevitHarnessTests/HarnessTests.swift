// End to end on two tiny CoreML models (Resources/Fixtures, made by tests/test_ios_harness.py with
// coremltools): a tensor-input model with logits and an image-input classifier whose labels repeat.
// expected_outputs.json holds what PyTorch computed on the validation inputs. CoreML exists only on
// Apple platforms, so these tests are compiled there only (`swift test` on a Mac, or ⌘U in Xcode).

#if canImport(CoreML)
import XCTest
@testable import EdgevitHarness

final class HarnessTests: XCTestCase {
    var scratch: ScratchFolder!
    var artifacts: URL!
    var workDir: URL { scratch.url }

    override func setUpWithError() throws {
        scratch = try ScratchFolder()
        artifacts = try scratch.fixtures()
    }

    override func tearDownWithError() throws {
        scratch.remove()
    }

    struct Expected: Decodable {
        var outputs: [String: [Float]]
        var labels: [String]?
    }

    func expected() throws -> [String: Expected] {
        let data = try Data(contentsOf: artifacts.appendingPathComponent("expected_outputs.json"))
        return try JSONDecoder().decode([String: Expected].self, from: data)
    }

    func relL2(_ a: [Float], _ b: [Float]) -> Double {
        var diff = 0.0, norm = 0.0
        for (x, y) in zip(a, b) {
            diff += Double(x - y) * Double(x - y)
            norm += Double(y) * Double(y)
        }
        return (diff / max(norm, 1e-30)).squareRoot()
    }

    func deviceOutputs(_ name: String) throws -> DeviceOutputs {
        let url = workDir.appendingPathComponent("out").appendingPathComponent(name)
        return try JSONDecoder().decode(DeviceOutputs.self, from: Data(contentsOf: url))
    }

    func testRunsFixturesWritesResultsAndDeviceOutputs() async throws {
        var config = try Staging.config(in: artifacts)  // config.json written by `edgevit harness ios`
        XCTAssertEqual(config.artifacts.map(\.artifact),
                       ["tiny-image.coreml.fp32.mlpackage", "tiny-tensor.coreml.fp32.mlpackage"])
        config.rounds = 2
        config.iterations = 5
        config.computeUnits = [.cpuOnly, .all]
        let resultsFile = workDir.appendingPathComponent("out/results.json")
        let document = try await Harness(config: config, artifactsDir: artifacts, runtime: CoreMLRuntime())
            .run(resultsFile: resultsFile)

        XCTAssertEqual(document.results.count, 4)
        for r in document.results {
            XCTAssertEqual(r.status, "ok", r.error ?? "")
            XCTAssertEqual(r.iterations, 2 * (5 - 2))  // each round drops its highest and lowest time
            XCTAssertEqual(r.perIterationMs.count, r.iterations)
            XCTAssertEqual(r.medianMs, Stats.median(r.perIterationMs))
            XCTAssertNotNil(r.p90Ms)
            XCTAssertNotNil(r.loadTimeMs)
            XCTAssertEqual(r.memoryKind, "phys_footprint")
            XCTAssertEqual(r.form, "coreml")
            XCTAssertEqual(r.runtime, "coreml")
            XCTAssertEqual(r.inputShape, [1, 3, 16, 16])
            XCTAssertEqual(r.artifactSha256?.count, 64)
        }
        XCTAssertEqual(document.results.compactMap(\.computeUnit), ["cpuOnly", "all", "cpuOnly", "all"])
        let onDisk = try JSONDecoder().decode(ResultsDocument.self, from: Data(contentsOf: resultsFile))
        XCTAssertEqual(onDisk, document)

        let expected = try expected()
        // Tensor model: logits on photos and random tensors; fp32 on the CPU matches PyTorch closely.
        let tensorRef = try XCTUnwrap(expected["tiny-tensor.coreml.fp32.mlpackage"])
        for (file, tolerance) in [("tiny-tensor.coreml.fp32.cpuOnly.device-outputs.json", 1e-4),
                                  ("tiny-tensor.coreml.fp32.device-outputs.json", 1e-2)] {
            let outputs = try deviceOutputs(file)
            XCTAssertEqual(outputs.format, "edgevit-device-outputs/2")
            XCTAssertNil(outputs.error)
            XCTAssertEqual(Set(outputs.outputs.map(\.name)), Set(tensorRef.outputs.keys))
            for o in outputs.outputs {
                XCTAssertEqual(o.shape, [1, 10])
                XCTAssertLessThan(relL2(o.values, try XCTUnwrap(tensorRef.outputs[o.name])), tolerance, "\(file) \(o.name)")
            }
            XCTAssertTrue(outputs.warnings.isEmpty)
        }
        // Image classifier: only inputs with a PNG; probabilities read in class-label order from the
        // {label: p} dictionary; the repeated label "crane" is reported.
        let imageRef = try XCTUnwrap(expected["tiny-image.coreml.fp32.mlpackage"])
        let outputs = try deviceOutputs("tiny-image.coreml.fp32.cpuOnly.device-outputs.json")
        XCTAssertEqual(Set(outputs.outputs.map(\.name)), ["photo_0", "photo_1"])
        XCTAssertFalse(outputs.warnings.isEmpty)
        for o in outputs.outputs {
            let ref = try XCTUnwrap(imageRef.outputs[o.name])
            XCTAssertEqual(o.values.count, 10)
            for i in 0..<8 {  // 8 and 9 share the label "crane"
                XCTAssertEqual(o.values[i], ref[i], accuracy: 2e-3, "\(o.name) class \(i)")
            }
        }
    }

    func testPteIsNotRunAndMissingArtifactFailsWithoutStoppingTheRun() async throws {
        let manifest = artifacts.appendingPathComponent("tiny-tensor.coreml.fp32.json")
        try FileManager.default.copyItem(at: manifest, to: artifacts.appendingPathComponent("m.executorch.coreml.fp16.json"))
        try Data("not a program".utf8).write(to: artifacts.appendingPathComponent("m.executorch.coreml.fp16.pte"))
        try FileManager.default.copyItem(at: manifest, to: artifacts.appendingPathComponent("ghost.coreml.fp32.json"))
        var config = HarnessConfig(rounds: 1, iterations: 3, computeUnits: [.cpuOnly])
        config.artifacts = [
            ArtifactEntry(artifact: "m.executorch.coreml.fp16.pte", kind: .pte, manifest: "m.executorch.coreml.fp16.json",
                          validation: nil),
            ArtifactEntry(artifact: "ghost.coreml.fp32.mlpackage", kind: .mlpackage, manifest: "ghost.coreml.fp32.json",
                          validation: nil),
            ArtifactEntry(artifact: "tiny-tensor.coreml.fp32.mlpackage", kind: .mlpackage,
                          manifest: "tiny-tensor.coreml.fp32.json", validation: nil),
        ]
        let document = try await Harness(config: config, artifactsDir: artifacts, runtime: CoreMLRuntime())
            .run(resultsFile: workDir.appendingPathComponent("out/results.json"))
        XCTAssertEqual(document.results.map(\.status), ["not_run", "failed", "ok"])
        XCTAssertEqual(document.results[0].form, "executorch")
        XCTAssertNil(document.results[0].computeUnit)
        XCTAssertTrue(document.results[1].error?.contains("not found") ?? false)
        XCTAssertEqual(document.results[2].iterations, 1)  // 3 times, highest and lowest dropped
    }
}
#endif
