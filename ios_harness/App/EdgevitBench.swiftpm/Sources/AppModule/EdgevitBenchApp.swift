// The iPhone app: one screen with a Run button and the log. The state and the run itself are
// EdgevitHarness.BenchRunner (compiled and tested with the library, on Linux too); this file only draws it
// and keeps the screen awake while a run goes. A run writes to Documents/edgevit/:
//   results.json                         edgevit's results schema, one result per artifact x compute unit
//   <artifact>.device-outputs.json       outputs on the validation inputs ("all" compute unit)
//   <artifact>.<unit>.device-outputs.json  the same for each compute unit
//   run.log                              what the screen showed
// Staged with --autostart (config.json "autostart": true) or launched with the argument --autostart, it runs
// as soon as it opens, so `xcrun devicectl device process launch` can start a run without touching the phone.
//
// Swift 6 language mode: App and View are main-actor protocols, BenchRunner is @MainActor, and the only
// UIKit call (the idle timer) runs on the main actor.

import EdgevitHarness
import SwiftUI
import UIKit

@main
struct EdgevitBenchApp: App {
    @State private var runner = BenchRunner(stagedFolder: Staging.bundledFolder())

    var body: some Scene {
        WindowGroup {
            ContentView(runner: runner)
                .onAppear {
                    runner.onRunningChanged = { running in UIApplication.shared.isIdleTimerDisabled = running }
                    if ProcessInfo.processInfo.arguments.contains("--autostart") || runner.autostart {
                        runner.start()
                    }
                }
        }
    }
}

struct ContentView: View {
    let runner: BenchRunner

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
