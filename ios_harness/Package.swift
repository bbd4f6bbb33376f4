// swift-tools-version: 6.0
// edgevit's iOS/macOS benchmark harness for CoreML artifacts. Open this folder in Xcode 16+ (File > Open) or
// use `swift build` / `swift test` / `swift run edgevit-ios-bench` on a Mac. The iPhone app is the separate
// app package App/EdgevitBench.swiftpm (see README.md).
//
// Swift 6 language mode (complete concurrency checking), the mode new Xcode projects use. Everything except
// the CoreML calls (CoreMLModel.swift, behind `#if canImport(CoreML)`) also builds and is tested on Linux
// with the open-source toolchain: `swift build --build-tests && swift test` (what `make swift-test` runs).

import PackageDescription

let package = Package(
    name: "EdgevitHarness",
    platforms: [
        .iOS(.v17),
        .macOS(.v14),
    ],
    products: [
        .library(name: "EdgevitHarness", targets: ["EdgevitHarness"]),
        .executable(name: "edgevit-ios-bench", targets: ["edgevit-ios-bench"]),
    ],
    targets: [
        .target(
            name: "EdgevitHarness",
            path: "Sources/EdgevitHarness"
        ),
        .executableTarget(
            name: "edgevit-ios-bench",
            dependencies: ["EdgevitHarness"],
            path: "Sources/edgevit-ios-bench"
        ),
        .testTarget(
            name: "EdgevitHarnessTests",
            dependencies: ["EdgevitHarness"],
            path: "Tests/EdgevitHarnessTests",
            resources: [.copy("Resources/stats_reference.json"), .copy("Resources/Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
