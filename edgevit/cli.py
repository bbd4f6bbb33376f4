"""Command line: argument parsing and printing only; the work is in edgevit.api.

User errors (EdgevitError) print as one clear message without a traceback and exit non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edgevit.base.arguments import BACKENDS, COMPRESS_SCHEMES, DEPLOYMENT_TARGETS, QUANTIZE_SCHEMES

EPILOG = """examples:
  edgevit list --details
  edgevit convert swiftformer-l1 --target coreml
  edgevit convert swiftformer-l1 --target coreml executorch onnx --out artifacts
  edgevit convert swiftformer-s --weights SwiftFormer_S.pth --attention-form softmax
  edgevit weights ls fastvit-t8
  edgevit convert swiftformer-l1 --pretrained --target coreml executorch onnx
  edgevit convert swiftformer-xs --target executorch onnx --quantize int8 --calibration my_photos/
  edgevit convert swiftformer-xs --target coreml --compress w8
  edgevit validate artifacts/swiftformer-l1.executorch.xnnpack.fp32.pte
  edgevit validate artifacts/swiftformer-l1.coreml.fp16.mlpackage --bisect
  edgevit bench swiftformer-l1 --artifacts artifacts --out artifacts/bench.json
  edgevit bench swiftformer-l1 --threads 4 --profile --out artifacts/bench.json
  edgevit profile artifacts/swiftformer-l1.executorch.xnnpack.fp32.pte --threads 4 --top 15
  edgevit report artifacts/bench.json --out reports
  edgevit harness ios --artifacts artifacts --out ios-bench          (then open it in Xcode)
  edgevit bench artifacts/*.pte --device android --out phone.json    (a phone on adb)
  edgevit zoo --json reports/zoo.json                 (the curated efficient-ViT zoo, both targets)
  edgevit zoo --fastvit --json reports/fastvit.json   (FastViT T8..MA36: FLOPs, MIL ops, fused vs unfused)
  edgevit sweep swiftformer-xs fastvit-t8 --target executorch onnx --quantize none int8 --out sweeps/a
  edgevit sweep --preset seeds --out sweeps/seeds      (on Ray when installed; re-runs come from the cache)
  edgevit cache ls
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgevit",
        description="Efficient vision transformers -> CoreML / ExecuTorch artifacts, with parity proof.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser("list", help="list the registered models")
    ls.add_argument("--details", action="store_true", help="also build each model to show params and FLOPs")
    ls.add_argument("--turbovit-comparison", action="store_true",
                    help="params/FLOPs of TurboViT vs FastViT-SA24, Hiera-T and the paper's other seed models")

    cv = sub.add_parser(
        "convert", help="convert a model to CoreML / ExecuTorch / ONNX and validate each artifact",
        description="Build MODEL (a registry name or timm:<name>), reparameterize it into a plain inference graph, "
        "export each --target, and check every artifact against the original PyTorch model on real photos and "
        "random tensors. Each artifact gets a JSON manifest and a folder of validation inputs beside it.",
    )
    cv.add_argument("model", help="registry name (see `edgevit list`) or timm:<name>")
    cv.add_argument("--target", nargs="+", default=["coreml"], choices=["coreml", "executorch", "onnx"],
                    help="one or more targets (default: coreml)")
    cv.add_argument("--out", default="artifacts", help="output directory (default: artifacts)")
    cv.add_argument("--weights", help="local checkpoint: official layout, timm layout or .safetensors. "
                    "Without it (or --pretrained) the model is random-init (and the output and manifest say so)")
    cv.add_argument("--pretrained", nargs="?", const=True, metavar="TAG",
                    help="timm's trained weights from the Hugging Face hub (safetensors only), cached in its standard "
                    "cache (HF_HOME; HF_HUB_OFFLINE=1 uses only the cache). TAG: one of `edgevit weights ls MODEL`; "
                    "default: timm's default tag")
    cv.add_argument("--revision", metavar="REV",
                    help="--pretrained: the hub revision (branch, tag or commit hash; default main). The manifest "
                    "records the commit it resolved to")
    cv.add_argument("--attention-form", choices=["normalize", "softmax"],
                    help="SwiftFormer only: attention of the current official release (normalize, default) or of "
                    "the first release / Hugging Face port (softmax); must match the checkpoint")
    cv.add_argument("--precision", choices=["fp16", "fp32"],
                    help="default: fp16 for CoreML (and the CoreML-delegated .pte), fp32 for XNNPACK and ONNX")
    cv.add_argument("--backend", choices=BACKENDS,
                    help="ExecuTorch delegate (--target executorch only): xnnpack (Android/CPU, default), coreml (iOS)")
    cv.add_argument("--deployment-target", choices=DEPLOYMENT_TARGETS,
                    help="CoreML minimum deployment target (default iOS17); CoreML artifacts only")
    cv.add_argument("--tensor-input", action="store_true",
                    help="CoreML: raw normalised float tensor input and logits output instead of an RGB image "
                    "classifier with labels")
    cv.add_argument("--init", choices=["exercised", "library"], default="exercised",
                    help="random init without --weights: 'exercised' (default) makes every block count (layer scales "
                    "~1, BatchNorm statistics calibrated on noise, wide head) so parity means something; "
                    "'library' is timm's")
    cv.add_argument("--seed", type=int, default=0, help="seed of the random init and random validation inputs")
    cv.add_argument("--no-validate", action="store_true", help="skip parity validation")
    cv.add_argument("--no-mil-report", action="store_true", help="skip the MIL reshape/transpose count")
    cv.add_argument("--quantize", choices=QUANTIZE_SCHEMES,
                    help="ExecuTorch (XNNPACK) / ONNX: int8 = static int8, weights per channel, activations "
                    "calibrated (--calibration); int8-dynamic is refused with the reason")
    cv.add_argument("--compress", choices=COMPRESS_SCHEMES,
                    help="CoreML only: w8 (int8 per channel), w4 (int4 per block; iOS18), palette6/palette4 "
                    "(k-means palettes), w8a8 (int8 activations, ranges calibrated through the MIL interpreter, "
                    "plus int8 weights; iOS17+)")
    cv.add_argument("--calibration", metavar="DIR",
                    help="--quantize int8, --compress w8a8: a folder of JPEG/PNG images (at least 8) run through "
                    "the model's preprocessing; default: the bundled validation photos, cropped and flipped")
    cv.add_argument("--keep-float", metavar="auto|LAYER,...",
                    help="--quantize int8 with --target executorch or --target onnx, or --compress w8a8 with "
                    "--target coreml: keep layers in float (float activations and weights). auto: rank every "
                    "quantized layer by the noise it adds to the logits (each quantized alone, on an emulation of "
                    "that target's quantized program), print the ranking and keep the fewest, most costly first, "
                    "that reach --min-psnr (default 35 dB); or name the layers (module paths)")
    cv.add_argument("--scan-budget", type=float, default=600.0, metavar="SECONDS",
                    help="--keep-float auto: refuse (with the estimate) a sensitivity scan longer than this")
    cv.add_argument("--wide", action="store_true",
                    help="every parity column (max abs, cosine, top-5, photos top-1) and reasons inline; the default "
                    "table fits 120 columns")
    cv.add_argument("--json", metavar="FILE", help="also write every parity field of every artifact as JSON here")
    cv.add_argument("--min-psnr", type=float, metavar="DB",
                    help="quantized/compressed artifacts pass at PSNR >= DB on the photos (default 30)")

    we = sub.add_parser("weights", help="trained weights timm publishes for a model (`weights ls MODEL`)")
    wsub = we.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    wls = wsub.add_parser("ls", help="list a model's pretrained tags: hub repo, license, source, cached or not",
                          description="List the trained weights timm's pretrained config gives for MODEL (a registry "
                          "name or timm:<name>): each tag with its Hugging Face hub repository, file, license and "
                          "source, and whether it is in the local hub cache (HF_HOME) at revision main. Reads no "
                          "network. Use a tag with `edgevit convert MODEL --pretrained TAG`.")
    wls.add_argument("model", help="registry name (see `edgevit list`) or timm:<name>")

    va = sub.add_parser("validate", help="check an artifact against its original PyTorch model",
                        description="Rebuild the original model from the artifact's manifest and judge the artifact in "
                        "two parts, on inputs edgevit regenerates (photos, random tensors, noise images): fidelity — "
                        "its program at wide precision against the original carrying the values it stores, within a "
                        "derived bound (is it the same program?) — and precision cost — its logits against the fp32 "
                        "original, at a PSNR floor (what did its precision cost?). The precision is read from the "
                        "program, floors are edgevit's or --min-psnr. Exits 3 when the verdict is fail, 2 on bad "
                        "input.")
    va.add_argument("artifact", help=".mlpackage, .pte or .onnx made by `edgevit convert`")
    va.add_argument("--device-outputs", help="outputs saved by the iOS/Android harness, to compare instead of "
                    "running the artifact here")
    va.add_argument("--runtime", choices=("coreml", "mil-reference"),
                    help="for a .mlpackage: the CoreML runtime (macOS only) or edgevit's MIL reference interpreter "
                    "(any OS; not the CoreML runtime: it proves the saved program computes the original function). "
                    "Default: coreml on macOS, mil-reference elsewhere")

    va.add_argument("--min-psnr", type=float, metavar="DB",
                    help="the precision-cost floor: PSNR of the photos' logits vs the fp32 original (default: "
                    "edgevit's per precision: fp32 80, fp16 40, int8/w8 30, ...). A floor in the manifest is shown, "
                    "never used")
    va.add_argument("--calibration", metavar="DIR",
                    help="int8 artifacts calibrated on your images: the same folder, to rebuild the quantized "
                    "reference the fidelity check compares with (its hash must match the manifest's)")
    va.add_argument("--bisect", action="store_true",
                    help="run the artifact value by value against the original and print the first value that "
                    "diverges beyond the fidelity bound (op, PyTorch module, error) and the ten worst (.mlpackage, "
                    ".onnx); an XNNPACK .pte, whose values cannot be read, is lowered again from the original and "
                    "compared node by node (op, wiring, every stored constant)")
    va.add_argument("--weights", metavar="FILE", help="the checkpoint the artifact was converted from, in place of "
                    "the path its manifest records (it must be that very file: same sha256)")
    va.add_argument("--wide", action="store_true", help="every parity column and the reason inline "
                    "(the default table fits 120 columns)")
    va.add_argument("--json", metavar="FILE", help="also write every parity field as JSON here")

    be = sub.add_parser("bench", help="time a model's forms (or artifacts) on this host",
                        description="Time, in one process, the original eager model, the prepared eager model, the "
                        "ExecuTorch .pte and the ONNX model at each --batch; writes the shared results schema.")
    be.add_argument("items", nargs="+", metavar="MODEL|ARTIFACT")
    be.add_argument("--artifacts", help="reuse batch-1 artifacts converted into this directory")
    be.add_argument("--batch", type=int, nargs="+", default=[1, 32], help="batch sizes (default: 1 32)")
    be.add_argument("--iterations", type=int, help="timed iterations (default: 30 at batch<=4, 18 above; "
                    "the .pte/.onnx ratio needs at least 18)")
    be.add_argument("--warmup", type=int, help="warm-up iterations (default: 5 at batch<=4, 2 above)")
    be.add_argument("--out", help="write results JSON here (required with --device android)")
    be.add_argument("--device", default="host", metavar="host|android[:SERIAL]",
                    help="where to time: this host (default) or an Android phone over adb (.pte artifacts)")
    be.add_argument("--apk", help="android: the harness APK to install (default: android_harness build output)")
    be.add_argument("--dry-run", action="store_true", help="android: print the adb commands instead of running")
    be.add_argument("--threads", type=int, metavar="N",
                    help="host: the thread count of every runtime (torch, ExecuTorch's pool, onnxruntime intra-op) "
                    "and of the GEMM peak; default: the CPUs this process may use, at most 8. Recorded per result")
    be.add_argument("--wide", action="store_true", help="every column (trimmed mean, load time, peak memory, "
                    "runtime/backend); the default table fits 120 columns; --out FILE keeps every field")
    be.add_argument("--profile", action="store_true",
                    help="host: also write a per-op profile of each timed .pte/.onnx beside --out "
                    "(<out stem>.<artifact>.b<batch>.profile.json; see `edgevit profile`)")
    be.add_argument("--no-eager", action="store_true",
                    help="host: time only the .pte and .onnx of each model, not its eager PyTorch forms (at batch 32 "
                    "those take longer than everything else; `make bench` skips them)")

    pf = sub.add_parser(
        "profile", help="per-op time table of a .pte or .onnx on this host",
        description="Run ARTIFACT on random input under its runtime's own profiler and print where the time goes: "
        "the top ops, the time per op type and kernel path, and the percent of the total. .pte: ExecuTorch's "
        "ETDump, with XNNPACK's per-operator events (operator and microkernel family, e.g. 'Convolution (NHWC, "
        "F32) IGEMM') and ops left on portable kernels (the fallback path). .onnx: onnxruntime's profiler, per "
        "node of the optimised graph with its execution provider. Times are means per iteration after warm-up.",
    )
    pf.add_argument("artifact", help=".pte or .onnx (made by `edgevit convert`, or any static-shape one)")
    pf.add_argument("--threads", type=int, metavar="N", help="runtime threads (default: as `edgevit bench`)")
    pf.add_argument("--iterations", type=int, default=10, metavar="K", help="timed iterations (default 10)")
    pf.add_argument("--warmup", type=int, default=2, help="warm-up iterations, not counted (default 2)")
    pf.add_argument("--top", type=int, default=20, metavar="N", help="rows in the top-ops table (default 20)")
    pf.add_argument("--json", metavar="FILE", help="also write the whole profile (every op) as JSON here")

    rp = sub.add_parser(
        "report", help="tables and a Pareto plot from any mix of results files",
        description="Read results files of any harness (host, iOS, Android; edgevit/bench/schema.json), write "
        "report.md, a self-contained report.html and pareto.png (latency vs published top-1). Host results of "
        "`edgevit bench` get a table of each .pte against its .onnx (fair ratio with its interval, % of this CPU's "
        "physical peak, and the slowest op type of each when `bench --profile` left profiles beside the file).",
    )
    rp.add_argument("results", nargs="+", help="results JSON files")
    rp.add_argument("--out", default="reports", help="output directory (default: reports)")
    rp.add_argument("--x-axis", choices=["latency", "throughput"], default="latency", help="Pareto plot x axis")
    rp.add_argument("--title", help="report title")

    zo = sub.add_parser(
        "zoo", help="convert the curated efficient-ViT zoo to CoreML and ExecuTorch; a status table",
        description="Convert each curated model (see `edgevit list`; the families compared in 'Which Transformer "
        "to Favor') to each --target, validate every artifact, count reshape/transpose ops in the CoreML MIL "
        "program and time each .pte on this host. A model that fails keeps its row, with the failing op and "
        "module. With --fastvit: the FastViT report instead (params, FLOPs, MIL op histogram, batch-1 latency "
        "of the unfused original vs the fused model in eager PyTorch and in the ExecuTorch runtime).",
    )
    zo.add_argument("models", nargs="*", metavar="MODEL", help="a subset (default: the whole curated zoo)")
    zo.add_argument("--target", nargs="+", default=["coreml", "executorch"], choices=["coreml", "executorch", "onnx"])
    zo.add_argument("--out", default="artifacts/zoo", help="artifact directory (default: artifacts/zoo)")
    zo.add_argument("--json", help="also write the rows (and the host they ran on) as JSON here")
    zo.add_argument("--markdown", help="also write the table as Markdown here")
    zo.add_argument("--iterations", type=int, default=20, help="timed iterations per .pte (default 20; --fastvit's "
                    "fair comparisons need at least 18)")
    zo.add_argument("--no-mil-report", action="store_true",
                    help="skip converting the original models to count their MIL reshape/transpose ops")
    zo.add_argument("--fastvit", action="store_true", help="the per-variant FastViT report instead of the sweep")
    zo.add_argument("--engine", choices=["serial", "ray"], default="serial",
                    help="serial (default): one model x target after the other in this process; ray: as tasks on a "
                    "local Ray cluster (or RAY_ADDRESS), .pte timings then share the machine with conversions")

    _sweep_parsers(sub)

    ha = sub.add_parser("harness", help="stage a device harness with your artifacts")
    hsub = ha.add_subparsers(dest="platform", required=True, metavar="PLATFORM")
    ios = hsub.add_parser("ios", help="a ready-to-open copy of ios_harness with artifacts and config",
                          description="Copy ios_harness with every .mlpackage (plus manifests and validation inputs) "
                          "of --artifacts into --out; open the app package in Xcode and run on an iPhone, or run "
                          "`swift run edgevit-ios-bench` on a Mac. Protocol: warm-up, rounds x iterations, highest "
                          "and lowest trimmed per round.")
    ios.add_argument("--artifacts", required=True, help="directory with artifacts made by edgevit convert")
    ios.add_argument("--out", required=True, help="directory to create")
    ios.add_argument("--rounds", type=int, default=20)
    ios.add_argument("--iterations", type=int, default=50)
    ios.add_argument("--warmup", type=int, default=1)
    ios.add_argument("--compute-units", nargs="+", help="cpuOnly cpuAndGPU cpuAndNeuralEngine all (default: all four)")
    ios.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")

    for a in (cv, va, be, zo):
        a.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    for a in (va, be, pf, ios):
        a.add_argument("--follow-symlinks-inside", action="store_true",
                       help="follow symlinks inside an artifact folder that resolve inside it (default: any symlink "
                       "in an artifact is refused, so nothing outside the folder is read or copied)")
    return p


def _sweep_parsers(sub) -> None:
    from edgevit.studies.sweep.plan import VARIANTS
    from edgevit.studies.sweep.presets import PRESETS

    sw = sub.add_parser(
        "sweep", help="convert, validate and time models x targets x precisions, on Ray or in this process",
        description="Each (model, target, precision) cell is one task: convert -> validate -> bench. Every cell is "
        "checked before any work. Tasks run on Ray (a local cluster unless --address / RAY_ADDRESS names one; "
        "`pip install 'edgevit[sweep]'`) or, without Ray, in this process. Artifacts come from a content-addressed "
        "cache when nothing that determines them changed (a re-run converts nothing and says 'N cached'). A failed "
        "task is recorded with its reason and retried --retries times; it never stops the sweep. OUT/sweep.json "
        "and OUT/results.json are rewritten as tasks finish: `edgevit report OUT` works on a partial sweep.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="plan file (TOML or YAML):\n" + _PLAN_EXAMPLE,
    )
    sw.add_argument("models", nargs="*", metavar="MODEL", help="registry names or timm:<name>")
    sw.add_argument("--target", nargs="+", choices=["coreml", "executorch", "onnx"],
                    help="default: coreml executorch onnx")
    sw.add_argument("--quantize", nargs="+", choices=["none", "fp16", "fp32", "int8"], metavar="SCHEME",
                    help="variants per target: none (the target's float default), fp16, fp32, int8 (.pte/.onnx); "
                    "combinations a target cannot make are left out, and said")
    sw.add_argument("--compress", nargs="+", choices=[v for v in VARIANTS if v not in ("fp16", "fp32", "int8")],
                    metavar="SCHEME", help="CoreML weight compression variants: w8 w4 palette6 palette4")
    sw.add_argument("--preset", choices=sorted(PRESETS),
                    help="seeds: the Makefile's BENCH_MODELS; wtf: every model of 'Which Transformer to Favor' that "
                    "timm provides (README, Sweeps). Without --target/--quantize: float artifacts of all three "
                    "targets plus the int8 .pte")
    sw.add_argument("--plan", metavar="FILE", help="a .toml/.yaml plan instead of the flags above")
    sw.add_argument("--out", default="sweeps/latest", help="output folder (default: sweeps/latest)")
    sw.add_argument("--cache", metavar="DIR", help="artifact cache (default: $EDGEVIT_CACHE, else "
                    "$XDG_CACHE_HOME/edgevit or ~/.cache/edgevit)")
    sw.add_argument("--no-bench", action="store_true", help="convert and validate only")
    sw.add_argument("--rebench", action="store_true",
                    help="time every artifact again, even where the cache holds a timing of it on this host with "
                    "the same bench settings (the default reuses those: a warm re-run times nothing)")
    sw.add_argument("--iterations", type=int, help="timed iterations per artifact (default 10)")
    sw.add_argument("--retries", type=int, help="retries of a task that raised or whose worker died (default 1)")
    sw.add_argument("--engine", choices=["auto", "ray", "serial"], default="auto",
                    help="auto (default): Ray when installed, else this process; serial: this process")
    sw.add_argument("--address", help="an existing Ray cluster (ray://head:10001, or auto); default: RAY_ADDRESS, "
                    "else a local cluster")
    sw.add_argument("--ray-cpus", type=int, metavar="N",
                    help="CPUs of the local Ray cluster the sweep starts (default: all); each conversion takes one")
    sw.add_argument("--bench-resource", default="bench_host", metavar="NAME",
                    help="the Ray resource a timing needs (default bench_host, one per machine); a device "
                    "harness's, e.g. iphone15, to time on the node a phone is attached to")
    sw.add_argument("--unschedulable-after", type=float, default=120.0, metavar="S",
                    help="a task whose resources no node has is reported unschedulable after S seconds (default 120)")
    sw.add_argument("--markdown", metavar="FILE", help="also write the status table as Markdown here")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress display")

    ca = sub.add_parser("cache", help="list, prune or clear the content-addressed artifact cache",
                        description="ls: every entry (artifact, size, created, and whether its bytes still match "
                        "its recorded sha256); prune: remove corrupt/incomplete entries and, with --older-than, "
                        "entries unused for that many days; clear: remove every entry.")
    ca.add_argument("action", choices=["ls", "prune", "clear"])
    ca.add_argument("--cache", metavar="DIR", help="the cache (default as edgevit sweep)")
    ca.add_argument("--older-than", type=float, metavar="DAYS", help="prune: also entries unused for DAYS days")


_PLAN_EXAMPLE = """  models = ["swiftformer-xs", {name = "fastvit-t8", weights = "fastvit_t8.safetensors"}]
  targets = ["executorch", "onnx"]
  variants = ["none", "int8"]
  retries = 1
  [bench]
  enabled = true
  iterations = 10
  resource = "bench_host"
  [[cells]]
  model = "swiftformer-xs"
  target = "coreml"
  variant = "w8"
"""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")  # coremltools' per-pass bars drown the output
    _quiet_library_loggers()
    from edgevit.base.artifact_folder import following_symlinks_inside
    from edgevit.base.errors import EdgevitError

    try:
        with following_symlinks_inside(getattr(args, "follow_symlinks_inside", False)):
            return _dispatch(args)
    except EdgevitError as exc:
        from rich.console import Console
        from rich.markup import escape

        # escaped: a message quotes file names and manifest values, which may hold "[...]" (rich markup) by accident
        # or by design; printed as written, never parsed
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False,
                                   soft_wrap=True)
        return exc.exit_code
    except MemoryError:
        print("error: out of memory: an input, artifact or results file asks for more than this host can give; "
              "nothing partial was published", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # True by construction: an artifact is published with its manifest and inputs in one step (export/publish.py),
        # and results files are written only when complete.
        print("interrupted: nothing partial was published (artifacts reported as published are complete)",
              file=sys.stderr)
        return 130


def _quiet_library_loggers() -> None:
    """Off macOS coremltools logs six "Failed to load _ML...Proxy" lines and version nags at import, and torch
    logs deprecation notes from inside export; edgevit states what matters itself (a CoreML artifact's parity
    and latency say "not run: CoreML runtime needs macOS"). Errors still print."""
    import logging

    for name in ("coremltools", "torch.utils._pytree", "torch._export", "torch.export"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _dispatch(args: argparse.Namespace) -> int:
    from edgevit import commands as out

    if args.command == "list":
        return out.show_turbovit_comparison() if args.turbovit_comparison else out.show_models(args.details)
    if args.command == "convert":
        return out.run_convert(args)
    if args.command == "weights":
        return out.show_weights(args.model)
    if args.command == "validate":
        if args.bisect:
            return out.run_bisect(Path(args.artifact), args.quiet, calibration=args.calibration, json_path=args.json)
        return out.run_validate(Path(args.artifact), args.device_outputs, args.quiet, args.runtime,
                                wide=args.wide, json_path=args.json, min_psnr=args.min_psnr,
                                calibration=args.calibration, weights=args.weights)
    if args.command == "bench":
        return out.run_android_bench(args) if args.device != "host" else out.run_bench(args)
    if args.command == "report":
        return out.run_report(args)
    if args.command == "profile":
        return out.run_profile(args)
    if args.command == "zoo":
        return out.run_fastvit_report(args) if args.fastvit else out.run_zoo(args)
    if args.command == "sweep":
        return out.run_sweep(args)
    if args.command == "cache":
        return out.run_cache(args)
    if args.command == "harness":
        return out.run_harness_ios(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
