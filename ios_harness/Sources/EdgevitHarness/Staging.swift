// Finding the staged run: config.json + artifacts written by `edgevit harness ios`, either in a folder
// (macOS command line) or bundled inside the iOS app as the resource folder "Staged".

import Foundation

public enum Staging {
    public static let folderName = "Staged"
    public static let configName = "config.json"

    /// The run described by `dir/config.json`, or, without one, every artifact with a manifest in `dir`
    /// under default settings (20 rounds x 50 iterations, all compute units).
    public static func config(in dir: URL) throws -> HarnessConfig {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw HarnessError.missingFile("artifacts folder \(dir.path) does not exist")
        }
        let configURL = dir.appendingPathComponent(configName)
        if FileManager.default.fileExists(atPath: configURL.path) {
            return try HarnessConfig.load(from: configURL)
        }
        let entries = try HarnessConfig.scanning(dir)
        if entries.isEmpty {
            throw HarnessError.missingFile("\(dir.path) has no config.json and no .mlpackage/.mlmodelc with a "
                                           + "manifest beside it; stage artifacts with `edgevit harness ios`")
        }
        return HarnessConfig(artifacts: entries)
    }

    /// The "Staged" folder holding config.json inside an app bundle (SwiftPM puts a target's resources in a
    /// nested resource bundle whose name depends on the build system, so search a few levels).
    public static func bundledFolder(in bundle: Bundle = .main) -> URL? {
        let roots = [bundle.resourceURL, bundle.bundleURL].compactMap { $0 }
        for root in roots {
            if let found = search(root, depth: 3) { return found }
        }
        return nil
    }

    private static func search(_ dir: URL, depth: Int) -> URL? {
        if dir.lastPathComponent == folderName,
           FileManager.default.fileExists(atPath: dir.appendingPathComponent(configName).path) {
            return dir
        }
        guard depth > 0,
              let children = try? FileManager.default.contentsOfDirectory(
                at: dir, includingPropertiesForKeys: [.isDirectoryKey], options: [.skipsHiddenFiles]) else {
            return nil
        }
        for child in children.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) {
            let ext = child.pathExtension
            if ext == "mlpackage" || ext == "mlmodelc" || ext == "validation" { continue }
            guard (try? child.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true else { continue }
            if let found = search(child, depth: depth - 1) { return found }
        }
        return nil
    }

    /// Documents/edgevit/ of the app (visible in Xcode's Devices window and to `xcrun devicectl`).
    public static func documentsOutputFolder() throws -> URL {
        let documents = try FileManager.default.url(for: .documentDirectory, in: .userDomainMask,
                                                    appropriateFor: nil, create: true)
        let folder = documents.appendingPathComponent("edgevit", isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }
}
