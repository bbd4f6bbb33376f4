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

    /// What a run of `config` in `dir` would trip over, checked without running anything (and so on any
    /// platform): each artifact, its manifest and its validation inputs, with the tensor files' sizes.
    /// Empty when everything is in place. `edgevit-ios-bench --check` prints these.
    public static func problems(in config: HarnessConfig, at dir: URL) -> [String] {
        var problems: [String] = []
        let files = FileManager.default
        for entry in config.artifacts {
            let path = dir.appendingPathComponent(entry.artifact).path
            var isDir: ObjCBool = false
            if !files.fileExists(atPath: path, isDirectory: &isDir) {
                problems.append("\(entry.artifact): not found in \(dir.path)")
            } else if isDir.boolValue != (entry.kind != .pte) {
                problems.append("\(entry.artifact): a .\(entry.kind.rawValue) must be a "
                                + (entry.kind == .pte ? "file" : "folder"))
            }
            let manifest: ArtifactManifest
            do { manifest = try ArtifactManifest.load(from: dir.appendingPathComponent(entry.manifest)) } catch {
                problems.append("\(entry.artifact): \(error)")
                continue
            }
            guard let name = entry.validation else { continue }
            let folder = dir.appendingPathComponent(name)
            do {
                let index = try ValidationIndex.load(from: folder)
                for item in index.inputs {
                    problems += inputProblems(item, folder: folder, manifest: manifest).map { "\(entry.artifact): \($0)" }
                }
            } catch {
                problems.append("\(entry.artifact): \(error)")
            }
        }
        return problems
    }

    static func inputProblems(_ item: ValidationIndex.Entry, folder: URL, manifest: ArtifactManifest) -> [String] {
        var problems: [String] = []
        let where_ = "\(folder.lastPathComponent)/\(item.name)"
        if item.shape != manifest.input.shape {
            problems.append("\(where_) has shape \(item.shape); the manifest's input is \(manifest.input.shape)")
        }
        if let image = item.image, !FileManager.default.fileExists(atPath: folder.appendingPathComponent(image).path) {
            problems.append("\(where_): image \(image) is missing")
        }
        if let tensor = item.tensor {
            let url = folder.appendingPathComponent(tensor)
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue
            let needed = item.shape.reduce(1, *) * MemoryLayout<Float>.size
            if size == nil {
                problems.append("\(where_): tensor \(tensor) is missing")
            } else if size != needed {
                problems.append("\(where_): tensor \(tensor) has \(size!) bytes; shape \(item.shape) needs \(needed) "
                                + "(little-endian float32)")
            }
        }
        if item.image == nil && item.tensor == nil {
            problems.append("\(where_) names neither an image nor a tensor file")
        }
        return problems
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
