"""Tests of results loading (schema validation) and of the report: Pareto front, md/html/png outputs.

TEST FIXTURES: every result dict below is built by hand to conform to edgevit/bench/schema.json. The latencies
and accuracies are made-up illustrative numbers for testing the report, NOT measurements or published values.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from edgevit.base.errors import OutputError, SchemaError
from edgevit.bench.results import (
    SOURCE_KEY,
    V2_RESULT_FIELDS,
    V3_DEVICE_FIELDS,
    V3_RESULT_FIELDS,
    load_results,
    load_schema,
    validate_document,
)
from edgevit.report import NOT_MEASURED, OPTIMAL_MARK, ReportPaths, pareto_front, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# TEST FIXTURE accuracies (percent), made up for the test; "mystery-net" deliberately has none.
FIXTURE_TOP1 = {"net-a": 75.0, "net-b": 78.0, "net-c": 77.0, "net-d": 82.0}

HOST = {"kind": "host", "name": "testbox", "os": "Linux 6.8", "cpu": "Test CPU 9000"}
PHONE = {"kind": "iphone", "name": "iPhone15,2", "os": "iOS 18.1", "cpu": "A16"}


def fixture_result(model: str, median: float | None, **overrides: Any) -> dict[str, Any]:
    """TEST FIXTURE: one schema-conformant result (host, original-eager) with a made-up median."""
    r: dict[str, Any] = {
        "model": model, "form": "original-eager", "artifact": None, "artifact_sha256": None,
        "runtime": "pytorch", "backend": None, "compute_unit": None, "precision": "fp32",
        "device": dict(HOST), "batch": 1, "input_shape": [1, 3, 224, 224], "warmup": 5, "iterations": 3,
        "per_iteration_ms": [] if median is None else [median, median, median],
        "median_ms": median, "trimmed_mean_ms": median, "trim_fraction": 0.1, "p90_ms": median,
        "peak_memory_mb": 12.5, "memory_kind": "rss_growth", "load_time_ms": 40.0,
        "tool_versions": {"torch": "2.14.1"}, "status": "ok", "error": None,
    }
    r.update(overrides)
    return r


def fixture_file(harness: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """TEST FIXTURE: a whole results document."""
    return {"schema_version": 1, "harness": harness, "created": "2025-01-01T00:00:00Z", "results": results}


def fixture_results() -> list[dict[str, Any]]:
    """TEST FIXTURE: host eager/prepared/executorch/onnx + one phone CoreML series, incl. failures."""
    host = [
        fixture_result("net-a", 10.0),
        fixture_result("net-b", 20.0),
        fixture_result("net-c", 30.0),  # dominated by net-b: slower and less accurate
        fixture_result("net-d", 40.0),
        fixture_result("mystery-net", 5.0),  # no published top-1: must be listed, not plotted
        fixture_result("net-a", 8.0, form="prepared-eager"),
        fixture_result("net-b", 15.0, form="prepared-eager"),
        fixture_result("net-a", 4.0, form="executorch", runtime="executorch", backend="xnnpack",
                       artifact="net-a.executorch.xnnpack.fp32.pte", artifact_sha256="a" * 64),
        fixture_result("net-a", 6.0, form="onnx", runtime="onnxruntime", backend="cpu-execution-provider",
                       artifact="net-a.onnx", artifact_sha256="b" * 64),
        fixture_result("net-b", None, form="executorch", runtime="executorch", backend="xnnpack",
                       status="failed", error="XNNPACK delegate rejected op aten.foo",
                       peak_memory_mb=None, memory_kind=None, load_time_ms=None, trimmed_mean_ms=None,
                       p90_ms=None),
    ]
    phone = [
        fixture_result(m, ms, form="coreml", runtime="coreml", backend=None,
                       compute_unit="cpuAndNeuralEngine", precision="fp16", device=dict(PHONE),
                       artifact=f"{m}.coreml.fp16.mlpackage", artifact_sha256="c" * 64,
                       memory_kind="phys_footprint", tool_versions={"coremltools": "9.0"})
        for m, ms in (("net-a", 0.8), ("net-b", 1.1), ("net-c", 0.9), ("net-d", 2.0))
    ]
    phone.append(fixture_result("net-d", None, form="coreml", runtime="coreml", compute_unit="cpuOnly",
                                precision="fp16", device=dict(PHONE), status="not_run",
                                error="device locked", peak_memory_mb=None, load_time_ms=None,
                                trimmed_mean_ms=None, p90_ms=None))
    return host + phone


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------- schema / loading


def test_fixtures_conform_to_schema() -> None:
    validate_document(fixture_file("host", fixture_results()), "fixture")


def test_load_results_keeps_file_and_harness(tmp_path: Path) -> None:
    results = fixture_results()
    a = write_json(tmp_path / "host.json", fixture_file("host", results[:10]))
    b = write_json(tmp_path / "ios.json", fixture_file("ios", results[10:]))
    loaded = load_results([a, b])
    assert len(loaded) == len(results)
    assert loaded[0][SOURCE_KEY] == {"file": str(a), "harness": "host", "created": "2025-01-01T00:00:00Z"}
    assert loaded[-1][SOURCE_KEY]["harness"] == "ios"
    # a version-1 result comes back with the version-2 fields as null ("not measured")
    expected = dict.fromkeys(V2_RESULT_FIELDS + V3_RESULT_FIELDS) | results[0]
    expected["device"] = dict.fromkeys(V3_DEVICE_FIELDS) | results[0]["device"]
    assert {k: v for k, v in loaded[0].items() if k != SOURCE_KEY} == expected


def test_schema_rejection_names_file_path_and_reason(tmp_path: Path) -> None:
    results = [fixture_result(f"net-{i}", 1.0) for i in range(5)]
    results[3]["median_ms"] = "abc"
    bad = write_json(tmp_path / "bad.json", fixture_file("host", results))
    with pytest.raises(SchemaError) as e:
        load_results([bad])
    msg = str(e.value)
    assert str(bad) in msg
    assert "results[3].median_ms: 'abc' is not of type 'number'" in msg


def test_schema_rejects_missing_and_extra_fields(tmp_path: Path) -> None:
    r = fixture_result("net-a", 1.0)
    del r["status"]
    with pytest.raises(SchemaError, match=r"results\[0\]: 'status' is a required property"):
        validate_document(fixture_file("host", [r]), "x.json")
    doc = fixture_file("host", [fixture_result("net-a", 1.0)])
    doc["made_up"] = 1
    with pytest.raises(SchemaError, match=r"x.json: .*\(document root\): Additional properties"):
        validate_document(doc, "x.json")
    doc = fixture_file("android", [fixture_result("net-a", -1.0)])
    with pytest.raises(SchemaError, match=r"results\[0\]\.median_ms: -1\.0 is less than the minimum of 0"):
        validate_document(doc, "x.json")


@pytest.mark.parametrize("content", ["{not json", "", '{"schema_version": 1, "harness": "host"'])
def test_corrupt_json_is_a_schema_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "corrupt.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SchemaError, match="not valid JSON"):
        load_results([path])


def test_missing_or_unreadable_file_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="not found"):
        load_results([tmp_path / "nope.json"])
    with pytest.raises(SchemaError, match="cannot read"):
        load_results([tmp_path])  # a directory
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SchemaError, match="cannot read"):
        load_results([binary])


def test_one_bad_file_rejects_the_whole_load(tmp_path: Path) -> None:
    good = write_json(tmp_path / "good.json", fixture_file("host", [fixture_result("net-a", 1.0)]))
    bad = write_json(tmp_path / "bad.json", {**fixture_file("host", []), "schema_version": 4})
    with pytest.raises(SchemaError, match=r"bad.json.*schema_version"):
        load_results([good, bad])


def test_schema_itself_is_valid() -> None:
    import jsonschema

    schema = load_schema()
    jsonschema.validators.validator_for(schema).check_schema(schema)


# ----------------------------------------------------------------------------------------- Pareto front


def test_pareto_single_point() -> None:
    assert pareto_front([("a", 5.0, 70.0)]) == ["a"]


def test_pareto_empty() -> None:
    assert pareto_front([]) == []


def test_pareto_drops_dominated_and_orders_fastest_first() -> None:
    points = [("slow-bad", 30.0, 77.0), ("fast", 10.0, 75.0), ("best", 40.0, 82.0), ("mid", 20.0, 78.0)]
    assert pareto_front(points) == ["fast", "mid", "best"]


def test_pareto_everything_dominated_by_one() -> None:
    points = [("x", 2.0, 70.0), ("y", 3.0, 71.0), ("king", 1.0, 80.0)]
    assert pareto_front(points) == ["king"]


def test_pareto_ties() -> None:
    # Same latency: the more accurate one dominates. Same accuracy: the faster one dominates.
    assert pareto_front([("a", 10.0, 70.0), ("b", 10.0, 72.0)]) == ["b"]
    assert pareto_front([("a", 10.0, 72.0), ("b", 12.0, 72.0)]) == ["a"]
    # Exact duplicates: neither is strictly better, both stay.
    assert pareto_front([("b", 10.0, 72.0), ("a", 10.0, 72.0)]) == ["a", "b"]


def test_pareto_rejects_nan() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        pareto_front([("a", float("nan"), 70.0)])


# ----------------------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    """Rendered once for the module: the tests below only read it."""
    out = tmp_path_factory.mktemp("report") / "out"
    return write_report(fixture_results(), out, FIXTURE_TOP1, title="Test report")


def test_report_files_are_written(report: ReportPaths) -> None:
    assert report.markdown.name == "report.md" and report.html.name == "report.html"
    assert report.png.read_bytes().startswith(PNG_MAGIC)
    assert report.markdown.read_text(encoding="utf-8").startswith("# Test report")
    leftovers = [p for p in report.png.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_html_is_self_contained(report: ReportPaths) -> None:
    text = report.html.read_text(encoding="utf-8")
    assert re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE) is None
    assert "<link" not in text and "<script" not in text and "@import" not in text
    assert "pareto.png" not in text
    m = re.search(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert m is not None
    import base64

    assert base64.b64decode(m.group(1)) == report.png.read_bytes()


def _md_rows(md: str, *cells: str) -> list[str]:
    """Markdown table rows that contain every one of `cells` as a whole cell."""
    return [line for line in md.splitlines()
            if line.startswith("| ") and all(f"| {c} |" in line for c in cells)]


def test_unmeasured_values_say_not_measured(report: ReportPaths) -> None:
    md = report.markdown.read_text(encoding="utf-8")
    failed = _md_rows(md, "net-b", "executorch")
    assert len(failed) == 1
    assert failed[0].count(NOT_MEASURED) >= 6  # median, trimmed mean, p90, load, memory, Pareto
    assert "failed: XNNPACK delegate rejected op aten.foo" in failed[0]
    not_run = _md_rows(md, "net-d", "coreml")
    assert any("not run: device locked" in row and NOT_MEASURED in row for row in not_run)
    html_text = report.html.read_text(encoding="utf-8")
    assert NOT_MEASURED in html_text and "XNNPACK delegate rejected op aten.foo" in html_text


def test_model_without_published_top1_is_listed_not_plotted(report: ReportPaths) -> None:
    md = report.markdown.read_text(encoding="utf-8")
    assert "not plotted: no published top-1: mystery-net" in md
    (row,) = _md_rows(md, "mystery-net")
    assert "| none published |" in row


def test_pareto_optimal_models_are_marked_in_markdown(report: ReportPaths) -> None:
    md = report.markdown.read_text(encoding="utf-8")
    eager = {m: _md_rows(md, m, "original-eager") for m in FIXTURE_TOP1}
    for model in ("net-a", "net-b", "net-d"):
        (row,) = eager[model]
        assert f"| {OPTIMAL_MARK} |" in row, model
    (row,) = eager["net-c"]
    assert "| dominated |" in row
    # On the phone net-c (0.9 ms, 77%) is between net-a and net-b, so it is on that front.
    (row,) = [r for r in _md_rows(md, "net-c", "coreml")]
    assert f"| {OPTIMAL_MARK} |" in row
    assert "net-a → net-b → net-d" in md


def test_speedups_are_ratios_of_medians(report: ReportPaths) -> None:
    md = report.markdown.read_text(encoding="utf-8")
    rows = _md_rows(md, "net-a", "prepared-eager · fp32", "original-eager · fp32")
    assert len(rows) == 1 and "| 1.25× |" in rows[0]  # 10 ms / 8 ms
    rows = _md_rows(md, "net-a", "executorch · xnnpack · fp32", "onnx · cpu-execution-provider · fp32")
    assert len(rows) == 1 and "| 1.50× |" in rows[0]  # 6 ms / 4 ms
    rows = _md_rows(md, "net-b", "executorch · xnnpack · fp32", "original-eager · fp32")
    assert len(rows) == 1 and f"{NOT_MEASURED} (variant)" in rows[0]


def test_measured_on_column(report: ReportPaths) -> None:
    md = report.markdown.read_text(encoding="utf-8")
    assert "| host testbox, Linux 6.8, Test CPU 9000 |" in md
    assert "| iphone iPhone15,2, iOS 18.1, A16 |" in md
    assert "12.5 MB (phys_footprint)" in md


def test_throughput_axis_and_markdown_escaping(tmp_path: Path) -> None:
    results = fixture_results()
    results[9] = copy.deepcopy(results[9]) | {"error": "bad | pipe\nnewline"}
    paths = write_report(results, tmp_path, FIXTURE_TOP1, x_axis="throughput")
    md = paths.markdown.read_text(encoding="utf-8")
    assert "failed: bad \\| pipe newline" in md
    assert paths.png.read_bytes().startswith(PNG_MAGIC)


def test_report_from_loaded_files_names_sources(tmp_path: Path) -> None:
    results = fixture_results()
    a = write_json(tmp_path / "host.json", fixture_file("host", results[:10]))
    b = write_json(tmp_path / "ios.json", fixture_file("ios", results[10:]))
    paths = write_report(load_results([a, b]), tmp_path / "r", FIXTURE_TOP1)
    md = paths.markdown.read_text(encoding="utf-8")
    assert f"[1] {a}: harness host" in md and f"[2] {b}: harness ios" in md


def test_empty_results_still_write_a_report(tmp_path: Path) -> None:
    paths = write_report([], tmp_path, {})
    assert "No results were given." in paths.markdown.read_text(encoding="utf-8")
    assert paths.png.read_bytes().startswith(PNG_MAGIC)


def test_unwritable_output_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        write_report(fixture_results(), blocker, FIXTURE_TOP1)
    with pytest.raises(OutputError, match="cannot create"):
        write_report(fixture_results(), blocker / "sub", FIXTURE_TOP1)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_read_only_output_dir_is_an_output_error(tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            write_report(fixture_results(), out, FIXTURE_TOP1)
    finally:
        out.chmod(0o700)


def test_failed_write_is_an_output_error_and_leaves_no_temp_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match="cannot write .*pareto.png: Permission denied"):
        write_report(fixture_results(), tmp_path, FIXTURE_TOP1)
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_normal_permissions(report: ReportPaths) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    for path in (report.markdown, report.html, report.png):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_threads_and_percent_of_peak_columns(tmp_path: Path) -> None:
    """Schema v2 fields are shown where a result has them; a v1 result (or a null) reads as not stated/measured."""
    import csv

    results = [fixture_result("net-a", 10.0, threads=4, gflop_per_s=123.4, percent_of_peak=12.345),
               fixture_result("net-b", 20.0),  # schema v1: no such fields
               fixture_result("net-c", 30.0, threads=None, gflop_per_s=None, percent_of_peak=None),
               fixture_result("net-d", None, threads=2, percent_of_peak=50.0, status="failed", error="boom")]
    paths = write_report(results, tmp_path, FIXTURE_TOP1)
    md = paths.markdown.read_text(encoding="utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| model | form |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    threads_col, peak_col = cells.index("threads"), cells.index("% of peak")

    def row(model: str) -> list[str]:
        (line,) = _md_rows(md, model)
        return [c.strip() for c in line.strip("|").split("|")]

    assert (row("net-a")[threads_col], row("net-a")[peak_col]) == ("4", "12.3")
    assert (row("net-b")[threads_col], row("net-b")[peak_col]) == ("—", NOT_MEASURED)
    assert (row("net-c")[threads_col], row("net-c")[peak_col]) == ("—", NOT_MEASURED)
    assert (row("net-d")[threads_col], row("net-d")[peak_col]) == ("2", NOT_MEASURED)  # failed: not a measurement
    html_text = paths.html.read_text(encoding="utf-8")
    assert "<th>threads</th>" in html_text and "<th>% of peak</th>" in html_text and "<td>12.3</td>" in html_text
    with open(paths.results_csv, newline="", encoding="utf-8") as fh:
        by_model = {r["model"]: r for r in csv.DictReader(fh)}
    assert (by_model["net-a"]["threads"], by_model["net-a"]["percent_of_peak"]) == ("4", "12.345")
    for model in ("net-b", "net-c"):
        assert (by_model[model]["threads"], by_model[model]["percent_of_peak"]) == ("", "")
    assert (by_model["net-d"]["threads"], by_model["net-d"]["percent_of_peak"]) == ("2", "")


def test_published_phone_latency_has_its_own_section_beside_device_results(tmp_path: Path) -> None:
    """The paper's phone figure is shown with its device and source, next to what a device harness measured, and
    never as a host figure; a model with neither gets no row."""
    results = fixture_results()
    host = write_json(tmp_path / "host.json", fixture_file("host", [r for r in results if r["device"] == HOST]))
    ios = write_json(tmp_path / "ios.json", fixture_file("ios", [r for r in results if r["device"] == PHONE]))
    published = {"net-a": {"ms": 0.7, "device": "iPhone 14", "compute_unit": "Neural Engine",
                           "source": "Net-A paper, Table 2"}}
    paths = write_report(load_results([host, ios]), tmp_path / "r", FIXTURE_TOP1, published_latency=published)
    text = paths.markdown.read_text()
    section = text.split("## Published device latency and device harness results", 1)[1]
    row_a = next(line for line in section.splitlines() if line.startswith("| net-a"))
    assert "0.7 ms on iPhone 14 (Neural Engine)" in row_a and "Net-A paper, Table 2" in row_a
    assert "0.800 ms" in row_a or "0.8" in row_a.split("|")[4]  # the iOS harness result beside it
    assert "4.0" not in row_a.split("|")[4]  # the host .pte (4 ms) is not in the device column
    row_b = next(line for line in section.splitlines() if line.startswith("| net-b"))
    assert "not published" in row_b  # a device result but no paper figure
    assert "mystery-net" not in section  # neither: no row
    plain = write_report(load_results([host]), tmp_path / "plain", FIXTURE_TOP1, published_latency={})
    assert "Published device latency" not in plain.markdown.read_text()


def test_published_latency_without_torch_matches_the_registry() -> None:
    from edgevit.models.catalog import published_latency
    from edgevit.models.registry import get_spec, model_names

    registry = {n: get_spec(n).published_latency for n in model_names() if get_spec(n).published_latency}
    assert published_latency() == registry
    assert registry["swiftformer-l1"]["ms"] == 1.1 and registry["fastvit-t8"]["device"] == "iPhone 12 Pro"
    assert "turbovit" not in registry and "hiera-t" not in registry  # their papers publish no phone latency
