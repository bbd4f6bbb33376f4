"""photo_top1: the top-1 ImageNet label of each photo's output (random tensors skipped)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgevit.models.spec import imagenet_labels
from edgevit.validate.labels import photo_top1


def _onehot(indices: list[int]) -> np.ndarray:
    out = np.zeros((len(indices), 1000), dtype=np.float32)
    out[np.arange(len(indices)), indices] = 5.0
    return out


def test_each_photo_gets_its_top1_label_and_random_rows_are_skipped():
    names = ["grace_hopper", "china-left", "random_0", "flower"]
    outputs = _onehot([652, 134, 3, 985])
    assert photo_top1(names, outputs) == [("grace_hopper", imagenet_labels()[652]),
                                          ("china-left", "crane (class 134)"), ("flower", imagenet_labels()[985])]
    assert imagenet_labels()[985] == "daisy"
    # torch tensors, and the CoreML-style (N, 1000, 1, 1) layout, give the same labels
    assert photo_top1(names, torch.from_numpy(outputs)) == photo_top1(names, outputs.reshape(4, 1000, 1, 1))


def test_a_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="needs one 1000-class row per name: 2 names, outputs of shape \\(3, 1000\\)"):
        photo_top1(["a", "b"], _onehot([1, 2, 3]))
    with pytest.raises(ValueError, match="1000-class"):
        photo_top1(["a"], np.zeros((1, 10)))
