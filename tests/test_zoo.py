"""The zoo: curated specs, the generic converter on several families, the sweep and its table from real rows."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from edgevit.base.errors import UnknownModelError
from edgevit.export.failures import export_error
from edgevit.models.catalog import zoo_names, zoo_specs
from edgevit.models.registry import ModelSpec, get_spec, register, unregister
from edgevit.studies.zoo import run_zoo, write_zoo_json, zoo_table_markdown

SPECS = {s.name: s for s in zoo_specs()}


def test_zoo_is_curated():
    assert len(SPECS) >= 15 and len(SPECS) == len(zoo_specs())
    for name, spec in SPECS.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name
        assert spec.top1_source and spec.paper
        if spec.published_top1 is None:
            assert spec.top1_source.startswith("not given"), name  # says why, never a guess
        else:
            assert 60 < spec.published_top1 < 90
        assert spec.converter == ("fastvit" if spec.family == "fastvit" else "generic")
    required = {"efficientformer-l1", "efficientformerv2-s0", "mobilevitv2-100", "mobilevitv2-200", "levit-128s",
                "fastvit-t8", "fastvit-sa12", "poolformer-s12", "repvit-m0-9", "mobileone-s0", "swin-t",
                "efficientvit-m0", "vit-ti", "deit-t"}
    assert required <= set(SPECS)
    assert {"hybrid-attention", "pooling-mixer", "cnn-baseline", "window-attention", "sequence-reduction",
            "plain-vit"} <= {s.family for s in SPECS.values()}
    assert "swiftformer-xs" in zoo_names()


def test_preprocessing_comes_from_timm():
    from timm.models import get_pretrained_cfg

    for spec in SPECS.values():
        cfg = get_pretrained_cfg(spec.timm_name)
        assert spec.input_size == tuple(cfg.input_size) and spec.crop_pct == cfg.crop_pct
        assert spec.mean == tuple(cfg.mean) and spec.std == tuple(cfg.std)
        assert spec.interpolation == cfg.interpolation
    assert SPECS["mobilevitv2-100"].mean == (0.0, 0.0, 0.0) and SPECS["mobileone-s0"].interpolation == "bilinear"


def test_unknown_names_get_the_closest():
    with pytest.raises(UnknownModelError, match="timm:fastvit_sa12"):
        get_spec("timm:fastvit_sa13")
    with pytest.raises(UnknownModelError, match="poolformer-s12"):
        get_spec("poolformer-s13")
    rows = run_zoo(["no-such-model"], targets=("executorch",))
    assert rows[0]["status"] == "failed: unknown model" and "unknown model" in rows[0]["error"]


def test_export_error_carries_op_and_module_as_fields():
    class Unconvertible(torch.nn.Module):
        def forward(self, x):
            return torch.kthvalue(x, 2, dim=1).values

    program = torch.export.export(torch.nn.Sequential(torch.nn.Identity(), Unconvertible()), (torch.randn(1, 4),))
    cause = NotImplementedError("PyTorch convert function for op 'kthvalue' not implemented.")
    err = export_error("CoreML", cause, program)
    assert (err.target, err.op) == ("CoreML", "kthvalue") and "Unconvertible" in err.module
    assert f"at op 'kthvalue' in module {err.module}:" in str(err)
    unknown = export_error("ExecuTorch (xnnpack)", RuntimeError("x"), None)
    assert (unknown.op, unknown.module) == (None, None) and "at an op" in str(unknown)


class Unconvertible(nn.Module):
    """A conv, then an op CoreML has no conversion for: a real export failure for the sweep to record."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4)

    def forward(self, x):
        y = self.conv(x).flatten(1)
        return torch.kthvalue(y, 3, dim=1).values[:, None] * torch.ones(1, 1000)


@pytest.fixture(scope="module")
def zoo_rows(tmp_path_factory):
    """Two small zoo models converted for real to CoreML and ExecuTorch, plus one that cannot convert."""
    register(ModelSpec(name="zoo-test-unconvertible", builder=Unconvertible, converter="generic", family="test",
                       input_size=(3, 64, 64), top1_source="not given: a test model"))
    out = tmp_path_factory.mktemp("zoo")
    try:
        rows = run_zoo(["mobileone-s0", "deit-t", "zoo-test-unconvertible"], targets=("coreml", "executorch"),
                       out_dir=out, iterations=3, warmup=1, mil_report=False)
    finally:
        unregister("zoo-test-unconvertible")  # other tests list the registry
    return rows, out


def test_zoo_rows_from_real_conversions(zoo_rows):
    rows, out = zoo_rows
    by = {(r["model"], r["target"]): r for r in rows}
    assert len(rows) == 6
    for model in ("mobileone-s0", "deit-t"):
        ct, et = by[(model, "coreml")], by[(model, "executorch")]
        assert ct["status"] == et["status"] == "converted"
        assert et["parity"] == "pass" and et["rel_l2"] <= 1e-4 and et["top1_agreement"] == 1.0
        assert et["pte_latency_ms"] > 0 and et["latency_iterations"] == 3 and et["xnnpack_subgraphs"] >= 1
        assert ct["parity"] == "pass" and ct["parity_runtime"] == "mil-reference"  # checked on Linux too
        assert isinstance(ct["layout_ops_after"], int)
        assert ct["layout_ops_before"] is None  # mil_report=False: the original is not converted
        assert ct["prepared_rel_l2"] <= 1e-5 and ct["published_top1"] == SPECS[model].published_top1
    # the generic converter's attention rewrite (per-head Linears, converters.rewrites.attention) leaves DeiT's
    # attention no head reshapes/transposes in the MIL program (50 before it)
    assert by[("deit-t", "coreml")]["layout_ops_after"] <= 4
    assert by[("mobileone-s0", "coreml")]["layout_ops_after"] == 1
    failed = by[("zoo-test-unconvertible", "coreml")]
    assert failed["status"].startswith("failed: op kthvalue in ") and "Unconvertible" in failed["failing_module"]
    assert failed["failing_op"] == "kthvalue" and "CoreML export failed" in failed["error"]


def test_zoo_table_and_json(zoo_rows, tmp_path):
    rows, _ = zoo_rows
    table = zoo_table_markdown(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| model | target | status | parity |") and len(lines[2:8]) == 6
    assert "| mobileone-s0 | executorch | converted | pass |" in table
    assert "failed: op kthvalue in " in table and "Failures:" in table
    assert "- deit-t: DeiT paper" in table
    path = write_zoo_json(rows, tmp_path / "zoo.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "edgevit-zoo/1" and len(doc["rows"]) == 6 and doc["device"]["kind"] == "host"


@pytest.mark.slow
def test_whole_zoo_sweep(tmp_path):
    """Every zoo model to CoreML and ExecuTorch; every row says converted or exactly why not."""
    rows = run_zoo(targets=("coreml", "executorch"), out_dir=tmp_path, iterations=5)
    assert {r["model"] for r in rows} == set(zoo_names())
    for r in rows:
        assert r["status"] == "converted" or (r["status"].startswith("failed") and r["error"]), r
    write_zoo_json(rows, tmp_path / "zoo.json")
    (tmp_path / "zoo.md").write_text(zoo_table_markdown(rows))
