// The results file: every schema key is written (null when not measured), and it decodes back.
// (tests/test_ios_harness.py compares these types' keys with edgevit/bench/schema.json.)

import XCTest
@testable import EdgevitHarness

final class ResultsTests: XCTestCase {
    func sampleResult(status: String = "failed") -> BenchResult {
        BenchResult(model: "swiftformer-l1", form: "coreml", artifact: "swiftformer-l1.coreml.fp16.mlpackage",
                    artifactSha256: nil, runtime: "coreml", backend: nil, computeUnit: "all", precision: "fp16",
                    device: DeviceProbe.current(), batch: 1, inputShape: [1, 3, 224, 224], warmup: 1, iterations: 0,
                    perIterationMs: [], medianMs: nil, trimmedMeanMs: nil, trimFraction: 0.1, p90Ms: nil,
                    peakMemoryMb: nil, memoryKind: nil, loadTimeMs: nil, toolVersions: ["os": "test"],
                    status: status, error: "not measured")
    }

    func testEveryKeyIsWrittenAndNilIsNull() throws {
        let data = try ResultsDocument(results: [sampleResult()]).jsonData()
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["schema_version", "harness", "created", "results"])
        XCTAssertEqual(json["schema_version"] as? Int, 1)
        XCTAssertEqual(json["harness"] as? String, "ios")
        let result = try XCTUnwrap((json["results"] as? [[String: Any]])?.first)
        let required = ["model", "form", "artifact", "artifact_sha256", "runtime", "backend", "compute_unit",
                        "precision", "device", "batch", "input_shape", "warmup", "iterations", "per_iteration_ms",
                        "median_ms", "trimmed_mean_ms", "trim_fraction", "p90_ms", "peak_memory_mb", "memory_kind",
                        "load_time_ms", "tool_versions", "status", "error"]
        XCTAssertEqual(Set(result.keys), Set(required))
        for key in ["artifact_sha256", "backend", "median_ms", "trimmed_mean_ms", "p90_ms", "peak_memory_mb",
                    "memory_kind", "load_time_ms"] {
            XCTAssertTrue(result[key] is NSNull, "\(key) must be written as null")
        }
        let device = try XCTUnwrap(result["device"] as? [String: Any])
        XCTAssertEqual(Set(device.keys), ["kind", "name", "os", "cpu"])
    }

    func testRoundTrip() throws {
        var result = sampleResult(status: "ok")
        result.perIterationMs = [1.25, 1.5, 1.375]
        result.iterations = 3
        result.medianMs = 1.375
        result.error = nil
        let document = ResultsDocument(results: [result])
        let decoded = try JSONDecoder().decode(ResultsDocument.self, from: try document.jsonData())
        XCTAssertEqual(decoded, document)
    }

    func testCreatedIsIso8601Utc() {
        let text = ResultsDocument.iso8601(Date(timeIntervalSince1970: 0))
        XCTAssertEqual(text, "1970-01-01T00:00:00Z")
    }

    func testDeviceProbe() {
        let device = DeviceProbe.current()
        XCTAssertTrue(["iphone", "ipad", "mac"].contains(device.kind))
        XCTAssertFalse(device.name.isEmpty)
        XCTAssertTrue(device.os.contains("Version"))
        XCTAssertNotNil(Memory.physFootprintBytes())
    }

    func testSha256Check() {
        XCTAssertNil(validSha256("abc"))
        XCTAssertNil(validSha256(String(repeating: "A", count: 64)))
        XCTAssertEqual(validSha256(String(repeating: "a", count: 64)), String(repeating: "a", count: 64))
    }

    func testComputeUnitList() throws {
        XCTAssertEqual(try ComputeUnit.parseList("all, cpuOnly,all"), [.all, .cpuOnly])
        XCTAssertThrowsError(try ComputeUnit.parseList("npu"))
    }

    func testDeviceOutputNames() {
        XCTAssertEqual(DeviceOutputs.fileName(artifact: "m.coreml.fp16.mlpackage", computeUnit: nil),
                       "m.coreml.fp16.device-outputs.json")
        XCTAssertEqual(DeviceOutputs.fileName(artifact: "m.coreml.fp16.mlpackage", computeUnit: .cpuOnly),
                       "m.coreml.fp16.cpuOnly.device-outputs.json")
    }
}
