"""Calibration images for static int8 quantization, through the model's real preprocessing.

Default: the bundled validation photos (edgevit.validate.inputs.sample_photo_paths), each taken whole, as its
left, right, top and bottom halves and a central 60% crop, and each of those mirrored left-right: 12 views per
photo. With ``--calibration DIR``: the user's JPEG/PNG files (checked at the edge by
edgevit.base.arguments.check_calibration).
The manifest records the count and a hash of the set (the image files' bytes and the views taken of them), so
two artifacts calibrated on the same set say so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

    from edgevit.models.registry import ModelSpec

DEFAULT_VIEWS = ("whole", "left", "right", "top", "bottom", "centre-60%")


@dataclass
class CalibrationSet:
    source: str  # "bundled photos (crops and flips)" or the folder given
    tensors: list[torch.Tensor]  # (1, C, H, W) each, preprocessed as the model expects
    images: list[Image.Image]  # the RGB crops (for consumers that take images)
    sha256: str
    files: int

    def to_json(self) -> dict:
        return {"source": self.source, "images": len(self.tensors), "files": self.files, "sha256": self.sha256}

    def describe(self) -> str:
        return f"{len(self.tensors)} calibration images from {self.source} (set sha256 {self.sha256[:12]})"


def _views(image: Image.Image) -> list[Image.Image]:
    w, h = image.size
    crops = [image, image.crop((0, 0, w // 2, h)), image.crop((w // 2, 0, w, h)), image.crop((0, 0, w, h // 2)),
             image.crop((0, h // 2, w, h)), image.crop((w // 5, h // 5, w - w // 5, h - h // 5))]
    return crops + [ImageOps.mirror(c) for c in crops]


def calibration_set(spec: ModelSpec, files: list[Path] | None = None) -> CalibrationSet:
    """The bundled photos' 12 views each (``files`` None), or the user's files as they are."""
    from edgevit.validate.inputs import preprocess, sample_photo_paths

    digest = hashlib.sha256()
    tensors, images = [], []
    if files is None:
        paths, source = sample_photo_paths(), "the bundled validation photos, cropped and flipped"
        digest.update(("views:" + ",".join(DEFAULT_VIEWS) + "+mirrored").encode())
    else:
        paths, source = list(files), f"{Path(files[0]).parent}"
    for path in sorted(paths, key=lambda p: p.name):
        data = Path(path).read_bytes()
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(data).digest())
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        for view in (_views(rgb) if files is None else [rgb]):
            crop, tensor = preprocess(view, spec)
            images.append(crop)
            tensors.append(tensor)
    return CalibrationSet(source, tensors, images, digest.hexdigest(), len(paths))
