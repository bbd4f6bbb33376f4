"""Inspect the CoreML MIL program a module converts to: op histogram, layout ops, max tensor rank.

Why: reshape/transpose ops and rank>4 tensors are what keep a model off the Neural Engine; this is how the
converters prove their rewrites removed them (and how the zoo table reports what is left).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from edgevit.models.spec import ModelSpec

# MIL ops that only move data around (the ones the rewrites aim to remove).
LAYOUT_OPS = frozenset({"reshape", "transpose", "reshape_like", "flatten2d", "space_to_depth", "depth_to_space"})


@dataclass
class MilStats:
    """What one MIL program contains; ``error`` is set (and the rest empty) when conversion failed."""

    histogram: Counter = field(default_factory=Counter)
    layout_ops: list[str] = field(default_factory=list)  # names of reshape/transpose ops, in program order
    max_rank: int = 0
    error: str | None = None

    @property
    def layout_count(self) -> int:
        return len(self.layout_ops)

    def to_json(self) -> dict:
        return {
            "histogram": dict(sorted(self.histogram.items())),
            "layout_ops": self.layout_count,
            "max_rank": self.max_rank,
            "error": self.error,
        }


def in_eval(module: nn.Module) -> nn.Module:
    """``module`` switched to eval mode. Not ``module.eval()``'s return value: some timm modules override
    ``train()`` without returning self (EfficientFormerV2's ``Attention2d``), so it can be None."""
    module.eval()
    return module


def module_of(node: torch.fx.Node) -> str:
    """The innermost PyTorch module a traced node came from (its ``nn_module_stack``), as a dotted path."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "(top level)"
    path = list(stack.values())[-1][0]
    return str(path).replace("L['self'].", "").replace("L__self___", "") or "(top level)"


# what coremltools and torch.onnx append to a torch.export node's name when they name a value after it
_VALUE_SUFFIX = re.compile(
    r"(_cast_fp16|_cast_fp32|_to_fp16|_to_fp32|_QuantizeLinear_Output|_DequantizeLinear_Output)+$")


def node_of_value(name: str) -> str:
    """The torch.export node a MIL or ONNX value is named after (``conv2d_6_cast_fp16`` -> ``conv2d_6``)."""
    return _VALUE_SUFFIX.sub("", name)


def to_exported_program(module: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """torch.export in the ATEN dialect, the form coremltools' ExportedProgram frontend accepts."""
    program = torch.export.export(in_eval(module), (example,)).run_decompositions({})
    drop_aliases(program)
    return program


def drop_aliases(program: torch.export.ExportedProgram) -> int:
    """Replace every ``aten.alias`` node by its input, in place; returns how many.

    ``alias`` is a view of the whole tensor (torch.export emits it for some view/contiguous chains, e.g. in
    Swin's window attention and EfficientViT-M0's local window attention); coremltools 9 has no conversion for
    it ("Unsupported fx node alias"). In an inference graph nothing writes through the view, so it is the
    identity.
    """
    graph = program.graph_module.graph
    aliases = [n for n in graph.nodes if n.op == "call_function" and n.target is torch.ops.aten.alias.default]
    for node in aliases:
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
    if aliases:
        program.graph_module.recompile()
    return len(aliases)


def mil_program_of(module: nn.Module, example: torch.Tensor, deployment_target: str = "iOS17"):
    """Convert to an (unsaved) MIL program; coremltools runs its default optimisation passes on it."""
    import coremltools as ct

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.convert(
            to_exported_program(module, example),
            inputs=[ct.TensorType(name="x", shape=tuple(example.shape))],
            convert_to="milinternal",
            minimum_deployment_target=getattr(ct.target, deployment_target),
        )


def stats_of_program(program) -> MilStats:
    """Histogram, layout ops and the highest tensor rank of every op output in a MIL program."""
    stats = MilStats()
    for func in program.functions.values():
        for op in _walk(func.operations):
            stats.histogram[op.op_type] += 1
            if op.op_type in LAYOUT_OPS:
                stats.layout_ops.append(op.name)
            for out in op.outputs:
                try:
                    shape = out.shape
                except ValueError:  # list values (e.g. classifier labels) have no tensor shape
                    continue
                if shape is not None:
                    stats.max_rank = max(stats.max_rank, len(shape))
    return stats


def inspect_mil(module: nn.Module, example: torch.Tensor) -> MilStats:
    """Convert ``module`` to MIL and count; a conversion failure is recorded, not raised."""
    try:
        program = mil_program_of(module, example)
    except Exception as exc:  # noqa: BLE001 - the failure itself is the measurement
        return MilStats(error=_one_line(exc))
    return stats_of_program(program)


def _walk(operations):
    for op in operations:
        yield op
        for block in getattr(op, "blocks", ()):
            yield from _walk(block.operations)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return re.sub(r"\s+", " ", text)[:500]


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Outermost submodules whose class name says Attention (timm's and the converters' naming)."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if "Attention" in type(module).__name__ and not any(name.startswith(p + ".") for p in found):
            found[name] = module
    return found


def attention_layout_counts(model: nn.Module, example: torch.Tensor) -> dict[str, int | str]:
    """Reshape/transpose count of each attention block converted on its own (MIL names lose module scope)."""
    blocks = attention_modules(model)
    shapes: dict[str, tuple[int, ...]] = {}

    def recorder(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:  # must return None: a value would replace the args
            shapes.setdefault(name, tuple(args[0].shape))

        return hook

    hooks = [m.register_forward_pre_hook(recorder(n)) for n, m in blocks.items()]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    counts: dict[str, int | str] = {}
    for name, module in blocks.items():
        if name in shapes:
            stats = inspect_mil(module, torch.randn(shapes[name]))
            counts[name] = stats.error or stats.layout_count
    return counts


def mil_layout_report(original: nn.Module, prepared: nn.Module, spec: ModelSpec) -> dict:
    """Reshape/transpose counts in the CoreML MIL program: whole model and each attention block."""
    example = torch.randn((1, *spec.input_size))
    before, after = inspect_mil(original, example), inspect_mil(prepared, example)
    return {
        "model": {"before": before.layout_count, "after": after.layout_count,
                  "before_ops": _layout_histogram(before), "after_ops": _layout_histogram(after),
                  "max_rank_before": before.max_rank, "max_rank_after": after.max_rank,
                  "error_before": before.error, "error_after": after.error},
        "attention_blocks": {"before": attention_layout_counts(original, example),
                             "after": attention_layout_counts(prepared, example)},
    }


def _layout_histogram(stats) -> dict:
    return {k: v for k, v in stats.histogram.items() if k in LAYOUT_OPS}
