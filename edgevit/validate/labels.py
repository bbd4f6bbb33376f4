"""What each photo is, according to a model: the top-1 ImageNet-1k label of each photo's output.

With trained weights (``--pretrained``) these labels mean something — the bundled photos have known contents — so
a reader can see at a glance that the original and each artifact name the same thing. Random tensors have no
contents and are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RANDOM_PREFIXES = ("random_", "noise_")  # edgevit.validate.inputs' random tensors and noise images


def photo_top1(names: Sequence[str], outputs) -> list[tuple[str, str]]:
    """(photo name, top-1 label) for each photo row of ``outputs`` ((N, 1000) logits or probabilities, numpy or
    torch), in input order; rows named ``random_*`` or ``noise_*`` are skipped. Raises ValueError on a shape that
    is not one 1000-class row per name."""
    from edgevit.models.spec import imagenet_labels

    scores = np.asarray(outputs.detach().cpu() if hasattr(outputs, "detach") else outputs, dtype=np.float64)
    scores = scores.reshape(scores.shape[0], -1) if scores.ndim > 2 else scores
    labels = imagenet_labels()
    if scores.ndim != 2 or scores.shape != (len(names), len(labels)):
        raise ValueError(f"photo_top1 needs one {len(labels)}-class row per name: {len(names)} names, outputs of "
                         f"shape {tuple(np.shape(outputs))}")
    return [(name, labels[int(np.argmax(row))]) for name, row in zip(names, scores, strict=True)
            if not name.startswith(RANDOM_PREFIXES)]
