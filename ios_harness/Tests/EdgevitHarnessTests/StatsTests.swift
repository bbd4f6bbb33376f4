// The Swift statistics must reproduce edgevit/bench/stats.py: Resources/stats_reference.json holds what
// stats.py (and edgevit.device.ios.trim_round) answered on fixed samples, and these tests read the same
// file. tests/test_ios_harness.py keeps it current; regenerate it with
// `.venv/bin/python tests/test_ios_harness.py --stats-only`. Its relative_tolerance is 0: Stats.swift does
// the same floating-point operations in the same order, so the numbers agree to the last bit.

import XCTest
@testable import EdgevitHarness

struct StatsReference: Decodable {
    struct Percentile: Decodable {
        var q: Double
        var value: Double?
    }

    struct Case: Decodable {
        var name: String
        var samples: [Double]
        var median_ms: Double?
        var trimmed_mean_ms: Double?
        var trim_fraction: Double
        var p90_ms: Double?
        var percentiles: [Percentile]
    }

    struct ErrorCase: Decodable {
        var name: String
        var samples: [Double]
        var trim_fraction: Double?
        var q: Double?
    }

    struct RoundTrim: Decodable {
        var times: [Double]
        var kept: [Double]
    }

    struct ProtocolCase: Decodable {
        var rounds: [[Double]]
        var samples: [Double]
        var median_ms: Double?
        var trimmed_mean_ms: Double?
        var trim_fraction: Double
        var p90_ms: Double?
    }

    var relative_tolerance: Double
    var cases: [Case]
    var errors: [ErrorCase]
    var round_trim: [RoundTrim]
    var protocolCases: [ProtocolCase]

    enum CodingKeys: String, CodingKey {
        case relative_tolerance
        case cases
        case errors
        case round_trim
        case protocolCases = "protocol"
    }
}

final class StatsTests: XCTestCase {
    var reference: StatsReference!

    override func setUpWithError() throws {
        let data = try Data(contentsOf: testResource("stats_reference.json"))
        reference = try JSONDecoder().decode(StatsReference.self, from: data)
    }

    func assertClose(_ actual: Double?, _ expected: Double?, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        guard let expected else {
            XCTAssertNil(actual, "\(what): stats.py gives None", file: file, line: line)
            return
        }
        guard let actual else {
            XCTFail("\(what): Swift gives nil, stats.py \(expected)", file: file, line: line)
            return
        }
        if reference.relative_tolerance == 0 {
            XCTAssertEqual(actual.bitPattern, expected.bitPattern, "\(what): Swift \(actual), stats.py \(expected)",
                           file: file, line: line)
        } else {
            let tolerance = reference.relative_tolerance * max(1.0, abs(expected))
            XCTAssertEqual(actual, expected, accuracy: tolerance, what, file: file, line: line)
        }
    }

    func testSummariesMatchStatsPy() throws {
        XCTAssertGreaterThan(reference.cases.count, 10)
        for c in reference.cases {
            assertClose(Stats.median(c.samples), c.median_ms, "\(c.name): median")
            assertClose(try Stats.trimmedMean(c.samples, trimFraction: c.trim_fraction), c.trimmed_mean_ms,
                        "\(c.name): trimmed mean")
            let summary = try Stats.summarize(c.samples, trimFraction: c.trim_fraction)
            assertClose(summary.medianMs, c.median_ms, "\(c.name): summary median")
            assertClose(summary.trimmedMeanMs, c.trimmed_mean_ms, "\(c.name): summary trimmed mean")
            assertClose(summary.p90Ms, c.p90_ms, "\(c.name): summary p90")
            XCTAssertEqual(summary.trimFraction, c.trim_fraction)
        }
    }

    func testPercentilesMatchStatsPy() throws {
        for c in reference.cases {
            for p in c.percentiles {
                assertClose(try Stats.percentile(c.samples, p.q), p.value, "\(c.name): percentile \(p.q)")
            }
        }
    }

    func testInvalidArgumentsThrowLikeStatsPy() {
        XCTAssertFalse(reference.errors.isEmpty)
        for e in reference.errors {
            if let q = e.q {
                XCTAssertThrowsError(try Stats.percentile(e.samples, q), e.name) { error in
                    XCTAssertEqual(error as? StatsError, .invalidPercentile(q))
                }
            } else if let t = e.trim_fraction {
                XCTAssertThrowsError(try Stats.trimmedMean(e.samples, trimFraction: t), e.name) { error in
                    XCTAssertEqual(error as? StatsError, .invalidTrimFraction(t))
                }
            } else {
                XCTFail("\(e.name): neither q nor trim_fraction")
            }
        }
    }

    func testRoundTrimMatchesPython() {
        XCTAssertFalse(reference.round_trim.isEmpty)
        for r in reference.round_trim {
            XCTAssertEqual(Stats.trimRound(r.times), r.kept, "trimRound(\(r.times))")
        }
    }

    func testProtocolSamplesAndTheirSummaryMatchPython() throws {
        XCTAssertFalse(reference.protocolCases.isEmpty)
        for p in reference.protocolCases {
            let samples = Stats.protocolSamples(p.rounds)
            XCTAssertEqual(samples, p.samples)
            let summary = try Stats.summarize(samples, trimFraction: p.trim_fraction)
            assertClose(summary.medianMs, p.median_ms, "protocol median")
            assertClose(summary.trimmedMeanMs, p.trimmed_mean_ms, "protocol trimmed mean")
            assertClose(summary.p90Ms, p.p90_ms, "protocol p90")
        }
    }
}
