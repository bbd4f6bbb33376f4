// edgevit-ios-bench's command line: argument handling and what each mode does, in the library so that it is
// tested (on Linux too); Sources/edgevit-ios-bench only calls BenchCommand.main.

import Foundation

/// The options of `edgevit-ios-bench`; nil means "as config.json says".
public struct BenchOptions: Equatable, Sendable {
    public var artifacts: URL?
    public var out: URL?
    public var rounds: Int?
    public var iterations: Int?
    public var warmup: Int?
    public var trimFraction: Double?
    public var computeUnits: [ComputeUnit]?
    /// Only check the staged folder (config, manifests, validation inputs) and print the plan.
    public var check = false
    public var help = false

    public init() {}

    /// Parse the arguments after the program name. Errors are HarnessError.badArgument (exit status 2).
    public static func parse(_ arguments: [String]) throws -> BenchOptions {
        // --rounds=5 is --rounds 5
        let args = arguments.flatMap { arg -> [String] in
            guard arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") else { return [arg] }
            return [String(arg[..<eq]), String(arg[arg.index(after: eq)...])]
        }
        var options = BenchOptions()
        var i = 0
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count, !args[i].hasPrefix("--") else { throw HarnessError.badArgument("\(flag) needs a value") }
            return args[i]
        }
        func integer(_ flag: String) throws -> Int {
            let text = try value(flag)
            guard let n = Int(text) else { throw HarnessError.badArgument("\(flag) needs an integer, got \"\(text)\"") }
            return n
        }
        while i < args.count {
            let flag = args[i]
            switch flag {
            case "--artifacts": options.artifacts = URL(fileURLWithPath: try value(flag), isDirectory: true)
            case "--out": options.out = URL(fileURLWithPath: try value(flag))
            case "--rounds": options.rounds = try integer(flag)
            case "--iterations": options.iterations = try integer(flag)
            case "--warmup": options.warmup = try integer(flag)
            case "--trim-fraction":
                let text = try value(flag)
                guard let f = Double(text), f.isFinite else {
                    throw HarnessError.badArgument("--trim-fraction needs a number, got \"\(text)\"")
                }
                options.trimFraction = f
            case "--compute-units":
                let units = try ComputeUnit.parseList(try value(flag))
                guard !units.isEmpty else { throw HarnessError.badArgument("--compute-units needs at least one unit") }
                options.computeUnits = units
            case "--check": options.check = true
            case "-h", "--help": options.help = true
            default:
                throw HarnessError.badArgument("unknown argument \(flag)")
            }
            i += 1
        }
        if !options.help {
            guard options.artifacts != nil else { throw HarnessError.badArgument("--artifacts DIR is required") }
            guard options.check || options.out != nil else {
                throw HarnessError.badArgument("--out FILE is required (or --check to only check the folder)")
            }
        }
        return options
    }

    /// config.json (or the scanned folder) with these options applied, checked.
    public func config() throws -> HarnessConfig {
        guard let artifacts else { throw HarnessError.badArgument("--artifacts DIR is required") }
        var config = try Staging.config(in: artifacts)
        if let v = rounds { config.rounds = v }
        if let v = iterations { config.iterations = v }
        if let v = warmup { config.warmup = v }
        if let v = trimFraction { config.trimFraction = v }
        if let v = computeUnits { config.computeUnits = v }
        try config.validate()
        return config
    }
}

public enum BenchCommand {
    public static let usage = """
    usage: edgevit-ios-bench --artifacts DIR --out FILE [--rounds N] [--iterations N] [--warmup N]
                             [--trim-fraction F] [--compute-units all,cpuOnly,cpuAndGPU,cpuAndNeuralEngine]
           edgevit-ios-bench --artifacts DIR --check

    Benchmarks every CoreML artifact in DIR (config.json from `edgevit harness ios` if present, else every
    .mlpackage/.mlmodelc with its manifest) on each compute unit, and writes FILE in edgevit's results schema
    plus <artifact>[.<unit>].device-outputs.json beside it. Options override config.json. --check only reads
    the config, manifests and validation inputs and prints what would run (works off Apple platforms too).
    Exit status: 0 all ran, 1 a run failed or no CoreML here, 2 bad arguments or a bad staged folder.
    """

    /// Run the command; returns the exit status. `out`/`err` receive whole lines (without newline).
    public static func main(_ args: [String], runtime: (any ModelRuntime)?,
                            out: @escaping (String) -> Void = { print($0) },
                            err: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) async -> Int32 {
        let options: BenchOptions
        let config: HarnessConfig
        do {
            options = try BenchOptions.parse(args)
            if options.help {
                out(usage)
                return 0
            }
            config = try options.config()
        } catch {
            err("error: \(error)")
            if case HarnessError.badArgument = error { err("\n" + usage) }
            return 2
        }
        let artifacts = options.artifacts!  // parse() requires it
        if options.check {
            return check(config, at: artifacts, out: out, err: err)
        }
        guard let runtime else {
            err("error: this build has no CoreML runtime (CoreML exists only on Apple platforms); "
                + "`--check` checks a staged folder here, benchmarks run on a Mac (`swift run -c release "
                + "edgevit-ios-bench`) or on the iPhone app")
            return 1
        }
        do {
            let harness = Harness(config: config, artifactsDir: artifacts, runtime: runtime, log: out)
            let document = try await harness.run(resultsFile: options.out!)
            let failed = document.results.filter { $0.status == "failed" }.count
            if failed > 0 {
                err("\(failed) of \(document.results.count) runs failed; see the error field in \(options.out!.path)")
                return 1
            }
            return 0
        } catch {
            err("error: \(error)")
            return 1
        }
    }

    static func check(_ config: HarnessConfig, at dir: URL, out: (String) -> Void, err: (String) -> Void) -> Int32 {
        let problems = Staging.problems(in: config, at: dir)
        let units = config.computeUnits.map(\.rawValue).joined(separator: ", ")
        out("\(dir.path): \(config.artifacts.count) artifact(s); \(config.warmup) warm-up + \(config.rounds) x "
            + "\(config.iterations) iterations, trim fraction \(config.trimFraction), on \(units)")
        for entry in config.artifacts {
            out("  \(entry.artifact) (\(entry.kind.rawValue)), manifest \(entry.manifest), validation "
                + (entry.validation ?? "none: a synthetic input is timed"))
        }
        if problems.isEmpty {
            out("ok: the staged folder is complete")
            return 0
        }
        for problem in problems { err("problem: \(problem)") }
        err("\(problems.count) problem(s); re-stage with `edgevit harness ios`")
        return 2
    }
}
