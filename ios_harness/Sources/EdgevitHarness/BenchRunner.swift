// What the iPhone app's one screen shows and does, without SwiftUI or UIKit: the app
// (App/EdgevitBench.swiftpm) only draws this state. Here it is compiled under the Swift 6 language mode
// and tested on every platform, main-actor isolation included.
//
// A run goes off the main actor (a detached task) so the screen stays live; its log lines come back in
// order through an AsyncStream, which the main actor drains.

import Foundation
import Observation

@MainActor
@Observable
public final class BenchRunner {
    public enum Phase: Equatable, Sendable {
        case idle
        case running
        case finished
        case failed(String)
    }

    public private(set) var lines: [String] = []
    public private(set) var phase: Phase = .idle
    public private(set) var resultsFile: URL?
    /// The bundled staged folder (config.json + artifacts), nil when this build has none.
    public let stagedFolder: URL?
    /// Told true when a run starts and false when it ends (the app keeps the screen awake meanwhile).
    @ObservationIgnored public var onRunningChanged: @MainActor (Bool) -> Void = { _ in }

    @ObservationIgnored private let runtime: (any ModelRuntime)?
    @ObservationIgnored private let outputFolder: @Sendable () throws -> URL

    /// `outputFolder` is where a run writes (emptied first): the app's Documents/edgevit/ by default.
    public init(stagedFolder: URL?, runtime: (any ModelRuntime)? = Harness.platformRuntime,
                outputFolder: @escaping @Sendable () throws -> URL = { try Staging.documentsOutputFolder() }) {
        self.stagedFolder = stagedFolder
        self.runtime = runtime
        self.outputFolder = outputFolder
    }

    /// config.json asks to start at launch (`edgevit harness ios --autostart`).
    public var autostart: Bool {
        guard let folder = stagedFolder else { return false }
        return (try? Staging.config(in: folder))?.autostart ?? false
    }

    public var summary: String {
        guard let folder = stagedFolder else {
            return "No staged artifacts in this build. On the computer: `edgevit harness ios --artifacts DIR "
                + "--out STAGED`, then open STAGED/App/EdgevitBench.swiftpm in Xcode and run again."
        }
        let config: HarnessConfig
        do { config = try Staging.config(in: folder) } catch { return "The staged config cannot be used: \(error)" }
        let units = config.computeUnits.map(\.rawValue).joined(separator: ", ")
        return "\(config.artifacts.count) artifact(s); \(config.warmup) warm-up + \(config.rounds) x "
            + "\(config.iterations) iterations on \(units)"
    }

    /// Start a run unless one is going; the returned task ends when the run has ended and the state is final.
    @discardableResult
    public func start() -> Task<Void, Never>? {
        guard phase != .running else { return nil }
        guard let folder = stagedFolder else {
            phase = .failed("no staged artifacts in the app")
            return nil
        }
        guard let runtime else {
            phase = .failed("this build has no CoreML runtime")
            return nil
        }
        phase = .running
        lines = []
        resultsFile = nil
        onRunningChanged(true)
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let outputFolder = outputFolder
        let work = Task.detached(priority: .userInitiated) { () -> (Phase, URL?) in
            defer { continuation.finish() }
            return await BenchRunner.run(folder: folder, runtime: runtime, outputFolder: outputFolder,
                                         log: { continuation.yield($0) })
        }
        return Task {
            for await line in stream { lines.append(line) }
            let (outcome, file) = await work.value
            finish(outcome, resultsFile: file)
        }
    }

    /// The run itself, off the main actor.
    nonisolated static func run(folder: URL, runtime: any ModelRuntime, outputFolder: @Sendable () throws -> URL,
                                log: @escaping (String) -> Void) async -> (Phase, URL?) {
        do {
            let config = try Staging.config(in: folder)
            let outDir = try outputFolder()
            for stale in try FileManager.default.contentsOfDirectory(at: outDir, includingPropertiesForKeys: nil) {
                try FileManager.default.removeItem(at: stale)  // never leave an earlier run's files behind
            }
            let results = outDir.appendingPathComponent("results.json")
            try await Harness(config: config, artifactsDir: folder, runtime: runtime, log: log).run(resultsFile: results)
            return (.finished, results)
        } catch {
            log("error: \(error)")
            return (.failed("\(error)"), nil)
        }
    }

    private func finish(_ outcome: Phase, resultsFile file: URL?) {
        phase = outcome
        resultsFile = file
        onRunningChanged(false)
        writeLog()
    }

    private func writeLog() {
        guard let outDir = try? outputFolder() else { return }
        let text = lines.joined(separator: "\n") + "\n"
        try? text.write(to: outDir.appendingPathComponent("run.log"), atomically: true, encoding: .utf8)
    }
}
