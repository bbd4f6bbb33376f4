// What the model computed on this device for each validation input (format edgevit-device-outputs/1),
// read by `edgevit validate ARTIFACT --device-outputs FILE` to compare with the original PyTorch model.

import Foundation

public struct DeviceOutputs: Codable {
    public static let format = "edgevit-device-outputs/1"

    public struct Output: Codable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]

        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    public var format: String
    public var artifact: String
    public var artifactSha256: String?
    public var device: DeviceInfo
    public var computeUnit: String
    public var outputs: [Output]
    /// Things the comparison should know, e.g. repeated class labels that merge two classes' values.
    public var warnings: [String]

    public init(artifact: String, artifactSha256: String?, device: DeviceInfo, computeUnit: String,
                outputs: [Output], warnings: [String] = []) {
        self.format = DeviceOutputs.format
        self.artifact = artifact
        self.artifactSha256 = artifactSha256
        self.device = device
        self.computeUnit = computeUnit
        self.outputs = outputs
        self.warnings = warnings
    }

    enum CodingKeys: String, CodingKey {
        case format
        case artifact
        case artifactSha256 = "artifact_sha256"
        case device
        case computeUnit = "compute_unit"
        case outputs
        case warnings
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try c.encode(artifact, forKey: .artifact)
        try c.encodeOrNull(artifactSha256, forKey: .artifactSha256)
        try c.encode(device, forKey: .device)
        try c.encode(computeUnit, forKey: .computeUnit)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(warnings, forKey: .warnings)
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A model that overflows (fp16) yields NaN/inf; JSON has no such numbers, numpy reads these strings.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity",
                                                                      negativeInfinity: "-Infinity", nan: "NaN")
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
