// The iPhone app: one screen with a Run button and the log. It runs the staged config (bundled resource
// folder "Staged") with the EdgevitHarness library and writes to Documents/edgevit/:
//   results.json                         edgevit's results schema, one result per artifact x compute unit
//   <artifact>.device-outputs.json       outputs on the validation inputs ("all" compute unit)
//   <artifact>.<unit>.device-outputs.json  the same for each compute unit
//   run.log                              what the screen showed
// Staged with --autostart (config.json "autostart": true) or launched with the argument --autostart, it runs
// as soon as it opens, so `xcrun devicectl device process launch` can start a run without touching the phone.

import EdgevitHarness
import SwiftUI
import UIKit

@main
struct EdgevitBenchApp: App {
    @StateObject private var runner = BenchRunner()

    var body: some Scene {
        WindowGroup {
            ContentView(runner: runner)
                .onAppear {
                    if ProcessInfo.processInfo.arguments.contains("--autostart") || runner.autostart { runner.start() }
                }
        }
    }
}

@MainActor
final class BenchRunner: ObservableObject {
    enum Phase: Equatable {
        case idle
        case running
        case finished
        case failed(String)
    }

    @Published var lines: [String] = []
    @Published var phase: Phase = .idle
    @Published var resultsFile: URL?
    let stagedFolder: URL? = Staging.bundledFolder()

    /// config.json asks to start at launch (`edgevit harness ios --autostart`).
    var autostart: Bool {
        guard let folder = stagedFolder else { return false }
        return (try? Staging.config(in: folder))?.autostart ?? false
    }

    var summary: String {
        guard let folder = stagedFolder else {
            return "No staged artifacts in this build. On the computer: `edgevit harness ios --artifacts DIR "
                + "--out STAGED`, then open STAGED/App/EdgevitBench.swiftpm in Xcode and run again."
        }
        guard let config = try? Staging.config(in: folder) else { return "config.json in the app cannot be read" }
        let units = config.computeUnits.map(\.rawValue).joined(separator: ", ")
        return "\(config.artifacts.count) artifact(s); \(config.warmup) warm-up + \(config.rounds) x "
            + "\(config.iterations) iterations on \(units)"
    }

    func start() {
        guard phase != .running else { return }
        guard let folder = stagedFolder else {
            phase = .failed("no staged artifacts in the app")
            return
        }
        phase = .running
        lines = []
        resultsFile = nil
        UIApplication.shared.isIdleTimerDisabled = true  // a sleeping screen would pause the run
        Task.detached(priority: .userInitiated) { [weak self] in
            let log: (String) -> Void = { line in
                Task { @MainActor in self?.lines.append(line) }
            }
            var outcome: Phase = .finished
            var written: URL?
            do {
                let config = try Staging.config(in: folder)
                let outDir = try Staging.documentsOutputFolder()
                for stale in try FileManager.default.contentsOfDirectory(at: outDir, includingPropertiesForKeys: nil) {
                    try FileManager.default.removeItem(at: stale)  // never leave an earlier run's files behind
                }
                let results = outDir.appendingPathComponent("results.json")
                try await Harness(config: config, artifactsDir: folder, log: log).run(resultsFile: results)
                written = results
            } catch {
                log("error: \(error)")
                outcome = .failed("\(error)")
            }
            await self?.finish(outcome, resultsFile: written)
        }
    }

    private func finish(_ outcome: Phase, resultsFile file: URL?) {
        phase = outcome
        resultsFile = file
        UIApplication.shared.isIdleTimerDisabled = false
        writeLog()
    }

    private func writeLog() {
        guard let outDir = try? Staging.documentsOutputFolder() else { return }
        let text = lines.joined(separator: "\n") + "\n"
        try? text.write(to: outDir.appendingPathComponent("run.log"), atomically: true, encoding: .utf8)
    }
}

struct ContentView: View {
    @ObservedObject var runner: BenchRunner

    var body: some View {
        NavigationStack {
            VStack(alignment: .leading, spacing: 12) {
                Text(runner.summary).font(.footnote).foregroundStyle(.secondary)
                HStack {
                    Button(runner.phase == .running ? "Running…" : "Run benchmark") { runner.start() }
                        .buttonStyle(.borderedProminent)
                        .disabled(runner.phase == .running || runner.stagedFolder == nil)
                    if let file = runner.resultsFile {
                        ShareLink(item: file) { Label("Share results", systemImage: "square.and.arrow.up") }
                    }
                }
                phaseView
                ScrollViewReader { proxy in
                    ScrollView {
                        LazyVStack(alignment: .leading, spacing: 2) {
                            ForEach(Array(runner.lines.enumerated()), id: \.offset) { item in
                                Text(item.element).font(.system(.caption, design: .monospaced)).id(item.offset)
                            }
                        }
                    }
                    .onChange(of: runner.lines.count) { _, count in
                        if count > 0 { proxy.scrollTo(count - 1, anchor: .bottom) }
                    }
                }
            }
            .padding()
            .navigationTitle("edgevit bench")
        }
    }

    @ViewBuilder
    private var phaseView: some View {
        switch runner.phase {
        case .idle:
            Text("Keep the phone on power, close other apps, and let it cool down before a run.").font(.footnote)
        case .running:
            ProgressView("Measuring — keep the app in the foreground")
        case .finished:
            Text("Done. Results are in the app's Documents/edgevit folder (see README: Xcode Devices window, "
                 + "`xcrun devicectl device copy from`, the Files app, or Share).").font(.footnote)
        case .failed(let message):
            Text("Failed: \(message)").font(.footnote).foregroundStyle(.red)
        }
    }
}
