// What the session needs from a runtime, so the protocol, the statistics and every file the harness
// writes are the same code whatever runs the model: CoreML on Apple platforms (CoreMLModel.swift), a
// scripted model in the tests (which therefore run on Linux too). Shaped like the Android harness's Runner.

import Foundation

/// Runs staged artifacts.
public protocol ModelRuntime: Sendable {
    /// Once per artifact, e.g. compile `.mlpackage` -> `.mlmodelc`. `artifact` exists.
    func prepare(_ artifact: URL, manifest: ArtifactManifest) async throws -> any PreparedModel
}

/// An artifact ready to be loaded on each compute unit.
public protocol PreparedModel {
    /// How long preparing took (logged, not stored in the results); nil when nothing was compiled.
    var prepareMs: Double? { get }
    /// Load for one compute unit; this is the result's load_time_ms.
    func load(_ unit: ComputeUnit) throws -> any LoadedModel
    /// Delete what `prepare` made (a compiled copy).
    func cleanUp()
}

/// A model loaded on one compute unit, with a current input that `predict()` runs.
public protocol LoadedModel {
    /// Make this validation input the current one; false when the model takes no form of it (a random
    /// tensor for an image-input model).
    func useInput(_ entry: ValidationIndex.Entry, in folder: URL) throws -> Bool
    /// A deterministic synthetic input, for artifacts without validation inputs.
    func useSyntheticInput() throws
    /// One prediction on the current input: the timed call.
    func predict() throws
    /// One prediction on the current input, its output flat (row-major, class-index order) with its shape.
    func predictOutput() throws -> (shape: [Int], values: [Float])
    /// What a parity check must know about these outputs (e.g. repeated class labels).
    var outputWarnings: [String] { get }
}

/// Monotonic clock in nanoseconds (mach absolute time on Apple platforms; not affected by clock changes).
@inline(__always)
public func nowNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func milliseconds(from start: UInt64, to end: UInt64) -> Double { Double(end - start) / 1_000_000.0 }

/// Apple's FastViT/MobileOne protocol: `warmup` untimed predictions, then `rounds` rounds of `iterations`
/// timed ones. `between` runs after each timed prediction, outside the timed span (memory sampling).
public struct TimingProtocol: Equatable, Sendable {
    public var rounds: Int
    public var iterations: Int
    public var warmup: Int

    public init(rounds: Int, iterations: Int, warmup: Int) {
        self.rounds = rounds
        self.iterations = iterations
        self.warmup = warmup
    }

    public init(_ config: HarnessConfig) {
        self.init(rounds: config.rounds, iterations: config.iterations, warmup: config.warmup)
    }

    /// The raw times of every round, in milliseconds.
    public func measure(clock: () -> UInt64 = nowNanoseconds, predict: () throws -> Void,
                        between: () -> Void = {}) throws -> [[Double]] {
        for _ in 0..<warmup { try predict() }
        var all: [[Double]] = []
        all.reserveCapacity(rounds)
        for _ in 0..<rounds {
            var times: [Double] = []
            times.reserveCapacity(iterations)
            for _ in 0..<iterations {
                let start = clock()
                try predict()
                let end = clock()
                times.append(milliseconds(from: start, to: end))
                between()
            }
            all.append(times)
        }
        return all
    }
}
