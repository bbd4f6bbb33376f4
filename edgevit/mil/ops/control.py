"""classify (the classifier head CoreML adds) and the control-flow ops cond / while_loop."""

from __future__ import annotations

import numpy as np

from edgevit.mil.kernels import OpArgs, kernel


@kernel("classify")
def classify(args: OpArgs) -> tuple[object, dict]:
    """(top label, {label: probability}) from a probability vector (batch 1), as MLModel.predict returns."""
    probs = args.array("probabilities").reshape(-1)
    classes = list(args["classes"])
    if len(classes) != probs.size:
        raise args.fail(f"{probs.size} probabilities for {len(classes)} classes")
    table = {label: float(p) for label, p in zip(classes, probs.tolist(), strict=True)}
    return classes[int(np.argmax(probs))], table


@kernel("cond")
def cond(args: OpArgs) -> tuple:
    branch = args.op.blocks[0] if bool(np.asarray(args["pred"]).reshape(-1)[0]) else args.op.blocks[1]
    return tuple(args.run_nested(branch, {}))


@kernel("while_loop")
def while_loop(args: OpArgs) -> tuple:
    """blocks[0] is the condition, blocks[1] the body; both take the loop vars as block inputs."""
    values = list(args["loop_vars"])
    cond_block, body = args.op.blocks
    for _ in range(1_000_000):
        bind = dict(zip(cond_block.inputs, values, strict=True))
        if not bool(np.asarray(args.run_nested(cond_block, bind)[0]).reshape(-1)[0]):
            return tuple(values)
        bind = dict(zip(body.inputs, values, strict=True))
        values = args.run_nested(body, bind)
    raise args.fail("while_loop ran 1,000,000 iterations without its condition turning false")
