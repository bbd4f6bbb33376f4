// config.json and the validation bundles as `edgevit harness ios` and `edgevit convert` write them load
// here; a bad file is refused with a message naming the file, the key and what was expected.

import Foundation
import XCTest
@testable import EdgevitHarness

final class ConfigTests: FixtureTestCase {
    /// Resources/Fixtures/config.json is what edgevit/bench/device/ios.py wrote for the fixtures
    /// (tests/test_ios_harness.py checks it is still what it writes).
    func testLoadsTheConfigEdgevitHarnessIosWrites() throws {
        let config = try HarnessConfig.load(from: artifacts.appendingPathComponent("config.json"))
        XCTAssertEqual(config.format, "edgevit-ios-config/1")
        XCTAssertEqual([config.rounds, config.iterations, config.warmup], [20, 50, 1])
        XCTAssertEqual(config.trimFraction, 0.1)
        XCTAssertEqual(config.computeUnits, [.cpuOnly, .cpuAndGPU, .cpuAndNeuralEngine, .all])
        XCTAssertEqual(config.autostart, false)
        XCTAssertEqual(config.artifacts, [
            ArtifactEntry(artifact: "tiny-image.coreml.fp32.mlpackage", kind: .mlpackage,
                          manifest: "tiny-image.coreml.fp32.json", validation: "tiny-image.coreml.fp32.validation"),
            ArtifactEntry(artifact: "tiny-tensor.coreml.fp32.mlpackage", kind: .mlpackage,
                          manifest: "tiny-tensor.coreml.fp32.json", validation: "tiny-tensor.coreml.fp32.validation"),
        ])
        XCTAssertEqual(try Staging.config(in: artifacts), config)
        XCTAssertEqual(Staging.problems(in: config, at: artifacts), [])
    }

    func testLoadsManifestsAndValidationBundles() throws {
        let manifest = try ArtifactManifest.load(from: artifacts.appendingPathComponent("tiny-image.coreml.fp32.json"))
        XCTAssertEqual(manifest.input.kind, "image")
        XCTAssertEqual(manifest.input.shape, [1, 3, 16, 16])
        XCTAssertEqual(manifest.output.kind, "probabilities")
        let index = try ValidationIndex.load(from: artifacts.appendingPathComponent("tiny-image.coreml.fp32.validation"))
        XCTAssertEqual(index.inputs.map(\.name), ["photo_0", "photo_1", "random_0", "random_1"])
        XCTAssertEqual(index.inputs[0], ValidationIndex.Entry(name: "photo_0", image: "photo_0.png", tensor: "photo_0.f32",
                                                              shape: [1, 3, 16, 16]))
        XCTAssertNil(index.inputs[2].image)
        XCTAssertEqual(index.outputShape, [1, 10])
    }

    func testScanningWithoutConfigFindsArtifactsWithManifests() throws {
        try FileManager.default.removeItem(at: artifacts.appendingPathComponent("config.json"))
        try Data().write(to: artifacts.appendingPathComponent("orphan.coreml.fp16.mlmodelc"))  // no manifest: skipped
        let config = try Staging.config(in: artifacts)
        XCTAssertEqual(config.artifacts.map(\.artifact), ["tiny-image.coreml.fp32.mlpackage", "tiny-tensor.coreml.fp32.mlpackage"])
        XCTAssertEqual([config.rounds, config.iterations], [20, 50])
        let empty = scratch.url.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try Staging.config(in: empty)) { error in
            XCTAssertTrue("\(error)".contains("has no config.json and no .mlpackage/.mlmodelc"), "\(error)")
        }
        XCTAssertThrowsError(try Staging.config(in: scratch.url.appendingPathComponent("nope"))) { error in
            XCTAssertTrue("\(error)".hasSuffix("nope does not exist"), "\(error)")
        }
    }

    func configText(_ edit: (inout [String: Any]) -> Void) throws -> Data {
        var object = try jsonObject(artifacts.appendingPathComponent("config.json"))
        edit(&object)
        return try JSONSerialization.data(withJSONObject: object)
    }

    /// `prefix`: Foundation's own wording follows (it differs between Foundation versions).
    func assertRefused(_ data: Data, _ message: String, prefix: Bool = false, file: StaticString = #filePath,
                       line: UInt = #line) {
        XCTAssertThrowsError(try HarnessConfig.parse(data), file: file, line: line) { error in
            guard case .badArgument(let text) = error as? HarnessError else {
                return XCTFail("not a HarnessError.badArgument: \(error)", file: file, line: line)
            }
            if prefix {
                XCTAssertTrue(text.hasPrefix(message), "\(text)", file: file, line: line)
            } else {
                XCTAssertEqual(text, message, file: file, line: line)
            }
        }
    }

    func testBadConfigFilesGiveClearErrors() throws {
        let restage = "Re-stage with `edgevit harness ios`."
        assertRefused(Data("{\"format\": ".utf8), "config.json is not valid JSON", prefix: true)
        assertRefused(Data("[1, 2]".utf8), "config.json must hold a JSON object")
        assertRefused(Data("{}".utf8), "config.json has no \"format\" key; it is not a edgevit-ios-config/1 file. \(restage)")
        assertRefused(try configText { $0["format"] = "edgevit-validation/1" },
                      "config.json has format \"edgevit-validation/1\"; this harness reads edgevit-ios-config/1. \(restage)")
        assertRefused(try configText { $0["format"] = 3 }, "config.json: format must be a string")
        assertRefused(try configText { $0["rounds"] = nil }, "config.json: missing key \"rounds\"")
        assertRefused(try configText { $0["rounds"] = "20" }, "config.json: rounds must be an integer, found a string", prefix: true)
        assertRefused(try configText { $0["rounds"] = NSNull() }, "config.json: rounds must be an integer, not null")
        assertRefused(try configText { $0["trim_fraction"] = [0.1] }, "config.json: trim_fraction must be a number", prefix: true)
        assertRefused(try configText { $0["compute_units"] = ["cpuOnly", "npu"] },
                      "config.json: compute_units[1]: unknown compute unit \"npu\"; choose from cpuOnly, cpuAndGPU, "
                      + "cpuAndNeuralEngine, all")
        assertRefused(try configText { $0["compute_units"] = [] },
                      "config.json: no compute units to run; choose from cpuOnly, cpuAndGPU, cpuAndNeuralEngine, all")
        assertRefused(try configText { $0["rounds"] = 0 }, "config.json: rounds must be at least 1, got 0")
        assertRefused(try configText { $0["warmup"] = -1 }, "config.json: warm-up cannot be negative, got -1")
        assertRefused(try configText { $0["trim_fraction"] = 0.5 }, "config.json: trim fraction must be in [0, 0.5), got 0.5")
        assertRefused(try configText { config in
            var entries = config["artifacts"] as! [[String: Any]]
            entries[1]["kind"] = "onnx"
            config["artifacts"] = entries
        }, "config.json: artifacts[1].kind: unknown artifact kind \"onnx\"; choose from mlpackage, mlmodelc, pte")
        assertRefused(try configText { config in
            var entries = config["artifacts"] as! [[String: Any]]
            entries[0]["manifest"] = nil
            config["artifacts"] = entries
        }, "config.json: missing key \"manifest\" in artifacts[0]")
        assertRefused(try configText { config in
            var entries = config["artifacts"] as! [[String: Any]]
            entries[0]["artifact"] = "../elsewhere.mlpackage"
            config["artifacts"] = entries
        }, "config.json: artifacts[0].artifact must be a file name in the staged folder, got \"../elsewhere.mlpackage\"")
        assertRefused(try configText { config in
            var entries = config["artifacts"] as! [[String: Any]]
            entries[0]["kind"] = "pte"
            config["artifacts"] = entries
        }, "config.json: artifacts[0]: tiny-image.coreml.fp32.mlpackage does not end in .pte, its kind")
        assertRefused(try configText { config in
            let entries = config["artifacts"] as! [[String: Any]]
            config["artifacts"] = [entries[0], entries[0]]
        }, "config.json: artifacts[1]: tiny-image.coreml.fp32.mlpackage is listed twice")
    }

    func testBadConfigFileOnDiskNamesTheFile() throws {
        let url = artifacts.appendingPathComponent("config.json")
        try Data("{\"format\": \"edgevit-ios-config/1\", \"rounds\": 3}".utf8).write(to: url)
        XCTAssertThrowsError(try Staging.config(in: artifacts)) { error in
            XCTAssertEqual("\(error)", "config.json: missing key \"iterations\"")
        }
        try FileManager.default.removeItem(at: url)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)  // a folder, not a file
        XCTAssertThrowsError(try HarnessConfig.load(from: url)) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot read \(url.path)"), "\(error)")
        }
    }

    func testStagedFolderProblemsAreListed() throws {
        let config = try Staging.config(in: artifacts)
        let fm = FileManager.default
        try fm.removeItem(at: artifacts.appendingPathComponent("tiny-image.coreml.fp32.mlpackage"))
        try fm.removeItem(at: artifacts.appendingPathComponent("tiny-image.coreml.fp32.validation/photo_1.png"))
        try Data(count: 12).write(to: artifacts.appendingPathComponent("tiny-tensor.coreml.fp32.validation/random_1.f32"))
        XCTAssertEqual(Staging.problems(in: config, at: artifacts), [
            "tiny-image.coreml.fp32.mlpackage: not found in \(artifacts.path)",
            "tiny-image.coreml.fp32.mlpackage: tiny-image.coreml.fp32.validation/photo_1: image photo_1.png is missing",
            "tiny-tensor.coreml.fp32.mlpackage: tiny-tensor.coreml.fp32.validation/random_1: tensor random_1.f32 has 12 "
                + "bytes; shape [1, 3, 16, 16] needs 3072 (little-endian float32)",
        ])
        try Data("{\"format\": \"edgevit-validation/1\", \"inputs\": [{\"name\": \"x\"}]}".utf8)
            .write(to: artifacts.appendingPathComponent("tiny-tensor.coreml.fp32.validation/index.json"))
        XCTAssertEqual(Staging.problems(in: config, at: artifacts).last,
                       "tiny-tensor.coreml.fp32.mlpackage: tiny-tensor.coreml.fp32.validation/index.json: missing key "
                       + "\"shape\" in inputs[0]")
        try Data("{\"format\": \"something-else\"}".utf8)
            .write(to: artifacts.appendingPathComponent("tiny-tensor.coreml.fp32.validation/index.json"))
        XCTAssertEqual(Staging.problems(in: config, at: artifacts).last,
                       "tiny-tensor.coreml.fp32.mlpackage: tiny-tensor.coreml.fp32.validation/index.json is "
                       + "\"something-else\", not edgevit-validation/1; re-run `edgevit convert`")
    }

    func testBadManifestsGiveClearErrors() throws {
        let url = scratch.url.appendingPathComponent("m.json")
        try Data("{\"model\": \"m\", \"precision\": \"fp16\", \"input\": {\"name\": \"x\", \"kind\": \"tensor\"}, \"output\": {\"name\": \"y\"}}".utf8)
            .write(to: url)
        XCTAssertThrowsError(try ArtifactManifest.load(from: url)) { error in
            XCTAssertEqual(error as? HarnessError, .badArtifact("manifest m.json: missing key \"shape\" in input"))
        }
        try Data("{\"model\": \"m\", \"precision\": \"fp16\", \"input\": {\"name\": \"x\", \"kind\": \"audio\", \"shape\": [1]}, \"output\": {\"name\": \"y\"}}".utf8)
            .write(to: url)
        XCTAssertThrowsError(try ArtifactManifest.load(from: url)) { error in
            XCTAssertEqual("\(error)", "manifest m.json: input.kind is \"audio\"; this harness feeds \"image\" or \"tensor\" inputs")
        }
    }

    func testComputeUnitList() throws {
        XCTAssertEqual(try ComputeUnit.parseList("all, cpuOnly,all"), [.all, .cpuOnly])
        XCTAssertThrowsError(try ComputeUnit.parseList("npu")) { error in
            XCTAssertEqual("\(error)", "unknown compute unit \"npu\"; choose from cpuOnly, cpuAndGPU, cpuAndNeuralEngine, all")
        }
    }
}
