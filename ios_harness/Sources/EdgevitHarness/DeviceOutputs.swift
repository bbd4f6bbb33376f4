// What the model computed on this device for each validation input, read by
// `edgevit validate ARTIFACT --device-outputs FILE` to compare with the original PyTorch model.
// Format edgevit-device-outputs/2, the same for the iOS and the Android harness; documented in
// docs/device-outputs.md. Every key is always written; a non-finite value (an fp16 overflow) is JSON null.

import Foundation

public struct DeviceOutputs: Codable, Equatable, Sendable {
    public static let format = "edgevit-device-outputs/2"

    public struct Output: Codable, Equatable, Sendable {
        public var name: String
        public var shape: [Int]
        /// Flat, row-major (class-index order). NaN/±inf are written as null and read back as NaN.
        public var values: [Float]

        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }

        enum CodingKeys: String, CodingKey {
            case name
            case shape
            case values
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            shape = try c.decode([Int].self, forKey: .shape)
            values = try c.decode([Float?].self, forKey: .values).map { $0 ?? .nan }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(shape, forKey: .shape)
            try c.encode(values.map { $0.isFinite ? $0 : nil } as [Float?], forKey: .values)
        }

        // NaN != NaN would make two identical files unequal.
        public static func == (a: Output, b: Output) -> Bool {
            a.name == b.name && a.shape == b.shape && a.values.count == b.values.count
                && zip(a.values, b.values).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
        }
    }

    public var format: String
    /// "ios" (this harness) or "android".
    public var harness: String
    /// ISO-8601 UTC, `2025-01-31T12:00:00+00:00` (ResultsDocument.iso8601).
    public var created: String
    public var artifact: String
    public var artifactSha256: String?
    public var device: DeviceInfo
    /// The CoreML compute unit the outputs were computed with; null where the runtime has no such setting.
    public var computeUnit: String?
    public var outputs: [Output]
    /// Things the comparison should know, e.g. repeated class labels that merge two classes' values.
    public var warnings: [String]
    /// Why the outputs are incomplete (a validation input failed); null when every input ran.
    public var error: String?

    public init(artifact: String, artifactSha256: String?, device: DeviceInfo, computeUnit: String?,
                outputs: [Output], warnings: [String] = [], error: String? = nil, created: Date = Date()) {
        self.format = DeviceOutputs.format
        self.harness = "ios"
        self.created = ResultsDocument.iso8601(created)
        self.artifact = artifact
        self.artifactSha256 = artifactSha256
        self.device = device
        self.computeUnit = computeUnit
        self.outputs = outputs
        self.warnings = warnings
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case format
        case harness
        case created
        case artifact
        case artifactSha256 = "artifact_sha256"
        case device
        case computeUnit = "compute_unit"
        case outputs
        case warnings
        case error
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try c.encode(harness, forKey: .harness)
        try c.encode(created, forKey: .created)
        try c.encode(artifact, forKey: .artifact)
        try c.encodeOrNull(artifactSha256, forKey: .artifactSha256)
        try c.encode(device, forKey: .device)
        try c.encodeOrNull(computeUnit, forKey: .computeUnit)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(warnings, forKey: .warnings)
        try c.encodeOrNull(error, forKey: .error)
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    /// `X.mlpackage` -> `X.device-outputs.json` (the name the host tools look for), or
    /// `X.cpuOnly.device-outputs.json` for one compute unit.
    public static func fileName(artifact: String, computeUnit: ComputeUnit?) -> String {
        let stem = (artifact as NSString).deletingPathExtension
        if let unit = computeUnit { return "\(stem).\(unit.rawValue).device-outputs.json" }
        return "\(stem).device-outputs.json"
    }
}
