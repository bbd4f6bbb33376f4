// The results file every edgevit harness writes: edgevit/bench/schema.json, field for field.
//
// Reports read only that schema, so these types mirror it exactly. A value that was not measured is
// written as JSON null (never left out, never filled in): the encoders below write every key, because
// Swift's synthesized Encodable would silently drop nil optionals and the schema requires the keys.
// tests/test_ios_harness.py compares the CodingKeys here with schema.json, so a field added to the
// schema but not here fails the Python test suite.

import Foundation

/// The top-level object of a results file (schema.json, root).
public struct ResultsDocument: Codable, Equatable, Sendable {
    public var schemaVersion: Int
    public var harness: String
    public var created: String
    /// No GEMM peak is measured on the device: always null here (schema v2).
    public var gemmPeakGflopPerS: Double?
    public var results: [BenchResult]

    public init(results: [BenchResult], created: Date = Date()) {
        self.schemaVersion = 2
        self.harness = "ios"
        self.created = ResultsDocument.iso8601(created)
        self.gemmPeakGflopPerS = nil
        self.results = results
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case harness
        case created
        case gemmPeakGflopPerS = "gemm_peak_gflop_per_s"
        case results
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(harness, forKey: .harness)
        try c.encode(created, forKey: .created)
        try c.encodeOrNull(gemmPeakGflopPerS, forKey: .gemmPeakGflopPerS)
        try c.encode(results, forKey: .results)
    }

    /// ISO-8601 UTC to the second, in the one form every edgevit file uses (the host harness's Python
    /// `isoformat()`, the Android harness, manifests): `2025-01-31T12:00:00+00:00`.
    public static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        let text = formatter.string(from: date)  // "...Z" for UTC
        return text.hasSuffix("Z") ? String(text.dropLast()) + "+00:00" : text
    }

    /// Pretty, key-sorted JSON (stable diffs between runs).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

/// Where a number was measured (schema.json, $defs.device).
public struct DeviceInfo: Codable, Equatable, Sendable {
    /// iphone, ipad or mac (schema enum; host and android are other harnesses').
    public var kind: String
    /// Device model identifier: `iPhone15,2` (utsname.machine) or `Mac14,2` (sysctl hw.model).
    public var name: String
    public var os: String
    public var cpu: String

    public init(kind: String, name: String, os: String, cpu: String) {
        self.kind = kind
        self.name = name
        self.os = os
        self.cpu = cpu
    }

    enum CodingKeys: String, CodingKey {
        case kind
        case name
        case os
        case cpu
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(name, forKey: .name)
        try c.encode(os, forKey: .os)
        try c.encode(cpu, forKey: .cpu)
    }
}

/// One measured (or failed, or not run) configuration (schema.json, $defs.result).
/// The schema's ``interleaved`` object: written by edgevit's host harness, read here so a round trip keeps it.
public struct InterleavedTiming: Codable, Equatable, Sendable {
    public var against: String
    public var ratio: Double
    public var iterations: Int
    public var medianMs: Double
    public var againstMedianMs: Double

    enum CodingKeys: String, CodingKey {
        case against
        case ratio
        case iterations
        case medianMs = "median_ms"
        case againstMedianMs = "against_median_ms"
    }
}

public struct BenchResult: Codable, Equatable, Sendable {
    public var model: String
    /// "coreml" for .mlpackage/.mlmodelc, "executorch" for .pte.
    public var form: String
    public var artifact: String?
    public var artifactSha256: String?
    /// "coreml" or "executorch".
    public var runtime: String
    public var backend: String?
    /// cpuOnly, cpuAndGPU, cpuAndNeuralEngine or all.
    public var computeUnit: String?
    /// fp32 or fp16.
    public var precision: String
    public var device: DeviceInfo
    public var batch: Int
    public var inputShape: [Int]
    public var warmup: Int
    /// Number of samples in perIterationMs (the ones the statistics are computed on).
    public var iterations: Int
    public var perIterationMs: [Double]
    public var medianMs: Double?
    public var trimmedMeanMs: Double?
    public var trimFraction: Double
    public var p90Ms: Double?
    public var peakMemoryMb: Double?
    public var memoryKind: String?
    public var loadTimeMs: Double?
    public var toolVersions: [String: String]
    /// ok, failed or not_run.
    public var status: String
    public var error: String?
    /// Schema v2. CoreML has no thread setting and the ExecuTorch pool is not set by this harness: null.
    public var threads: Int?
    /// Model GFLOP per call, achieved GFLOP/s and percent of a GEMM peak: not counted on the device (null).
    public var gflop: Double?
    public var gflopPerS: Double?
    public var percentOfPeak: Double?
    /// A form timed alternately with a reference form (edgevit's host harness only): null on the device.
    public var interleaved: InterleavedTiming?

    public init(model: String, form: String, artifact: String?, artifactSha256: String?, runtime: String,
                backend: String?, computeUnit: String?, precision: String, device: DeviceInfo, batch: Int,
                inputShape: [Int], warmup: Int, iterations: Int, perIterationMs: [Double], medianMs: Double?,
                trimmedMeanMs: Double?, trimFraction: Double, p90Ms: Double?, peakMemoryMb: Double?,
                memoryKind: String?, loadTimeMs: Double?, toolVersions: [String: String], status: String,
                error: String?, threads: Int? = nil, gflop: Double? = nil) {
        self.model = model
        self.form = form
        self.artifact = artifact
        self.artifactSha256 = artifactSha256
        self.runtime = runtime
        self.backend = backend
        self.computeUnit = computeUnit
        self.precision = precision
        self.device = device
        self.batch = batch
        self.inputShape = inputShape
        self.warmup = warmup
        self.iterations = iterations
        self.perIterationMs = perIterationMs
        self.medianMs = medianMs
        self.trimmedMeanMs = trimmedMeanMs
        self.trimFraction = trimFraction
        self.p90Ms = p90Ms
        self.peakMemoryMb = peakMemoryMb
        self.memoryKind = memoryKind
        self.loadTimeMs = loadTimeMs
        self.toolVersions = toolVersions
        self.status = status
        self.error = error
        self.threads = threads
        self.gflop = gflop
        if let gflop, let medianMs, medianMs > 0 {
            self.gflopPerS = gflop / (medianMs / 1000)
        } else {
            self.gflopPerS = nil
        }
        self.percentOfPeak = nil
        self.interleaved = nil
    }

    enum CodingKeys: String, CodingKey {
        case model
        case form
        case artifact
        case artifactSha256 = "artifact_sha256"
        case runtime
        case backend
        case computeUnit = "compute_unit"
        case precision
        case device
        case batch
        case inputShape = "input_shape"
        case warmup
        case iterations
        case perIterationMs = "per_iteration_ms"
        case medianMs = "median_ms"
        case trimmedMeanMs = "trimmed_mean_ms"
        case trimFraction = "trim_fraction"
        case p90Ms = "p90_ms"
        case peakMemoryMb = "peak_memory_mb"
        case memoryKind = "memory_kind"
        case loadTimeMs = "load_time_ms"
        case toolVersions = "tool_versions"
        case status
        case error
        case threads
        case gflop
        case gflopPerS = "gflop_per_s"
        case percentOfPeak = "percent_of_peak"
        case interleaved
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(form, forKey: .form)
        try c.encodeOrNull(artifact, forKey: .artifact)
        try c.encodeOrNull(artifactSha256, forKey: .artifactSha256)
        try c.encode(runtime, forKey: .runtime)
        try c.encodeOrNull(backend, forKey: .backend)
        try c.encodeOrNull(computeUnit, forKey: .computeUnit)
        try c.encode(precision, forKey: .precision)
        try c.encode(device, forKey: .device)
        try c.encode(batch, forKey: .batch)
        try c.encode(inputShape, forKey: .inputShape)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(iterations, forKey: .iterations)
        try c.encode(perIterationMs, forKey: .perIterationMs)
        try c.encodeOrNull(medianMs, forKey: .medianMs)
        try c.encodeOrNull(trimmedMeanMs, forKey: .trimmedMeanMs)
        try c.encode(trimFraction, forKey: .trimFraction)
        try c.encodeOrNull(p90Ms, forKey: .p90Ms)
        try c.encodeOrNull(peakMemoryMb, forKey: .peakMemoryMb)
        try c.encodeOrNull(memoryKind, forKey: .memoryKind)
        try c.encodeOrNull(loadTimeMs, forKey: .loadTimeMs)
        try c.encode(toolVersions, forKey: .toolVersions)
        try c.encode(status, forKey: .status)
        try c.encodeOrNull(error, forKey: .error)
        try c.encodeOrNull(threads, forKey: .threads)
        try c.encodeOrNull(gflop, forKey: .gflop)
        try c.encodeOrNull(gflopPerS, forKey: .gflopPerS)
        try c.encodeOrNull(percentOfPeak, forKey: .percentOfPeak)
        try c.encodeOrNull(interleaved, forKey: .interleaved)
    }
}

extension KeyedEncodingContainer {
    /// Write the value, or an explicit JSON null: the schema requires every key to be present.
    mutating func encodeOrNull<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value {
            try encode(value, forKey: key)
        } else {
            try encodeNil(forKey: key)
        }
    }
}
