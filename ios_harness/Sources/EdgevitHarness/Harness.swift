// One benchmark session: every staged artifact x every compute unit, with the protocol Apple used for the
// FastViT and MobileOne latency tables (1 warm-up, then `rounds` rounds of `iterations` predictions, the
// highest and lowest time of each round dropped), then the shared statistics (Stats.swift) on the pooled
// samples. Each artifact's validation inputs are run too and saved as device outputs for parity checks.

import CoreML
import Foundation

public let harnessVersion = "1.0.0"

public final class Harness {
    public let config: HarnessConfig
    public let artifactsDir: URL
    public let device: DeviceInfo
    private let log: (String) -> Void

    /// `artifactsDir` holds the artifacts named in `config` with their manifests and validation folders.
    public init(config: HarnessConfig, artifactsDir: URL, log: @escaping (String) -> Void = { print($0) }) {
        self.config = config
        self.artifactsDir = artifactsDir
        self.device = DeviceProbe.current()
        self.log = log
    }

    /// Measure everything and write `resultsFile` (schema.json) plus `<stem>[.<unit>].device-outputs.json`
    /// beside it. The results file is rewritten after every artifact, so a run the OS kills midway (memory
    /// limit, thermal shutdown) still leaves what it measured.
    @discardableResult
    public func run(resultsFile: URL) async throws -> ResultsDocument {
        try config.validate()
        let outputsDir = resultsFile.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: outputsDir, withIntermediateDirectories: true)
        log("edgevit iOS harness \(harnessVersion) on \(device.name), \(device.os), \(device.cpu)")
        log("protocol: \(config.warmup) warm-up, \(config.rounds) rounds x \(config.iterations) iterations "
            + "(highest and lowest of each round dropped), trim fraction \(config.trimFraction); "
            + "compute units: \(config.computeUnits.map(\.rawValue).joined(separator: ", "))")
        if config.artifacts.isEmpty { log("no artifacts to run") }
        var results: [BenchResult] = []
        var document = ResultsDocument(results: results)
        for (i, entry) in config.artifacts.enumerated() {
            log("[\(i + 1)/\(config.artifacts.count)] \(entry.artifact)")
            results += await runArtifact(entry, outputsDir: outputsDir)
            document = ResultsDocument(results: results)
            try document.jsonData().write(to: resultsFile, options: .atomic)
        }
        if config.artifacts.isEmpty { try document.jsonData().write(to: resultsFile, options: .atomic) }
        log("results: \(resultsFile.path)")
        return document
    }

    func runArtifact(_ entry: ArtifactEntry, outputsDir: URL) async -> [BenchResult] {
        let manifest: ArtifactManifest
        do {
            manifest = try ArtifactManifest.load(from: artifactsDir.appendingPathComponent(entry.manifest))
        } catch {
            log("  failed: \(error)")
            return [record(entry, nil, unit: nil, status: "failed", error: "\(error)")]
        }
        if entry.kind == .pte {
            let why = "this build of the iOS harness has no ExecuTorch runtime; run .pte files on the host "
                + "(`edgevit bench`) or on Android (android_harness/), see ios_harness/README.md"
            log("  not run: \(why)")
            return [record(entry, manifest, unit: nil, status: "not_run", error: why)]
        }
        let compiled: CompiledModel
        do {
            compiled = try await CompiledModel.prepare(artifactURL(entry))
        } catch {
            log("  compiling failed: \(error)")
            return config.computeUnits.map {
                record(entry, manifest, unit: $0, status: "failed", error: "compiling the model failed: \(error)")
            }
        }
        defer { compiled.removeIfTemporary() }
        if let ms = compiled.compileMs { log(String(format: "  compiled .mlpackage -> .mlmodelc in %.1f ms", ms)) }

        var results: [BenchResult] = []
        var saved: [ComputeUnit: DeviceOutputs] = [:]
        for unit in config.computeUnits {
            let (result, outputs) = measure(entry, manifest, compiled, unit)
            results.append(result)
            if let outputs {
                saved[unit] = outputs
                save(outputs, to: outputsDir.appendingPathComponent(
                    DeviceOutputs.fileName(artifact: entry.artifact, computeUnit: unit)))
            }
        }
        // The unsuffixed file (what `edgevit validate --device-outputs` is pointed at by default): the
        // "all" setting an app would use, else the first compute unit that produced outputs.
        if let preferred = saved[.all] ?? config.computeUnits.compactMap({ saved[$0] }).first {
            save(preferred, to: outputsDir.appendingPathComponent(
                DeviceOutputs.fileName(artifact: entry.artifact, computeUnit: nil)))
        }
        return results
    }

    /// The artifact on disk. If a build step compiled a bundled X.mlpackage into X.mlmodelc (Xcode does so
    /// for models it treats as sources), the compiled one is used.
    func artifactURL(_ entry: ArtifactEntry) -> URL {
        let url = artifactsDir.appendingPathComponent(entry.artifact)
        if entry.kind == .mlpackage, !FileManager.default.fileExists(atPath: url.path) {
            let compiled = url.deletingPathExtension().appendingPathExtension("mlmodelc")
            if FileManager.default.fileExists(atPath: compiled.path) {
                log("  \(entry.artifact) is not in the bundle but \(compiled.lastPathComponent) is; using it")
                return compiled
            }
        }
        return url
    }

    /// Load for one compute unit, time it, run the validation inputs.
    func measure(_ entry: ArtifactEntry, _ manifest: ArtifactManifest, _ compiled: CompiledModel,
                 _ unit: ComputeUnit) -> (BenchResult, DeviceOutputs?) {
        var peak = PeakFootprint()
        var loadMs: Double?
        do {
            peak.sample()
            let loaded = try LoadedModel.load(compiled, computeUnit: unit)
            loadMs = loaded.loadMs
            peak.sample()
            let model = loaded.model
            let factory = InputFactory(manifest: manifest, description: model.modelDescription)
            let benchInput = try timingInput(entry, factory)

            for _ in 0..<config.warmup {
                try autoreleasepool { _ = try model.prediction(from: benchInput) }
            }
            peak.sample()
            var rounds: [[Double]] = []
            rounds.reserveCapacity(config.rounds)
            for _ in 0..<config.rounds {
                var times: [Double] = []
                times.reserveCapacity(config.iterations)
                for _ in 0..<config.iterations {
                    let ms = try autoreleasepool { () throws -> Double in
                        let start = nowNanoseconds()
                        _ = try model.prediction(from: benchInput)
                        return milliseconds(from: start, to: nowNanoseconds())
                    }
                    times.append(ms)
                    peak.sample()  // outside the timed span
                }
                rounds.append(times)
            }
            let samples = Stats.protocolSamples(rounds)
            let summary = try Stats.summarize(samples, trimFraction: config.trimFraction)

            var outputs: DeviceOutputs?
            do {
                outputs = try validationOutputs(entry, manifest, model, factory, unit)
            } catch {
                log("  \(unit.rawValue): validation inputs could not be run: \(error)")
            }
            peak.sample()
            log("  \(unit.rawValue): "
                + String(format: "load %.1f ms, median %.3f ms, p90 %.3f ms, peak footprint %.0f MB",
                         loaded.loadMs, summary.medianMs ?? .nan, summary.p90Ms ?? .nan, peak.megabytes ?? .nan)
                + thermalNote())
            var result = record(entry, manifest, unit: unit, status: "ok", error: nil)
            result.iterations = samples.count
            result.perIterationMs = samples
            result.medianMs = summary.medianMs
            result.trimmedMeanMs = summary.trimmedMeanMs
            result.p90Ms = summary.p90Ms
            result.peakMemoryMb = peak.megabytes
            result.memoryKind = peak.megabytes == nil ? nil : Memory.kind
            result.loadTimeMs = loaded.loadMs
            return (result, outputs)
        } catch {
            log("  \(unit.rawValue): failed: \(error)")
            var result = record(entry, manifest, unit: unit, status: "failed", error: "\(error)")
            result.loadTimeMs = loadMs
            return (result, nil)
        }
    }

    /// The input timed: the first validation input the model takes (a real photo for image models), else a
    /// synthetic one. Latency of these models does not depend on pixel values.
    func timingInput(_ entry: ArtifactEntry, _ factory: InputFactory) throws -> MLFeatureProvider {
        if let folderName = entry.validation {
            let folder = artifactsDir.appendingPathComponent(folderName)
            if let index = try? ValidationIndex.load(from: folder) {
                for item in index.inputs {
                    if let provider = try factory.provider(for: item, in: folder) { return provider }
                }
            }
        }
        return try factory.syntheticProvider()
    }

    func validationOutputs(_ entry: ArtifactEntry, _ manifest: ArtifactManifest, _ model: MLModel,
                           _ factory: InputFactory, _ unit: ComputeUnit) throws -> DeviceOutputs? {
        guard let folderName = entry.validation else { return nil }
        let folder = artifactsDir.appendingPathComponent(folderName)
        let index = try ValidationIndex.load(from: folder)
        let reader = OutputReader(manifest: manifest, description: model.modelDescription)
        var outputs: [DeviceOutputs.Output] = []
        for item in index.inputs {
            guard let provider = try factory.provider(for: item, in: folder) else { continue }  // no image form
            let (shape, values) = try autoreleasepool { try reader.read(try model.prediction(from: provider)) }
            outputs.append(DeviceOutputs.Output(name: item.name, shape: shape, values: values))
        }
        if outputs.isEmpty {
            log("  \(unit.rawValue): no validation input has a form this model takes")
            return nil
        }
        var warnings: [String] = []
        if !reader.duplicateLabels.isEmpty {
            warnings.append("class labels repeat (\(reader.duplicateLabels.joined(separator: ", "))): the "
                            + "classifier's {label: probability} output holds one value for each repeated label, "
                            + "so those classes' values here are copies, not the model's per-class outputs")
        }
        return DeviceOutputs(artifact: entry.artifact, artifactSha256: validSha256(manifest.sha256), device: device,
                             computeUnit: unit.rawValue, outputs: outputs, warnings: warnings)
    }

    func save(_ outputs: DeviceOutputs, to url: URL) {
        do {
            try outputs.jsonData().write(to: url, options: .atomic)
        } catch {
            log("  cannot write \(url.lastPathComponent): \(error)")
        }
    }

    func thermalNote() -> String {
        switch ProcessInfo.processInfo.thermalState {
        case .serious: return " (thermal state SERIOUS: the device may be throttling)"
        case .critical: return " (thermal state CRITICAL: numbers are throttled)"
        default: return ""
        }
    }

    /// A result with everything not measured left null (status failed / not_run, or ok before filling in).
    func record(_ entry: ArtifactEntry, _ manifest: ArtifactManifest?, unit: ComputeUnit?, status: String,
                error: String?) -> BenchResult {
        let isPte = entry.kind == .pte
        let shape = manifest?.input.shape ?? []
        var versions = ["edgevit-ios-harness": harnessVersion, "os": device.os]
        for key in ["edgevit", "coremltools", "executorch", "torch"] {
            if let version = manifest?.toolVersions?[key] { versions["converted-with-\(key)"] = version }
        }
        let stem = (entry.artifact as NSString).deletingPathExtension
        let precision = manifest?.precision ?? (entry.artifact.contains(".fp16.") ? "fp16" : "fp32")
        return BenchResult(
            model: manifest?.model ?? stem,
            form: isPte ? "executorch" : "coreml",
            artifact: entry.artifact,
            artifactSha256: validSha256(manifest?.sha256),
            runtime: isPte ? "executorch" : "coreml",
            backend: isPte ? manifest?.backend : nil,
            computeUnit: unit?.rawValue,
            precision: precision,
            device: device,
            batch: max(shape.first ?? 1, 1),
            inputShape: shape,
            warmup: config.warmup,
            iterations: 0,
            perIterationMs: [],
            medianMs: nil,
            trimmedMeanMs: nil,
            trimFraction: config.trimFraction,
            p90Ms: nil,
            peakMemoryMb: nil,
            memoryKind: nil,
            loadTimeMs: nil,
            toolVersions: versions,
            status: status,
            error: error)
    }
}

/// The schema accepts a 64-hex-digit lower-case sha256 or null.
func validSha256(_ value: String?) -> String? {
    guard let value, value.count == 64,
          value.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else { return nil }
    return value
}
