// One benchmark session: every staged artifact x every compute unit, with the protocol Apple used for the
// FastViT and MobileOne latency tables (1 warm-up, then `rounds` rounds of `iterations` predictions, the
// highest and lowest time of each round dropped), then the shared statistics (Stats.swift) on the pooled
// samples. Each artifact's validation inputs are run too and saved as device outputs for parity checks.
// Nothing here depends on CoreML: the runtime is a ModelRuntime (CoreMLRuntime on Apple platforms).

import Foundation

public let harnessVersion = "1.1.0"

public final class Harness {
    public let config: HarnessConfig
    public let artifactsDir: URL
    public let device: DeviceInfo
    let runtime: any ModelRuntime
    let clock: () -> UInt64
    let memory: () -> UInt64?
    private let log: (String) -> Void

    /// The runtime of this platform: CoreML where it exists, nil elsewhere (Linux builds test the rest).
    public static var platformRuntime: (any ModelRuntime)? {
        #if canImport(CoreML)
        return CoreMLRuntime()
        #else
        return nil
        #endif
    }

    /// `artifactsDir` holds the artifacts named in `config` with their manifests and validation folders.
    /// `clock` and `memory` are the monotonic clock and the footprint probe (replaceable in tests).
    public init(config: HarnessConfig, artifactsDir: URL, runtime: any ModelRuntime,
                device: DeviceInfo = DeviceProbe.current(), clock: @escaping () -> UInt64 = nowNanoseconds,
                memory: @escaping () -> UInt64? = Memory.physFootprintBytes,
                log: @escaping (String) -> Void = { print($0) }) {
        self.config = config
        self.artifactsDir = artifactsDir
        self.runtime = runtime
        self.device = device
        self.clock = clock
        self.memory = memory
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
        let prepared: any PreparedModel
        do {
            let url = artifactURL(entry)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw HarnessError.missingFile("artifact \(entry.artifact) not found in \(artifactsDir.path)")
            }
            prepared = try await runtime.prepare(url, manifest: manifest)
        } catch {
            log("  compiling failed: \(error)")
            return config.computeUnits.map {
                record(entry, manifest, unit: $0, status: "failed", error: "compiling the model failed: \(error)")
            }
        }
        defer { prepared.cleanUp() }
        if let ms = prepared.prepareMs { log(String(format: "  compiled .mlpackage -> .mlmodelc in %.1f ms", ms)) }

        var results: [BenchResult] = []
        var saved: [ComputeUnit: DeviceOutputs] = [:]
        for unit in config.computeUnits {
            let (result, outputs) = measure(entry, manifest, prepared, unit)
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
    func measure(_ entry: ArtifactEntry, _ manifest: ArtifactManifest, _ prepared: any PreparedModel,
                 _ unit: ComputeUnit) -> (BenchResult, DeviceOutputs?) {
        var peak = PeakFootprint(probe: memory)
        var loadMs: Double?
        do {
            peak.sample()
            let start = clock()
            let model = try prepared.load(unit)
            let loaded = milliseconds(from: start, to: clock())
            loadMs = loaded
            peak.sample()
            try useTimingInput(entry, model)
            let rounds = try TimingProtocol(config).measure(clock: clock, predict: model.predict,
                                                            between: { peak.sample() })
            let samples = Stats.protocolSamples(rounds)
            let summary = try Stats.summarize(samples, trimFraction: config.trimFraction)

            var outputs: DeviceOutputs?
            do {
                outputs = try validationOutputs(entry, manifest, model, unit)
            } catch {
                log("  \(unit.rawValue): validation inputs could not be run: \(error)")
            }
            peak.sample()
            log("  \(unit.rawValue): "
                + String(format: "load %.1f ms, median %.3f ms, p90 %.3f ms, peak footprint %.0f MB",
                         loaded, summary.medianMs ?? .nan, summary.p90Ms ?? .nan, peak.megabytes ?? .nan)
                + thermalNote())
            var result = record(entry, manifest, unit: unit, status: "ok", error: nil)
            result.iterations = samples.count
            result.perIterationMs = samples
            result.medianMs = summary.medianMs
            result.trimmedMeanMs = summary.trimmedMeanMs
            result.p90Ms = summary.p90Ms
            result.peakMemoryMb = peak.megabytes
            result.memoryKind = peak.megabytes == nil ? nil : Memory.kind
            result.loadTimeMs = loaded
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
    func useTimingInput(_ entry: ArtifactEntry, _ model: any LoadedModel) throws {
        if let folderName = entry.validation {
            let folder = artifactsDir.appendingPathComponent(folderName)
            if let index = try? ValidationIndex.load(from: folder) {
                for item in index.inputs where try model.useInput(item, in: folder) { return }
            }
        }
        try model.useSyntheticInput()
    }

    /// Every validation input once more, outputs kept. An input that fails ends the list, and the file says
    /// why in `error` (the outputs so far are kept, as the Android harness does).
    func validationOutputs(_ entry: ArtifactEntry, _ manifest: ArtifactManifest, _ model: any LoadedModel,
                           _ unit: ComputeUnit) throws -> DeviceOutputs? {
        guard let folderName = entry.validation else { return nil }
        let folder = artifactsDir.appendingPathComponent(folderName)
        let index = try ValidationIndex.load(from: folder)
        var outputs: [DeviceOutputs.Output] = []
        var failure: String?
        for item in index.inputs {
            do {
                guard try model.useInput(item, in: folder) else { continue }  // no form this model takes
                let (shape, values) = try model.predictOutput()
                outputs.append(DeviceOutputs.Output(name: item.name, shape: shape, values: values))
            } catch {
                failure = "validation input \(item.name) failed: \(error)"
                log("  \(unit.rawValue): \(failure!)")
                break
            }
        }
        if outputs.isEmpty && failure == nil {
            log("  \(unit.rawValue): no validation input has a form this model takes")
            return nil
        }
        return DeviceOutputs(artifact: entry.artifact, artifactSha256: validSha256(manifest.sha256), device: device,
                             computeUnit: unit.rawValue, outputs: outputs, warnings: model.outputWarnings,
                             error: failure)
    }

    func save(_ outputs: DeviceOutputs, to url: URL) {
        do {
            try outputs.jsonData().write(to: url, options: .atomic)
        } catch {
            log("  cannot write \(url.lastPathComponent): \(error)")
        }
    }

    func thermalNote() -> String {
        #if canImport(Darwin)
        switch ProcessInfo.processInfo.thermalState {
        case .serious: return " (thermal state SERIOUS: the device may be throttling)"
        case .critical: return " (thermal state CRITICAL: numbers are throttled)"
        default: return ""
        }
        #else
        return ""
        #endif
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
