"""Validation inputs: real photographs through the model's real preprocessing, plus random tensors.

Random tensors alone are known to hide real divergence (their activations sit in a narrow band), so every
parity check also runs photographs. The photos are ones installed packages ship (matplotlib's sample data;
scikit-learn's, which ExecuTorch depends on), each taken whole and as its left and right halves.

The bundle written beside an artifact (``<artifact>.validation/``) is the contract with the device
harnesses: ``index.json``, a PNG of each crop (for image-input CoreML models) and the preprocessed tensor
as raw little-endian float32 (``.f32``) for tensor-input artifacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edgevit.registry import ModelSpec

BUNDLE_FORMAT = "edgevit-validation/1"
N_RANDOM = 2


def sample_photo_paths() -> list[Path]:
    """Photographs shipped by installed packages (no download)."""
    import matplotlib
    import sklearn

    mpl = Path(matplotlib.get_data_path()) / "sample_data"
    skl = Path(sklearn.__file__).parent / "datasets" / "images"
    paths = [mpl / "grace_hopper.jpg", skl / "china.jpg", skl / "flower.jpg", mpl / "Minduka_Present_Blue_Pack.png"]
    return [p for p in paths if p.exists()]


@dataclass
class ValidationInput:
    name: str
    tensor: torch.Tensor  # (1, C, H, W), preprocessed (normalised) as the model expects
    image: Image.Image | None  # the RGB crop fed to image-input CoreML models; None for random tensors


def preprocess(image: Image.Image, spec: ModelSpec) -> tuple[Image.Image, torch.Tensor]:
    """timm's eval transform (resize by crop_pct, centre crop), returning the crop and the normalised tensor."""
    import timm.data

    transform = timm.data.create_transform(
        input_size=spec.input_size, interpolation=spec.interpolation, crop_pct=spec.crop_pct,
        mean=spec.mean, std=spec.std, is_training=False,
    )
    crop = image.convert("RGB")
    for step in transform.transforms:
        name = type(step).__name__
        if name in ("MaybeToTensor", "ToTensor"):
            break
        crop = step(crop)
    return crop, normalize_pixels(np.asarray(crop), spec)


def normalize_pixels(pixels: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """uint8 HxWx3 RGB -> (1,3,H,W) float32: (x/255 - mean)/std, exactly what the CoreML image model does."""
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0).contiguous()


def photo_inputs(spec: ModelSpec) -> list[ValidationInput]:
    inputs = []
    for path in sample_photo_paths():
        with Image.open(path) as img:
            whole = img.convert("RGB")
        w, h = whole.size
        views = {"": whole, "-left": whole.crop((0, 0, w // 2, h)), "-right": whole.crop((w // 2, 0, w, h))}
        for suffix, view in views.items():
            crop, tensor = preprocess(view, spec)
            inputs.append(ValidationInput(f"{path.stem.lower()}{suffix}", tensor, crop))
    return inputs


def random_inputs(spec: ModelSpec, n: int = N_RANDOM, seed: int = 0) -> list[ValidationInput]:
    gen = torch.Generator().manual_seed(seed)
    return [ValidationInput(f"random_{i}", torch.randn((1, *spec.input_size), generator=gen), None) for i in range(n)]


def validation_inputs(spec: ModelSpec, seed: int = 0) -> list[ValidationInput]:
    """Photos first (they are what catches real divergence), then random tensors."""
    return photo_inputs(spec) + random_inputs(spec, seed=seed)


def write_bundle(inputs: list[ValidationInput], folder: Path, output_shape: tuple[int, ...]) -> None:
    """The device harnesses' input contract (see module docstring); caller handles atomicity."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for item in inputs:
        tensor_file = f"{item.name}.f32"
        item.tensor.numpy().astype("<f4").tofile(folder / tensor_file)
        image_file = None
        if item.image is not None:
            image_file = f"{item.name}.png"
            item.image.save(folder / image_file)
        entries.append({"name": item.name, "image": image_file, "tensor": tensor_file,
                        "shape": list(item.tensor.shape)})
    index = {"format": BUNDLE_FORMAT, "inputs": entries, "output_shape": list(output_shape)}
    (folder / "index.json").write_text(json.dumps(index, indent=2))


def read_bundle(folder: Path) -> list[ValidationInput]:
    index = json.loads((folder / "index.json").read_text())
    if index.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{folder}/index.json is not {BUNDLE_FORMAT}")
    inputs = []
    for entry in index["inputs"]:
        data = np.fromfile(folder / entry["tensor"], dtype="<f4").reshape(entry["shape"])
        image = Image.open(folder / entry["image"]).convert("RGB") if entry["image"] else None
        inputs.append(ValidationInput(entry["name"], torch.from_numpy(data.copy()), image))
    return inputs
