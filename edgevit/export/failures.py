"""Turn an exporter's failure into 'which module, which op' instead of the exporter's stack trace."""

from __future__ import annotations

import re

import torch

from edgevit.base.errors import ExportError

# Op names as the exporters spell them in their errors: aten.foo.default, aten::foo, 'foo' op, op foo...
_OP_PATTERNS = (
    r"[Uu]nsupported fx node ([a-zA-Z0-9_]+)",
    r"aten[.:]+([a-zA-Z0-9_]+)",
    r"[Oo]p(?:eration)?\s+['\"]?([a-zA-Z0-9_]+)['\"]?\s+(?:is\s+)?not\s+(?:implemented|supported)",
    r"convert function for op ['\"]([a-zA-Z0-9_]+)['\"]",
    r"[Uu]nsupported (?:op|operator)[: ]+['\"]?([a-zA-Z0-9_.:]+)",
)


def failing_op(message: str) -> str | None:
    for pattern in _OP_PATTERNS:
        match = re.search(pattern, message)
        if match:
            return match.group(1).split(".")[-1].split("::")[-1]
    return None


def module_of_op(program: torch.export.ExportedProgram | None, op: str) -> str | None:
    """The module path (``stages.3.blocks.4.attn``) of the first graph node calling ``op``."""
    if program is None:
        return None
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if name.split(".")[0] == op or name == op:
            stack = node.meta.get("nn_module_stack") or {}
            if stack:
                path, cls = list(stack.values())[-1]
                cls_name = getattr(cls, "__name__", str(cls)).rsplit(".", 1)[-1]
                return f"{path or '<root>'} ({cls_name})"
    return None


def export_error(target: str, exc: BaseException, program: torch.export.ExportedProgram | None) -> ExportError:
    """An ExportError naming the target, the failing op and the module that contains it, when found."""
    message = " ".join(str(exc).split())
    op = failing_op(message)
    where = module_of_op(program, op) if op else None
    detail = f"op {op!r}" if op else "an op"
    if where:
        detail += f" in module {where}"
    short = message[:400] + ("..." if len(message) > 400 else "")
    return ExportError(f"{target} export failed at {detail}: {type(exc).__name__}: {short}",
                       target=target, op=op, module=where)
