// Where the numbers were measured (schema device object) and how much memory the process holds.
// No UIKit: the model identifier comes from utsname/sysctl, so the same code runs in the macOS command
// line tool, the iOS app and XCTest. Off Apple platforms (the Linux build that tests everything but
// CoreML) the device is described as a "host" and no memory figure is available.

import Foundation
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum DeviceProbe {
    /// The schema's device object for this machine.
    public static func current() -> DeviceInfo {
        let name = modelIdentifier()
        return DeviceInfo(kind: kind(modelIdentifier: name), name: name, os: osDescription(), cpu: cpuDescription())
    }

    /// `iPhone15,2` / `iPad13,4` on iOS (utsname.machine; the simulated model on the Simulator),
    /// `Mac14,2` / `MacBookPro18,3` on macOS (sysctl hw.model), the machine (`x86_64`) elsewhere.
    public static func modelIdentifier() -> String {
        #if os(macOS)
        if let model = sysctlString("hw.model"), !model.isEmpty { return model }
        #endif
        if let simulated = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] {
            return simulated + " (Simulator)"
        }
        var info = utsname()
        _ = uname(&info)
        let machine = withUnsafeBytes(of: &info.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return machine.isEmpty ? "unknown" : machine
    }

    /// iphone / ipad / mac, as the schema's device.kind enum spells them ("host" off Apple platforms).
    public static func kind(modelIdentifier: String) -> String {
        #if os(macOS)
        return "mac"
        #elseif os(iOS) || os(visionOS)
        if ProcessInfo.processInfo.isiOSAppOnMac || ProcessInfo.processInfo.isMacCatalystApp { return "mac" }
        if modelIdentifier.hasPrefix("iPad") { return "ipad" }
        return "iphone"
        #else
        return "host"
        #endif
    }

    /// "iOS Version 17.4 (Build 21E219)" / "macOS Version 14.4 (Build 23E214)".
    public static func osDescription() -> String {
        #if os(macOS)
        let platform = "macOS"
        #elseif os(iOS)
        let platform = "iOS"
        #elseif os(Linux)
        let platform = "Linux"
        #else
        let platform = "unknown OS"
        #endif
        return "\(platform) \(ProcessInfo.processInfo.operatingSystemVersionString)"
    }

    /// "Apple M2 (8 cores: 4 performance + 4 efficiency)"; the SoC name where the OS reports it.
    public static func cpuDescription() -> String {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        #if canImport(Darwin)
        let brand = sysctlString("machdep.cpu.brand_string") ?? "Apple SoC"
        if let perf = sysctlInt("hw.perflevel0.physicalcpu"), let eff = sysctlInt("hw.perflevel1.physicalcpu") {
            return "\(brand) (\(cores) cores: \(perf) performance + \(eff) efficiency)"
        }
        return "\(brand) (\(cores) cores)"
        #else
        return "\(linuxCPUName() ?? "unknown CPU") (\(cores) cores)"
        #endif
    }

    #if canImport(Darwin)
    static func sysctlString(_ name: String) -> String? {
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: size)
        guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        return text.isEmpty ? nil : text
    }

    static func sysctlInt(_ name: String) -> Int? {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        guard sysctlbyname(name, &value, &size, nil, 0) == 0 else { return nil }
        return Int(value)
    }
    #else
    static func linuxCPUName() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }
    #endif
}

/// The process's physical footprint (task_vm_info.phys_footprint): the number iOS's memory limit
/// (jetsam) and Xcode's memory gauge use. It includes memory CoreML maps for the GPU/Neural Engine.
public enum Memory {
    public static let kind = "phys_footprint"

    #if canImport(Darwin)
    /// This task's port, looked up once. Not `mach_task_self_`: before the iOS 18.4 / macOS 15.4 SDKs that C
    /// global carries no concurrency annotation, and reading it is an error in the Swift 6 language mode.
    static let taskPort: mach_port_t = task_self_trap()
    #endif

    /// nil where the OS has no phys_footprint (off Apple platforms): the result then says null, not 0.
    public static func physFootprintBytes() -> UInt64? {
        #if canImport(Darwin)
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<integer_t>.size)
        let result = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(taskPort, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        return result == KERN_SUCCESS ? info.phys_footprint : nil
        #else
        return nil
        #endif
    }
}

/// Highest footprint seen over a measurement (sampled between predictions, never inside a timed one).
struct PeakFootprint {
    private(set) var peakBytes: UInt64?
    let probe: () -> UInt64?

    init(probe: @escaping () -> UInt64? = Memory.physFootprintBytes) {
        self.probe = probe
    }

    mutating func sample() {
        guard let now = probe() else { return }
        peakBytes = max(peakBytes ?? 0, now)
    }

    var megabytes: Double? {
        peakBytes.map { Double($0) / 1_048_576.0 }
    }
}
