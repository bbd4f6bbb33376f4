// What to run: config.json written by `edgevit harness ios` (edgevit/device/ios.py) beside the staged
// artifacts, plus the sidecar formats the converter writes beside each artifact (manifest X.json and the
// validation bundle X.validation/index.json). Only the keys this harness uses are decoded; others are
// ignored, so newer converters stay readable.

import Foundation

/// CoreML compute-unit settings, named as MLComputeUnits' cases (and as the schema's compute_unit).
public enum ComputeUnit: String, CaseIterable, Codable {
    case cpuOnly
    case cpuAndGPU
    case cpuAndNeuralEngine
    case all

    /// Parse "all,cpuOnly" (or a list of such strings); unknown names are an error that lists the choices.
    public static func parseList(_ text: String) throws -> [ComputeUnit] {
        var units: [ComputeUnit] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            guard let unit = ComputeUnit(rawValue: part) else {
                let choices = ComputeUnit.allCases.map(\.rawValue).joined(separator: ", ")
                throw HarnessError.badArgument("unknown compute unit \(part); choose from \(choices)")
            }
            if !units.contains(unit) { units.append(unit) }
        }
        return units
    }
}

public enum HarnessError: Error, CustomStringConvertible {
    case badArgument(String)
    case missingFile(String)
    case badArtifact(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .badArgument(let m), .missingFile(let m), .badArtifact(let m), .unsupported(let m): return m
        }
    }
}

/// config.json (format "edgevit-ios-config/1").
public struct HarnessConfig: Codable {
    public static let format = "edgevit-ios-config/1"

    public var format: String
    public var rounds: Int
    public var iterations: Int
    public var warmup: Int
    public var trimFraction: Double
    public var computeUnits: [ComputeUnit]
    public var artifacts: [ArtifactEntry]
    /// The iOS app starts the run as soon as it opens (for runs started with `xcrun devicectl`).
    public var autostart: Bool?

    enum CodingKeys: String, CodingKey {
        case format
        case rounds
        case iterations
        case warmup
        case trimFraction = "trim_fraction"
        case computeUnits = "compute_units"
        case artifacts
        case autostart
    }

    public init(rounds: Int = 20, iterations: Int = 50, warmup: Int = 1,
                trimFraction: Double = Stats.defaultTrimFraction,
                computeUnits: [ComputeUnit] = ComputeUnit.allCases, artifacts: [ArtifactEntry] = []) {
        self.format = HarnessConfig.format
        self.rounds = rounds
        self.iterations = iterations
        self.warmup = warmup
        self.trimFraction = trimFraction
        self.computeUnits = computeUnits
        self.artifacts = artifacts
    }

    public static func load(from url: URL) throws -> HarnessConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw HarnessError.missingFile("cannot read \(url.path): \(error.localizedDescription)")
        }
        let config: HarnessConfig
        do { config = try JSONDecoder().decode(HarnessConfig.self, from: data) } catch {
            throw HarnessError.badArgument("\(url.lastPathComponent) is not an \(format) file: \(error)")
        }
        guard config.format == format else {
            throw HarnessError.badArgument("\(url.lastPathComponent) has format \(config.format); "
                                           + "this harness reads \(format). Re-stage with `edgevit harness ios`.")
        }
        try config.validate()
        return config
    }

    public func validate() throws {
        guard rounds >= 1 else { throw HarnessError.badArgument("rounds must be at least 1, got \(rounds)") }
        guard iterations >= 1 else {
            throw HarnessError.badArgument("iterations must be at least 1, got \(iterations)")
        }
        guard warmup >= 0 else { throw HarnessError.badArgument("warm-up cannot be negative, got \(warmup)") }
        guard trimFraction >= 0.0 && trimFraction < 0.5 else {
            throw HarnessError.badArgument("trim fraction must be in [0, 0.5), got \(trimFraction)")
        }
        guard !computeUnits.isEmpty else { throw HarnessError.badArgument("no compute units to run") }
    }

    /// Without a config.json: every artifact with a manifest in `dir`, in name order.
    public static func scanning(_ dir: URL) throws -> [ArtifactEntry] {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        var entries: [ArtifactEntry] = []
        for name in names where !name.hasPrefix(".") {
            guard let kind = ArtifactKind(fileName: name) else { continue }
            let stem = String(name.dropLast(kind.rawValue.count + 1))
            let manifest = stem + ".json"
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent(manifest).path) else { continue }
            let validation = stem + ".validation"
            let hasBundle = FileManager.default.fileExists(
                atPath: dir.appendingPathComponent(validation).appendingPathComponent("index.json").path)
            entries.append(ArtifactEntry(artifact: name, kind: kind, manifest: manifest,
                                         validation: hasBundle ? validation : nil))
        }
        return entries
    }
}

public enum ArtifactKind: String, Codable {
    case mlpackage
    case mlmodelc
    case pte

    public init?(fileName: String) {
        guard let ext = fileName.split(separator: ".").last, fileName.contains(".") else { return nil }
        self.init(rawValue: String(ext))
    }
}

/// One staged artifact: file names relative to the config's folder.
public struct ArtifactEntry: Codable {
    public var artifact: String
    public var kind: ArtifactKind
    public var manifest: String
    public var validation: String?

    public init(artifact: String, kind: ArtifactKind, manifest: String, validation: String?) {
        self.artifact = artifact
        self.kind = kind
        self.manifest = manifest
        self.validation = validation
    }
}

/// The parts of the converter's manifest (X.json) this harness needs.
public struct ArtifactManifest: Decodable {
    public struct Input: Decodable {
        public var name: String
        /// "image" (RGB 0-255, normalised inside the model) or "tensor" (preprocessed NCHW float32).
        public var kind: String
        public var shape: [Int]
    }

    public struct Output: Decodable {
        public var name: String
        /// "probabilities" or "logits".
        public var kind: String?
    }

    public var model: String
    public var artifact: String?
    public var sha256: String?
    public var precision: String
    public var target: String?
    public var backend: String?
    public var input: Input
    public var output: Output
    public var toolVersions: [String: String]?

    enum CodingKeys: String, CodingKey {
        case model
        case artifact
        case sha256
        case precision
        case target
        case backend
        case input
        case output
        case toolVersions = "tool_versions"
    }

    public static func load(from url: URL) throws -> ArtifactManifest {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw HarnessError.missingFile("manifest \(url.lastPathComponent) not found beside the artifact; "
                                           + "stage artifacts made by `edgevit convert`")
        }
        do { return try JSONDecoder().decode(ArtifactManifest.self, from: data) } catch {
            throw HarnessError.badArtifact("manifest \(url.lastPathComponent) cannot be read: \(error)")
        }
    }
}

/// X.validation/index.json (format "edgevit-validation/1").
public struct ValidationIndex: Decodable {
    public static let format = "edgevit-validation/1"

    public struct Entry: Decodable {
        public var name: String
        /// PNG of the 224x224 RGB crop, for image-input models; nil for random-tensor inputs.
        public var image: String?
        /// Raw little-endian float32 of the preprocessed NCHW tensor, for tensor-input models.
        public var tensor: String?
        public var shape: [Int]
    }

    public var format: String
    public var inputs: [Entry]
    public var outputShape: [Int]?

    enum CodingKeys: String, CodingKey {
        case format
        case inputs
        case outputShape = "output_shape"
    }

    public static func load(from folder: URL) throws -> ValidationIndex {
        let url = folder.appendingPathComponent("index.json")
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw HarnessError.missingFile("\(folder.lastPathComponent)/index.json not found")
        }
        let index = try JSONDecoder().decode(ValidationIndex.self, from: data)
        guard index.format == format else {
            throw HarnessError.badArtifact("\(folder.lastPathComponent)/index.json is \(index.format), not \(format)")
        }
        return index
    }
}
