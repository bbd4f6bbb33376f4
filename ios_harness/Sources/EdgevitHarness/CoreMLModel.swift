// The CoreML runtime (Apple platforms only: this whole file is behind `#if canImport(CoreML)`, so the rest
// of the package builds and is tested on Linux). Compile .mlpackage -> .mlmodelc once, load it per compute
// unit, build inputs from the validation bundle (PNG for image-input models, raw float32 for tensor-input
// models) and read outputs back as a flat Float vector in class-index order.

#if canImport(CoreML)
import CoreGraphics
import CoreML
import Foundation

extension ComputeUnit {
    public var mlComputeUnits: MLComputeUnits {
        switch self {
        case .cpuOnly: return .cpuOnly
        case .cpuAndGPU: return .cpuAndGPU
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        case .all: return .all
        }
    }
}

/// CoreML as the harness's ModelRuntime.
public struct CoreMLRuntime: ModelRuntime {
    public init() {}

    /// `.mlmodelc` is used as is; `.mlpackage` is compiled with MLModel.compileModel(at:), as an app does
    /// with a model it downloads (Xcode does the same step at build time for bundled models).
    public func prepare(_ artifact: URL, manifest: ArtifactManifest) async throws -> any PreparedModel {
        switch artifact.pathExtension {
        case "mlmodelc":
            return CompiledModel(url: artifact, prepareMs: nil, isTemporary: false, manifest: manifest)
        case "mlpackage", "mlmodel":
            let start = nowNanoseconds()
            let url = try await MLModel.compileModel(at: artifact)
            return CompiledModel(url: url, prepareMs: milliseconds(from: start, to: nowNanoseconds()),
                                 isTemporary: true, manifest: manifest)
        default:
            throw HarnessError.unsupported("\(artifact.lastPathComponent): not a CoreML model (.mlpackage/.mlmodelc)")
        }
    }
}

/// A compiled model on disk (.mlmodelc), and how long compiling it took (nil when shipped compiled).
public struct CompiledModel: PreparedModel {
    public var url: URL
    public var prepareMs: Double?
    /// True when the compiled copy is a temporary this harness made and should delete.
    public var isTemporary: Bool
    public var manifest: ArtifactManifest

    public func load(_ unit: ComputeUnit) throws -> any LoadedModel {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = unit.mlComputeUnits
        let model = try MLModel(contentsOf: url, configuration: configuration)
        return CoreMLLoadedModel(model: model, manifest: manifest)
    }

    public func cleanUp() {
        if isTemporary { try? FileManager.default.removeItem(at: url) }
    }
}

/// A model loaded for one compute unit, with its current input.
final class CoreMLLoadedModel: LoadedModel {
    let model: MLModel
    let factory: InputFactory
    let reader: OutputReader
    private var input: (any MLFeatureProvider)?

    init(model: MLModel, manifest: ArtifactManifest) {
        self.model = model
        factory = InputFactory(manifest: manifest, description: model.modelDescription)
        reader = OutputReader(manifest: manifest, description: model.modelDescription)
    }

    func useInput(_ entry: ValidationIndex.Entry, in folder: URL) throws -> Bool {
        guard let provider = try factory.provider(for: entry, in: folder) else { return false }
        input = provider
        return true
    }

    func useSyntheticInput() throws {
        input = try factory.syntheticProvider()
    }

    private func currentInput() throws -> any MLFeatureProvider {
        guard let input else { throw HarnessError.badArgument("no input chosen before predicting") }
        return input
    }

    func predict() throws {
        let input = try currentInput()
        try autoreleasepool { _ = try model.prediction(from: input) }
    }

    func predictOutput() throws -> (shape: [Int], values: [Float]) {
        let input = try currentInput()
        return try autoreleasepool { try reader.read(try model.prediction(from: input)) }
    }

    var outputWarnings: [String] {
        guard !reader.duplicateLabels.isEmpty else { return [] }
        return ["class labels repeat (\(reader.duplicateLabels.joined(separator: ", "))): the classifier's "
                + "{label: probability} output holds one value for each repeated label, so those classes' values "
                + "here are copies, not the model's per-class outputs"]
    }
}

/// Builds the model's input feature from a validation entry, or a deterministic synthetic input.
public struct InputFactory {
    public let manifest: ArtifactManifest
    public let description: MLModelDescription

    public init(manifest: ArtifactManifest, description: MLModelDescription) {
        self.manifest = manifest
        self.description = description
    }

    var inputName: String { manifest.input.name }

    /// Validation entry -> input; nil when the entry has no form this model takes (a random tensor for an
    /// image-input model).
    public func provider(for entry: ValidationIndex.Entry, in folder: URL) throws -> (any MLFeatureProvider)? {
        if manifest.input.kind == "image" {
            guard let image = entry.image else { return nil }
            return try imageProvider(at: folder.appendingPathComponent(image))
        }
        guard let tensor = entry.tensor else { return nil }
        return try tensorProvider(at: folder.appendingPathComponent(tensor), shape: entry.shape)
    }

    /// For timing when an artifact has no validation inputs: a fixed pattern (latency does not depend on
    /// values for these models; the pattern avoids all-zero shortcuts).
    public func syntheticProvider() throws -> any MLFeatureProvider {
        let shape = manifest.input.shape
        if manifest.input.kind == "image" {
            guard shape.count == 4 else {
                throw HarnessError.badArtifact("image input \(inputName) has shape \(shape), expected [1, 3, H, W]")
            }
            let image = try syntheticImage(width: shape[3], height: shape[2])
            let constraint = try imageConstraint()
            let value = try MLFeatureValue(cgImage: image, constraint: constraint, options: nil)
            return try MLDictionaryFeatureProvider(dictionary: [inputName: value])
        }
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        var state: UInt32 = 12345
        for i in 0..<count {  // small LCG in [-2, 2): roughly the range of normalised pixels
            state = state &* 1_664_525 &+ 1_013_904_223
            values[i] = Float(state >> 8) / Float(1 << 24) * 4.0 - 2.0
        }
        let array = try multiArray(values, shape: shape)
        return try MLDictionaryFeatureProvider(dictionary: [inputName: MLFeatureValue(multiArray: array)])
    }

    func imageConstraint() throws -> MLImageConstraint {
        guard let constraint = description.inputDescriptionsByName[inputName]?.imageConstraint else {
            throw HarnessError.badArtifact("the manifest says input \(inputName) is an image, but the model has no "
                                           + "image input of that name")
        }
        return constraint
    }

    func imageProvider(at url: URL) throws -> any MLFeatureProvider {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw HarnessError.missingFile("validation image \(url.lastPathComponent) is missing")
        }
        let constraint = try imageConstraint()
        let value = try MLFeatureValue(imageAt: url, constraint: constraint, options: nil)
        return try MLDictionaryFeatureProvider(dictionary: [inputName: value])
    }

    func tensorProvider(at url: URL, shape: [Int]) throws -> any MLFeatureProvider {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw HarnessError.missingFile("validation tensor \(url.lastPathComponent) is missing")
        }
        let count = shape.reduce(1, *)
        guard data.count == count * MemoryLayout<Float>.size else {
            throw HarnessError.badArtifact("\(url.lastPathComponent) has \(data.count) bytes; shape \(shape) needs "
                                           + "\(count * MemoryLayout<Float>.size) (little-endian float32)")
        }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { target in
            _ = data.copyBytes(to: target)  // Apple CPUs are little-endian, like the file
        }
        let array = try multiArray(values, shape: shape)
        return try MLDictionaryFeatureProvider(dictionary: [inputName: MLFeatureValue(multiArray: array)])
    }

    func multiArray(_ values: [Float], shape: [Int]) throws -> MLMultiArray {
        let array = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: .float32)
        let strides = array.strides.map(\.intValue)
        array.withUnsafeMutableBufferPointer(ofType: Float.self) { buffer, _ in
            // Row-major logical index -> storage offset (a fresh MLMultiArray is dense, but respect strides).
            for linear in 0..<values.count {
                var rest = linear
                var offset = 0
                for dim in stride(from: shape.count - 1, through: 0, by: -1) {
                    offset += (rest % shape[dim]) * strides[dim]
                    rest /= shape[dim]
                }
                buffer[offset] = values[linear]
            }
        }
        return array
    }

    func syntheticImage(width: Int, height: Int) throws -> CGImage {
        guard let context = CGContext(data: nil, width: width, height: height, bitsPerComponent: 8, bytesPerRow: 0,
                                      space: CGColorSpaceCreateDeviceRGB(),
                                      bitmapInfo: CGImageAlphaInfo.premultipliedLast.rawValue),
              let base = context.data else {
            throw HarnessError.unsupported("cannot create a \(width)x\(height) RGB image")
        }
        let row = context.bytesPerRow
        let pixels = base.bindMemory(to: UInt8.self, capacity: row * height)
        for y in 0..<height {
            for x in 0..<width {
                let p = y * row + x * 4
                pixels[p] = UInt8((x * 255) / max(width - 1, 1))
                pixels[p + 1] = UInt8((y * 255) / max(height - 1, 1))
                pixels[p + 2] = UInt8(((x + y) * 7) % 256)
                pixels[p + 3] = 255
            }
        }
        guard let image = context.makeImage() else {
            throw HarnessError.unsupported("cannot create a \(width)x\(height) RGB image")
        }
        return image
    }
}

/// Reads the model's output as a flat Float vector in class-index order, and its shape.
public struct OutputReader {
    public let outputName: String
    public let classLabels: [AnyHashable]?
    /// Set when the model's class labels repeat (e.g. ImageNet's two "crane" classes): a classifier's
    /// {label: probability} dictionary then holds one value for both, which no reader can undo.
    public let duplicateLabels: [String]

    public init(manifest: ArtifactManifest, description: MLModelDescription) {
        outputName = manifest.output.name
        let labels = description.classLabels?.compactMap { $0 as? AnyHashable }
        classLabels = labels
        var seen = Set<AnyHashable>()
        var duplicates: [String] = []
        for label in labels ?? [] where !seen.insert(label).inserted {
            duplicates.append("\(label)")
        }
        duplicateLabels = duplicates
    }

    public func read(_ output: any MLFeatureProvider) throws -> (shape: [Int], values: [Float]) {
        guard let value = output.featureValue(for: outputName) else {
            let names = output.featureNames.sorted().joined(separator: ", ")
            throw HarnessError.badArtifact("the model has no output \(outputName) (it has: \(names))")
        }
        if let array = value.multiArrayValue {
            let shaped = MLShapedArray<Float>(converting: array)  // any dtype/strides -> dense row-major Float
            return (array.shape.map(\.intValue), shaped.scalars)
        }
        let dictionary = value.dictionaryValue
        if !dictionary.isEmpty {
            guard let labels = classLabels, !labels.isEmpty else {
                throw HarnessError.badArtifact("output \(outputName) is a dictionary but the model lists no class labels")
            }
            var values: [Float] = []
            values.reserveCapacity(labels.count)
            for label in labels {
                guard let p = dictionary[label] else {
                    throw HarnessError.badArtifact("output \(outputName) has no entry for class label \(label)")
                }
                values.append(p.floatValue)
            }
            return ([1, values.count], values)
        }
        throw HarnessError.unsupported("output \(outputName) is neither a multi-array nor a class dictionary")
    }
}
#endif
