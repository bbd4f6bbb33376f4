// Test helpers: the bundled resources, a scratch folder with the fixtures, and a scripted ModelRuntime
// whose "model" doubles its input tensor, with a fake clock, so a whole session runs without CoreML (on
// Linux too) and every number it writes is known in advance.

import Foundation
import XCTest
@testable import EdgevitHarness

/// A file from Resources (bundled by SwiftPM), or from the source tree when run without the bundle.
func testResource(_ name: String) -> URL {
    let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
    if parts.count == 2, let url = Bundle.module.url(forResource: parts[0], withExtension: parts[1]) { return url }
    if let url = Bundle.module.url(forResource: name, withExtension: nil) { return url }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Resources").appendingPathComponent(name)
}

/// A test case with the fixtures copied into a fresh scratch folder before each test, removed after it.
class FixtureTestCase: XCTestCase {
    var scratch: ScratchFolder!
    var artifacts: URL!

    override func setUpWithError() throws {
        scratch = try ScratchFolder()
        artifacts = try scratch.fixtures()
    }

    override func tearDownWithError() throws {
        scratch.remove()
    }
}

/// A fresh temporary folder, removed by `remove()`.
struct ScratchFolder {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("edgevit-harness-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: url) }

    /// Resources/Fixtures copied to `<scratch>/artifacts`, X.mlpackage.fixture renamed X.mlpackage (the
    /// repository's .gitignore ignores *.mlpackage/). It holds config.json written by `edgevit harness ios`.
    func fixtures() throws -> URL {
        let artifacts = url.appendingPathComponent("artifacts")
        try FileManager.default.copyItem(at: testResource("Fixtures"), to: artifacts)
        for name in try FileManager.default.contentsOfDirectory(atPath: artifacts.path) where name.hasSuffix(".fixture") {
            try FileManager.default.moveItem(at: artifacts.appendingPathComponent(name),
                                             to: artifacts.appendingPathComponent(String(name.dropLast(".fixture".count))))
        }
        return artifacts
    }
}

/// A monotonic clock the scripted model advances: prediction k takes `duration(k)` nanoseconds.
final class FakeTimeline: @unchecked Sendable {
    private let lock = NSLock()
    private var nanoseconds: UInt64 = 1_000_000_000
    private(set) var predictions = 0

    /// 1 ms plus a repeating pattern of 0-6 quarter-milliseconds, with every 11th prediction a 5 ms hiccup.
    static func duration(_ k: Int) -> UInt64 {
        (k % 11 == 10) ? 5_000_000 : 1_000_000 + UInt64(k % 7) * 250_000
    }

    func now() -> UInt64 { lock.withLock { nanoseconds } }

    func advance(_ ns: UInt64) { lock.withLock { nanoseconds += ns } }

    func predict() {
        lock.withLock {
            nanoseconds += FakeTimeline.duration(predictions)
            predictions += 1
        }
    }
}

/// Reads a validation tensor (little-endian float32).
func readFloat32(_ url: URL) throws -> [Float] {
    let data = try Data(contentsOf: url)
    return stride(from: 0, to: data.count, by: 4).map { offset in
        let bits = UInt32(data[offset]) | UInt32(data[offset + 1]) << 8 | UInt32(data[offset + 2]) << 16
            | UInt32(data[offset + 3]) << 24
        return Float(bitPattern: bits)
    }
}

/// A runtime whose model outputs 2 x its input tensor (exact in float32), shaped like the input.
struct ScriptedRuntime: ModelRuntime {
    var timeline = FakeTimeline()
    /// Artifacts whose preparation (CoreML: compilation) fails.
    var failPrepare: Set<String> = []
    /// Compute units whose load fails.
    var failLoad: Set<ComputeUnit> = []
    /// Validation inputs whose prediction fails.
    var failInputs: Set<String> = []
    /// Validation inputs whose first two outputs are NaN and +infinity (an fp16 overflow).
    var nonFinite: Set<String> = []
    var warnings: [String] = []

    func prepare(_ artifact: URL, manifest: ArtifactManifest) async throws -> any PreparedModel {
        if failPrepare.contains(artifact.lastPathComponent) {
            throw HarnessError.badArtifact("scripted compile failure")
        }
        return Prepared(runtime: self, manifest: manifest)
    }

    struct Prepared: PreparedModel {
        let runtime: ScriptedRuntime
        let manifest: ArtifactManifest
        var prepareMs: Double? { 12.5 }

        func load(_ unit: ComputeUnit) throws -> any LoadedModel {
            runtime.timeline.advance(3_000_000)  // 3 ms load
            if runtime.failLoad.contains(unit) { throw HarnessError.unsupported("scripted load failure on \(unit)") }
            return Loaded(runtime: runtime, manifest: manifest)
        }

        func cleanUp() {}
    }

    final class Loaded: LoadedModel {
        let runtime: ScriptedRuntime
        let manifest: ArtifactManifest
        var input: (name: String, values: [Float], shape: [Int])?

        init(runtime: ScriptedRuntime, manifest: ArtifactManifest) {
            self.runtime = runtime
            self.manifest = manifest
        }

        func useInput(_ entry: ValidationIndex.Entry, in folder: URL) throws -> Bool {
            if manifest.input.kind == "image" && entry.image == nil { return false }
            guard let tensor = entry.tensor else { return false }
            input = (entry.name, try readFloat32(folder.appendingPathComponent(tensor)), entry.shape)
            return true
        }

        func useSyntheticInput() throws {
            let count = manifest.input.shape.reduce(1, *)
            input = ("synthetic", (0..<count).map { Float($0 % 5) }, manifest.input.shape)
        }

        func predict() throws {
            guard input != nil else { throw HarnessError.badArgument("no input") }
            runtime.timeline.predict()
        }

        func predictOutput() throws -> (shape: [Int], values: [Float]) {
            guard let input else { throw HarnessError.badArgument("no input") }
            if runtime.failInputs.contains(input.name) { throw HarnessError.badArtifact("scripted failure") }
            var values = input.values.map { $0 * 2 }
            if runtime.nonFinite.contains(input.name) {
                values[0] = .nan
                values[1] = .infinity
            }
            return (input.shape, values)
        }

        var outputWarnings: [String] { runtime.warnings }
    }
}

let testDevice = DeviceInfo(kind: "iphone", name: "iPhone15,2", os: "iOS Version 17.4 (Build 21E219)",
                            cpu: "Apple A16 (6 cores)")

/// JSON object of a file.
func jsonObject(_ url: URL) throws -> [String: Any] {
    try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
}
