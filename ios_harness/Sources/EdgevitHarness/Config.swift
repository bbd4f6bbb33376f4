// What to run: config.json written by `edgevit harness ios` (edgevit/bench/device/ios.py) beside the staged
// artifacts, plus the sidecar formats the converter writes beside each artifact (manifest X.json and the
// validation bundle X.validation/index.json). Only the keys this harness uses are decoded; others are
// ignored, so newer converters stay readable. A file that cannot be used is reported with its name, the
// JSON path of the offending value and what was expected (JSONFileError), never as a raw DecodingError.

import Foundation

/// CoreML compute-unit settings, named as MLComputeUnits' cases (and as the schema's compute_unit).
public enum ComputeUnit: String, CaseIterable, Codable, Sendable {
    case cpuOnly
    case cpuAndGPU
    case cpuAndNeuralEngine
    case all

    static var choices: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// Parse "all,cpuOnly" (or a list of such strings); unknown names are an error that lists the choices.
    public static func parseList(_ text: String) throws -> [ComputeUnit] {
        var units: [ComputeUnit] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            guard let unit = ComputeUnit(rawValue: part) else {
                throw HarnessError.badArgument("unknown compute unit \"\(part)\"; choose from \(choices)")
            }
            if !units.contains(unit) { units.append(unit) }
        }
        return units
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let unit = ComputeUnit(rawValue: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "unknown compute unit \"\(text)\"; choose from \(ComputeUnit.choices)")
        }
        self = unit
    }
}

public enum HarnessError: Error, Equatable, Sendable, CustomStringConvertible {
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

/// Decoding `file` failed: says where (`artifacts[1].kind`) and why, in words a user can act on.
enum JSONFileError {
    static func describe(_ error: any Error, file: String) -> String {
        guard let decoding = error as? DecodingError else { return "\(file): \(error)" }
        switch decoding {
        case .keyNotFound(let key, let context):
            return "\(file): missing key \"\(key.stringValue)\"" + location(context.codingPath, prefix: " in ")
        case .typeMismatch(let type, let context):
            return "\(file): \(path(context.codingPath)) must be \(typeName(type))" + found(context)
        case .valueNotFound(let type, let context):
            return "\(file): \(path(context.codingPath)) must be \(typeName(type)), not null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
                return "\(file) is not valid JSON" + (detail.map { " (\($0))" } ?? "")
            }
            return "\(file): \(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(file): \(decoding)"
        }
    }

    /// `["artifacts", 1, "kind"]` -> `artifacts[1].kind`, as edgevit's Python side writes JSON paths.
    static func path(_ codingPath: [any CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return out.isEmpty ? "the document" : out
    }

    static func location(_ codingPath: [any CodingKey], prefix: String) -> String {
        codingPath.isEmpty ? "" : prefix + path(codingPath)
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is [Any].Type: return "a list"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") || name.hasSuffix("CodingKeys") { return "an object" }
            return "a JSON object (\(name))"
        }
    }

    static func found(_ context: DecodingError.Context) -> String {
        // Foundation says e.g. "Expected to decode Int but found a string instead."
        guard let range = context.debugDescription.range(of: "but found ") else { return "" }
        let rest = context.debugDescription[range.upperBound...]
        return ", found " + rest.replacingOccurrences(of: " instead.", with: "").trimmingCharacters(in: .punctuationCharacters)
    }

    /// Decode `T` from `data`, or throw HarnessError.badArgument/badArtifact with a readable message.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String,
                                     error make: (String) -> HarnessError) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw make(describe(error, file: file))
        }
    }
}

/// The `format` key of a JSON object, read first so that a file of another kind is named as such (not
/// reported as "missing key rounds"). Invalid JSON and non-objects are reported here too.
private func readFormat(_ data: Data, file: String, error make: (String) -> HarnessError) throws -> String? {
    let object: Any
    do { object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
        let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
        throw make("\(file) is not valid JSON" + (detail.map { " (\($0))" } ?? ""))
    }
    guard let dictionary = object as? [String: Any] else { throw make("\(file) must hold a JSON object") }
    guard let value = dictionary["format"], !(value is NSNull) else { return nil }
    guard let format = value as? String else { throw make("\(file): format must be a string") }
    return format
}

/// config.json (format "edgevit-ios-config/1").
public struct HarnessConfig: Codable, Equatable, Sendable {
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

    /// Read and check config.json; every problem is a HarnessError.badArgument naming the file and the key.
    public static func load(from url: URL) throws -> HarnessConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw HarnessError.missingFile("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try parse(data, file: url.lastPathComponent)
    }

    /// `data` as config.json; `file` names it in error messages.
    public static func parse(_ data: Data, file: String = "config.json") throws -> HarnessConfig {
        let restage = "Re-stage with `edgevit harness ios`."
        let found = try readFormat(data, file: file, error: HarnessError.badArgument)
        guard let found else {
            throw HarnessError.badArgument("\(file) has no \"format\" key; it is not a \(format) file. \(restage)")
        }
        guard found == format else {
            throw HarnessError.badArgument("\(file) has format \"\(found)\"; this harness reads \(format). \(restage)")
        }
        let config = try JSONFileError.decode(HarnessConfig.self, from: data, file: file, error: { .badArgument($0) })
        do { try config.validate() } catch let error as HarnessError {
            throw HarnessError.badArgument("\(file): \(error)")
        }
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
        guard !computeUnits.isEmpty else {
            throw HarnessError.badArgument("no compute units to run; choose from \(ComputeUnit.choices)")
        }
        var seen = Set<String>()
        for (i, entry) in artifacts.enumerated() {
            try entry.validate(at: i)
            guard seen.insert(entry.artifact).inserted else {
                throw HarnessError.badArgument("artifacts[\(i)]: \(entry.artifact) is listed twice")
            }
        }
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

public enum ArtifactKind: String, Codable, CaseIterable, Sendable {
    case mlpackage
    case mlmodelc
    case pte

    public init?(fileName: String) {
        guard let ext = fileName.split(separator: ".").last, fileName.contains(".") else { return nil }
        self.init(rawValue: String(ext))
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let kind = ArtifactKind(rawValue: text) else {
            let choices = ArtifactKind.allCases.map(\.rawValue).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "unknown artifact kind \"\(text)\"; choose from \(choices)")
        }
        self = kind
    }
}

/// One staged artifact: file names relative to the config's folder.
public struct ArtifactEntry: Codable, Equatable, Sendable {
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

    /// File names must be plain names inside the staged folder, and the artifact's extension its kind.
    func validate(at index: Int) throws {
        for (key, name) in [("artifact", artifact), ("manifest", manifest), ("validation", validation ?? "x")] {
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw HarnessError.badArgument("artifacts[\(index)].\(key) must be a file name in the staged folder, "
                                               + "got \"\(name)\"")
            }
        }
        guard artifact.hasSuffix("." + kind.rawValue) else {
            throw HarnessError.badArgument("artifacts[\(index)]: \(artifact) does not end in .\(kind.rawValue), "
                                           + "its kind")
        }
    }
}

/// The parts of the converter's manifest (X.json) this harness needs.
public struct ArtifactManifest: Decodable, Sendable {
    public struct Input: Decodable, Sendable {
        public var name: String
        /// "image" (RGB 0-255, normalised inside the model) or "tensor" (preprocessed NCHW float32).
        public var kind: String
        public var shape: [Int]
    }

    public struct Output: Decodable, Sendable {
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
        let manifest = try JSONFileError.decode(ArtifactManifest.self, from: data, file: "manifest \(url.lastPathComponent)",
                                                error: { .badArtifact($0) })
        guard ["image", "tensor"].contains(manifest.input.kind) else {
            throw HarnessError.badArtifact("manifest \(url.lastPathComponent): input.kind is \"\(manifest.input.kind)\"; "
                                           + "this harness feeds \"image\" or \"tensor\" inputs")
        }
        guard !manifest.input.shape.isEmpty, manifest.input.shape.allSatisfy({ $0 > 0 }) else {
            throw HarnessError.badArtifact("manifest \(url.lastPathComponent): input.shape \(manifest.input.shape) is "
                                           + "not a shape")
        }
        return manifest
    }
}

/// X.validation/index.json (format "edgevit-validation/1").
public struct ValidationIndex: Decodable, Sendable {
    public static let format = "edgevit-validation/1"

    public struct Entry: Decodable, Equatable, Sendable {
        public var name: String
        /// PNG of the 224x224 RGB crop, for image-input models; nil for random-tensor inputs.
        public var image: String?
        /// Raw little-endian float32 of the preprocessed NCHW tensor, for tensor-input models.
        public var tensor: String?
        public var shape: [Int]

        public init(name: String, image: String?, tensor: String?, shape: [Int]) {
            self.name = name
            self.image = image
            self.tensor = tensor
            self.shape = shape
        }
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
        let file = "\(folder.lastPathComponent)/index.json"
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw HarnessError.missingFile("\(file) not found")
        }
        let found = try readFormat(data, file: file, error: HarnessError.badArtifact)
        guard found == format else {
            throw HarnessError.badArtifact("\(file) is \(found.map { "\"\($0)\"" } ?? "of no format"), not \(format); "
                                           + "re-run `edgevit convert`")
        }
        return try JSONFileError.decode(ValidationIndex.self, from: data, file: file, error: { .badArtifact($0) })
    }
}
