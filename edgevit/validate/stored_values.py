"""The weights an ML program stores, read back and matched to the model they came from, each judged by the rule
of its storage format.

Why: "same program" needs "same values". A program computing the right ops on a negated, swapped, zeroed or
rescaled weight is a different function, and a tolerance on outputs cannot tell a 2% change of one tensor from
fp16 noise. The values are checkable one by one instead, each against the original's parameter, because every
storage format edgevit writes is a deterministic rounding of it:

- fp32 const: the parameter itself (equal to the last bit, one ulp allowed);
- fp16 const: the parameter rounded to the nearest fp16 (one fp16 ulp allowed);
- affine int8/int4 (``constexpr_affine_dequantize``, ``constexpr_blockwise_shift_scale``): the parameter rounded to
  the nearest point of the stored grid ``scale · (q - zero_point)``, so |w - stored| <= scale/2 (plus the fp16
  rounding of the scale: |q|·scale·2^-10) — a changed scale moves every value of its channel off that bound;
- palette (``constexpr_lut_to_dense``): each value is the palette entry nearest to the parameter (k-means assigns
  every weight to its nearest centroid), within two fp16 ulps of the largest entry for the palette's rounding.

Names tie a stored tensor to its parameter: coremltools names a const after the ``torch.export`` placeholder
(``p_model_stem_0_weight`` for ``model.stem.0.weight``) plus suffixes of its own passes (``_to_fp16``,
``_quantized``, ``_palettized``). Stored tensors without a parameter (constants coremltools folds itself, such as
the input normalisation turned into a ``batch_norm``) are judged by the program check, not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

_PREFIX = re.compile(r"^[pbc]_")  # torch.export placeholders: parameter, buffer, lifted constant
_SUFFIXES = ("_to_fp16", "_to_fp32", "_quantized", "_palettized", "_sparsified", "_cast", "_dequantized")
_AFFINE = ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale")
_LUT = ("constexpr_lut_to_dense",)
MAX_LISTED = 10


@dataclass
class StoredTensor:
    """One float tensor the program stores, dense (as the program computes with it) and how it is stored."""

    name: str
    kind: str  # "fp32", "fp16", "affine" or "lut"
    dense: np.ndarray
    step: np.ndarray | None = None  # affine: the grid step of every element (its scale)
    palette: np.ndarray | None = None  # lut: the palette values (all groups, flattened)


@dataclass
class ValueCheck:
    """The stored-values check of one program: how many tensors were matched and checked, and which broke."""

    checked: int = 0
    unmatched: list[str] = field(default_factory=list)  # stored tensors with no parameter (judged by the program)
    broken: list[dict] = field(default_factory=list)  # {"tensor", "parameter", "rule", "bad", "of", "worst"}

    @property
    def ok(self) -> bool:
        return not self.broken

    def describe(self) -> str:
        if self.ok:
            return f"{self.checked} stored tensors equal the original's parameters under their storage rule"
        first = self.broken[0]
        more = f" (and {len(self.broken) - 1} more tensors)" if len(self.broken) > 1 else ""
        return (f"stored tensor {first['tensor']} is not {first['parameter']} under its {first['rule']} rule: "
                f"{first['bad']} of {first['of']} values off, the worst {first['worst']:.3g}× its rounding slack "
                f"outside the rule{more}")

    def to_json(self) -> dict:
        return {"checked": self.checked, "unmatched": self.unmatched[:MAX_LISTED],
                "n_unmatched": len(self.unmatched), "broken": self.broken[:MAX_LISTED], "n_broken": len(self.broken)}


def parameter_key(name: str) -> str:
    """The state-dict key a stored tensor's name points at, with '.' spelt '_' (names use '_' for both)."""
    base = _PREFIX.sub("", name)
    changed = True
    while changed:
        changed = False
        for suffix in _SUFFIXES:
            if base.endswith(suffix):
                base, changed = base[: -len(suffix)], True
    return base


def read_stored(function) -> list[StoredTensor]:
    """Every stored float tensor in ``function`` (a pymil Function), dense (scalars included: a folded scale
    rounded to fp16 moves the output as much as a weight does)."""
    from edgevit.mil.kernels import KERNELS, OpArgs

    found = []
    for op in function.operations:
        if op.op_type == "const":
            value = op.outputs[0].val
            if _feeds_only_constexpr(op):  # a scale or palette: judged with the tensor it decompresses to
                continue
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size >= 1:
                kind = "fp16" if value.dtype == np.float16 else "fp32"
                found.append(StoredTensor(op.outputs[0].name, kind, value.astype(np.float32)))
        elif op.op_type in _AFFINE or op.op_type in _LUT:
            args = OpArgs(op, {})
            dense = np.asarray(KERNELS[op.op_type](args), dtype=np.float32)
            if op.op_type in _LUT:
                found.append(StoredTensor(op.outputs[0].name, "lut", dense,
                                          palette=np.asarray(args.array("lut"), dtype=np.float32).reshape(-1)))
            else:
                found.append(StoredTensor(op.outputs[0].name, "affine", dense, step=_grid_step(op, args, dense)))
    return found


def _feeds_only_constexpr(op) -> bool:
    children = list(getattr(op.outputs[0], "child_ops", ()))
    return bool(children) and all(child.op_type.startswith("constexpr_") for child in children)


def _grid_step(op, args, dense: np.ndarray) -> np.ndarray:
    """The scale of every element: the dequantisation of (q + 1) minus that of q."""
    from edgevit.mil.ops.constexpr import along_axis, shift_scale

    if op.op_type == "constexpr_affine_dequantize":
        axis = args.int("axis", 0) % max(dense.ndim, 1)
        return np.broadcast_to(np.abs(along_axis(args.array("scale").astype(np.float32), dense.ndim, axis)),
                               dense.shape)
    return np.abs(shift_scale(np.ones(dense.shape, np.float32), args.array("scale"), None))


def check_stored(stored: list[StoredTensor], state: dict[str, np.ndarray]) -> tuple[ValueCheck, dict[str, np.ndarray]]:
    """Match stored tensors to ``state`` (key -> the original's fp32 values) and check each; also return the
    dense stored values by state key, for a reference that carries exactly what the program stores."""
    by_key = {key.replace(".", "_"): key for key in state}
    result, carried = ValueCheck(), {}
    for tensor in stored:
        key = by_key.get(parameter_key(tensor.name))
        if key is None or tuple(state[key].shape) != tensor.dense.shape:
            result.unmatched.append(tensor.name)
            continue
        result.checked += 1
        carried[key] = tensor.dense
        broken = broken_under_rule(tensor, np.asarray(state[key], dtype=np.float32))
        if broken is not None:
            result.broken.append({"tensor": tensor.name, "parameter": key, **broken})
    return result, carried


def broken_under_rule(tensor: StoredTensor, original: np.ndarray, computed: np.ndarray | None = None) -> dict | None:
    """None when every stored value is what its rule makes of the original; else how often and how far off.

    Each rule is ``|stored - original| <= exact + slack``: ``exact`` what the format itself allows (0 for a float,
    half a step on a grid, the distance to the nearest entry of a palette) and ``slack`` the rounding of the
    format's own numbers (fp16 ulps), plus ``computed`` when ``original`` is itself computed in fp32 (a folded
    BatchNorm): a bound on that computation's rounding, per element. ``worst`` is how many slacks the worst value
    lies outside its rule."""
    stored = tensor.dense
    error = np.abs(stored - original)
    if tensor.kind in ("fp32", "fp16"):
        expected = original.astype(np.float16).astype(np.float32) if tensor.kind == "fp16" else original
        error = np.abs(stored - expected)
        exact, slack = np.zeros_like(error), _ulp(expected, tensor.kind)
    elif tensor.kind == "affine":
        scale = _grid_scale_error(tensor, original)
        if scale is not None:
            return scale
        exact, slack = tensor.step / 2, np.abs(stored) * 2.0**-10 + _ulp(original, "fp16")
    else:
        palette = np.unique(tensor.palette)
        exact = np.min(np.abs(original.reshape(-1, 1) - palette.reshape(1, -1)), axis=1).reshape(original.shape)
        slack = np.broadcast_to(2 * _ulp(np.array(np.max(np.abs(palette))), "fp16"), error.shape)
    if computed is not None:
        slack = slack + computed
    bad = error > exact + slack
    if not bad.any():
        return None
    outside = (error - exact) / np.maximum(slack, np.finfo(np.float32).tiny)
    return {"rule": tensor.kind, "bad": int(bad.sum()), "of": int(bad.size), "worst": float(np.max(outside[bad]))}


def _grid_scale_error(tensor: StoredTensor, original: np.ndarray) -> dict | None:
    """The symmetric grid's own rule: each block's scale is its largest |weight| over the largest level, so the
    largest stored value of a block equals the block's largest original value (up to the scale's fp16 rounding,
    2^-10 relative). A rescaled grid breaks it by the rescaling (2% off for a scale times 1.02), while the
    nearest-point rule above allows half a step, which on an int4 grid (levels up to 7) hides a 7% change."""
    channels = original.shape[0] if original.ndim else 1
    step = np.broadcast_to(tensor.step, original.shape).reshape(channels, -1)
    stored = np.abs(tensor.dense).reshape(channels, -1)
    wanted = np.abs(original).reshape(channels, -1)
    worst, bad, blocks = 0.0, 0, 0
    for c in range(channels):
        for value in np.unique(step[c]):
            members = step[c] == value
            peak = float(wanted[c][members].max())
            if peak == 0:
                continue
            blocks += 1
            off = abs(float(stored[c][members].max()) - peak) / (peak * 2.0**-9)
            if off > 1:
                bad += 1
                worst = max(worst, off)
    if not bad:
        return None
    return {"rule": "affine grid scale", "bad": bad, "of": blocks, "worst": worst}


def _ulp(values: np.ndarray, kind: str) -> np.ndarray:
    """One unit in the last place of each value in that float format (the smallest normal's ulp for tiny ones)."""
    dtype = np.float16 if kind == "fp16" else np.float32
    v = np.abs(np.asarray(values, dtype=np.float32)).astype(dtype)
    return np.spacing(np.maximum(v, np.finfo(dtype).tiny)).astype(np.float32)
