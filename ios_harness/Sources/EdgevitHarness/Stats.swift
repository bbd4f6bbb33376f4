// Latency statistics, the same three formulas as edgevit/bench/stats.py, so a number from this harness
// means what the host and Android harnesses' numbers mean. The floating-point operations are written in
// the same order as the Python so that results agree to the last bit on the same samples.
// Tests/EdgevitHarnessTests/Resources/stats_reference.json holds outputs of stats.py on fixed samples;
// StatsTests.swift asserts this file reproduces them bit for bit (tests/test_ios_harness.py keeps the file current).

import Foundation

public enum StatsError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidPercentile(Double)
    case invalidTrimFraction(Double)

    public var description: String {
        switch self {
        case .invalidPercentile(let q): return "percentile q must be in [0, 100], got \(q)"
        case .invalidTrimFraction(let t): return "trim_fraction must be in [0, 0.5), got \(t)"
        }
    }
}

/// The schema's summary fields for one list of per-iteration milliseconds.
public struct Summary: Equatable, Sendable {
    public var medianMs: Double?
    public var trimmedMeanMs: Double?
    public var trimFraction: Double
    public var p90Ms: Double?
}

public enum Stats {
    /// stats.py's DEFAULT_TRIM_FRACTION.
    public static let defaultTrimFraction = 0.1

    /// Middle value; mean of the two middle values for an even count; nil for no samples.
    public static func median(_ samples: [Double]) -> Double? {
        if samples.isEmpty { return nil }
        let s = samples.sorted()
        let n = s.count
        let mid = n / 2
        return n % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2.0
    }

    /// q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default method).
    public static func percentile(_ samples: [Double], _ q: Double) throws -> Double? {
        if samples.isEmpty { return nil }
        guard q >= 0.0 && q <= 100.0 else { throw StatsError.invalidPercentile(q) }
        let s = samples.sorted()
        let pos = Double(s.count - 1) * q / 100.0
        let lo = Int(pos.rounded(.down))
        let hi = min(lo + 1, s.count - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
    }

    /// Mean after dropping floor(n * trimFraction) samples from each end (robust to OS hiccups).
    public static func trimmedMean(_ samples: [Double], trimFraction: Double = defaultTrimFraction) throws -> Double? {
        if samples.isEmpty { return nil }
        guard trimFraction >= 0.0 && trimFraction < 0.5 else { throw StatsError.invalidTrimFraction(trimFraction) }
        let s = samples.sorted()
        let k = Int((Double(s.count) * trimFraction).rounded(.down))
        let kept = s[k..<(s.count - k)]
        var total = 0.0
        for value in kept { total += value }  // left to right, like Python's sum()
        return total / Double(kept.count)
    }

    /// median_ms, trimmed_mean_ms, trim_fraction and p90_ms, as stats.summarize.
    public static func summarize(_ samples: [Double], trimFraction: Double = defaultTrimFraction) throws -> Summary {
        let trimmed = try trimmedMean(samples, trimFraction: trimFraction)
        let p90 = try percentile(samples, 90.0)
        return Summary(medianMs: median(samples), trimmedMeanMs: trimmed, trimFraction: trimFraction, p90Ms: p90)
    }

    /// One round of Apple's FastViT/MobileOne protocol: drop the single highest and the single lowest time
    /// (first occurrences), keep the rest in order. Rounds of fewer than 3 times are kept whole.
    /// Same rule as edgevit.device.ios.trim_round (checked by the reference vectors).
    public static func trimRound(_ times: [Double]) -> [Double] {
        if times.count < 3 { return times }
        var kept = times
        if let iMax = kept.indices.max(by: { kept[$0] < kept[$1] }) {
            kept.remove(at: iMax)
        }
        if let iMin = kept.indices.min(by: { kept[$0] < kept[$1] }) {
            kept.remove(at: iMin)
        }
        return kept
    }

    /// The samples a whole run reports: every round trimmed, then pooled in order.
    public static func protocolSamples(_ rounds: [[Double]]) -> [Double] {
        rounds.flatMap { trimRound($0) }
    }
}
