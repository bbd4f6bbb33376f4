// swift-tools-version: 5.9
// The iPhone/iPad app of edgevit's harness: an Xcode "app package" (open this .swiftpm folder in Xcode 16+,
// choose your iPhone, press Run). It bundles Sources/AppModule/Staged/ — config.json, the CoreML artifacts,
// their manifests and validation inputs, written by `edgevit harness ios` — runs the benchmark on the phone
// and writes results to the app's Documents/edgevit/ folder. See ../../README.md.
//
// Sources/EdgevitHarness is a link to ../../Sources/EdgevitHarness in the repository; `edgevit harness ios`
// replaces it by a copy, so a staged app package needs nothing outside its folder.
//
// Tools version 5.9 is what Xcode's app-package format (AppleProductTypes) reads; the language mode is
// Swift 6 all the same (`swiftLanguageVersions` below: complete concurrency checking, as in new Xcode
// projects). Only Xcode builds this package: AppleProductTypes, SwiftUI and UIKit exist on Apple platforms.

import AppleProductTypes
import PackageDescription

let package = Package(
    name: "EdgevitBench",
    platforms: [
        .iOS("17.0"),
    ],
    products: [
        .iOSApplication(
            name: "EdgevitBench",
            targets: ["AppModule"],
            bundleIdentifier: "dev.edgevit.bench",
            teamIdentifier: "",
            displayVersion: "1.0",
            bundleVersion: "1",
            appIcon: .placeholder(icon: .star),
            accentColor: .presetColor(.blue),
            supportedDeviceFamilies: [
                .pad,
                .phone,
            ],
            supportedInterfaceOrientations: [
                .portrait,
                .landscapeRight,
                .landscapeLeft,
                .portraitUpsideDown(.when(deviceFamilies: [.pad])),
            ],
            additionalInfoPlistContentFilePath: "AdditionalInfo.plist"
        ),
    ],
    targets: [
        .target(
            name: "EdgevitHarness",
            path: "Sources/EdgevitHarness"
        ),
        .executableTarget(
            name: "AppModule",
            dependencies: ["EdgevitHarness"],
            path: "Sources/AppModule",
            resources: [.copy("Staged")]
        ),
    ],
    swiftLanguageVersions: [.version("6")]
)
