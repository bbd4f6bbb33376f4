// The results file: every schema key is written (null when not measured), and it decodes back; the
// device-outputs file likewise. (tests/test_ios_harness.py compares the results keys with
// edgevit/bench/schema.json, and validates files these tests write with the schema and `edgevit report`.)

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
        XCTAssertEqual(Set(json.keys), ["schema_version", "harness", "created", "gemm_peak_gflop_per_s", "results"])
        XCTAssertEqual(json["schema_version"] as? Int, 2)
        XCTAssertEqual(json["harness"] as? String, "ios")
        XCTAssertTrue(json["gemm_peak_gflop_per_s"] is NSNull, "no GEMM peak is measured on the device")
        let result = try XCTUnwrap((json["results"] as? [[String: Any]])?.first)
        let required = ["model", "form", "artifact", "artifact_sha256", "runtime", "backend", "compute_unit",
                        "precision", "device", "batch", "input_shape", "warmup", "iterations", "per_iteration_ms",
                        "median_ms", "trimmed_mean_ms", "trim_fraction", "p90_ms", "peak_memory_mb", "memory_kind",
                        "load_time_ms", "tool_versions", "status", "error", "threads", "gflop", "gflop_per_s",
                        "percent_of_peak", "interleaved"]
        XCTAssertEqual(Set(result.keys), Set(required))
        for key in ["artifact_sha256", "backend", "median_ms", "trimmed_mean_ms", "p90_ms", "peak_memory_mb",
                    "memory_kind", "load_time_ms", "threads", "gflop", "gflop_per_s", "percent_of_peak",
                    "interleaved"] {
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

    func testCreatedIsIso8601UtcInTheFormEveryHarnessWrites() {
        XCTAssertEqual(ResultsDocument.iso8601(Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00+00:00")
        XCTAssertEqual(ResultsDocument.iso8601(Date(timeIntervalSince1970: 1_738_324_800.75)), "2025-01-31T12:00:00+00:00")
    }

    func testDeviceProbe() {
        let device = DeviceProbe.current()
        XCTAssertFalse(device.name.isEmpty)
        XCTAssertFalse(device.cpu.isEmpty)
        #if canImport(Darwin)
        XCTAssertTrue(["iphone", "ipad", "mac"].contains(device.kind))
        XCTAssertTrue(device.os.contains("Version"))
        XCTAssertNotNil(Memory.physFootprintBytes())
        #else
        XCTAssertEqual(device.kind, "host")  // a schema device kind; iOS results come from Apple platforms
        XCTAssertTrue(device.os.hasPrefix("Linux"), device.os)
        XCTAssertNil(Memory.physFootprintBytes())  // null in the results, never 0
        #endif
    }

    func testSha256Check() {
        XCTAssertNil(validSha256("abc"))
        XCTAssertNil(validSha256(String(repeating: "A", count: 64)))
        XCTAssertEqual(validSha256(String(repeating: "a", count: 64)), String(repeating: "a", count: 64))
    }

    func testDeviceOutputNames() {
        XCTAssertEqual(DeviceOutputs.fileName(artifact: "m.coreml.fp16.mlpackage", computeUnit: nil),
                       "m.coreml.fp16.device-outputs.json")
        XCTAssertEqual(DeviceOutputs.fileName(artifact: "m.coreml.fp16.mlpackage", computeUnit: .cpuOnly),
                       "m.coreml.fp16.cpuOnly.device-outputs.json")
    }

    func testDeviceOutputsWriteEveryKeyAndNonFiniteAsNull() throws {
        let outputs = DeviceOutputs(artifact: "m.coreml.fp16.mlpackage", artifactSha256: nil, device: testDevice,
                                    computeUnit: "cpuAndNeuralEngine",
                                    outputs: [.init(name: "photo_0", shape: [1, 4], values: [0.1, .nan, .infinity, -.infinity])],
                                    warnings: ["labels repeat"], created: Date(timeIntervalSince1970: 0))
        let data = try outputs.jsonData()
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["format", "harness", "created", "artifact", "artifact_sha256", "device",
                                        "compute_unit", "outputs", "warnings", "error"])
        XCTAssertEqual(json["format"] as? String, "edgevit-device-outputs/2")
        XCTAssertEqual(json["harness"] as? String, "ios")
        XCTAssertEqual(json["created"] as? String, "1970-01-01T00:00:00+00:00")
        XCTAssertTrue(json["artifact_sha256"] is NSNull)
        XCTAssertTrue(json["error"] is NSNull)
        XCTAssertEqual(json["warnings"] as? [String], ["labels repeat"])
        let values = try XCTUnwrap(((json["outputs"] as? [[String: Any]])?.first)?["values"] as? [Any])
        XCTAssertEqual(values.count, 4)
        XCTAssertEqual((values[0] as? NSNumber)?.floatValue, 0.1)
        XCTAssertTrue(values[1...].allSatisfy { $0 is NSNull }, "\(values)")
        XCTAssertFalse(String(decoding: data, as: UTF8.self).contains("NaN"))
        var decoded = try JSONDecoder().decode(DeviceOutputs.self, from: data)
        XCTAssertEqual(decoded.outputs[0].values[0], 0.1)
        XCTAssertTrue(decoded.outputs[0].values[1...].allSatisfy(\.isNaN), "null reads back as NaN")
        decoded.outputs = outputs.outputs
        XCTAssertEqual(decoded, outputs)
    }

    func testFloatValuesRoundTripExactly() throws {
        let values: [Float] = [1.0 / 3.0, 16_777_216, 1e-38, 3.4028235e38, -0.0, 0.1, 123.456]
        let outputs = DeviceOutputs(artifact: "a", artifactSha256: nil, device: testDevice, computeUnit: nil,
                                    outputs: [.init(name: "x", shape: [values.count], values: values)])
        let decoded = try JSONDecoder().decode(DeviceOutputs.self, from: outputs.jsonData())
        XCTAssertEqual(decoded.outputs[0].values.map(\.bitPattern), values.map(\.bitPattern))
    }
}
