"""Validation inputs: real photographs through the model's real preprocessing, plus random tensors.

Random tensors alone are known to hide real divergence (their activations sit in a narrow band), so every
parity check also runs photographs. The photos are ones installed packages ship (matplotlib's sample data;
scikit-learn's, which ExecuTorch depends on), each taken whole and as its left and right halves.

The bundle written beside an artifact (``<artifact>.validation/``) is the contract with the device
harnesses: ``index.json``, a PNG of each crop (for image-input CoreML models) and the preprocessed tensor
as raw little-endian float32 (``.f32``) for tensor-input artifacts.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from edgevit.base.artifact_folder import (
    BUNDLE_IMAGE_LIMIT,
    BUNDLE_TENSOR_LIMIT,
    INDEX_LIMIT,
    ArtifactFolder,
    parse_json,
    read_artifact_file,
)
from edgevit.base.errors import ArtifactError

if TYPE_CHECKING:  # the registry imports timm; reading a bundle does not need it
    from edgevit.models.registry import ModelSpec

BUNDLE_FORMAT = "edgevit-validation/1"
N_RANDOM = 2
N_NOISE = 2
MAX_BUNDLE_INPUTS = 64  # edgevit writes 16 (4 photos, each whole and halved, 2 random tensors, 2 noise images)
MAX_BUNDLE_IMAGE_PIXELS = 4096 * 4096


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

    @property
    def kind(self) -> str:
        """"photo", "random" (a normal tensor) or "noise" (a uniform-noise image, for image-input models too)."""
        if self.name.startswith("random_"):
            return "random"
        return "noise" if self.name.startswith("noise_") else "photo"


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


def noise_inputs(spec: ModelSpec, n: int = N_NOISE, seed: int = 0) -> list[ValidationInput]:
    """Uniform-noise RGB images: random inputs an image-input package can take as well."""
    gen = np.random.default_rng(seed)
    _, height, width = spec.input_size
    inputs = []
    for i in range(n):
        pixels = gen.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        inputs.append(ValidationInput(f"noise_{i}", normalize_pixels(pixels, spec), Image.fromarray(pixels, "RGB")))
    return inputs


def validation_inputs(spec: ModelSpec, seed: int = 0) -> list[ValidationInput]:
    """Photos first (they are what catches real divergence), then random tensors and noise images.

    edgevit regenerates these whenever it validates (from the photos installed packages ship and ``seed``): an
    artifact's own bundle is never what a verdict is decided on."""
    return photo_inputs(spec) + random_inputs(spec, seed=seed) + noise_inputs(spec, seed=seed)


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
    """The bundle's inputs; a missing, malformed or truncated part is an ArtifactError that names it.

    Read through the closed world (edgevit.base.artifact_folder): the bundle is a real folder beside its artifact,
    every file it names is inside it (no absolute path, no '..', no link), a regular file, and exactly as large as
    its declared shape (each tensor at most BUNDLE_TENSOR_LIMIT bytes, at most MAX_BUNDLE_INPUTS of them).
    """
    folder = Path(folder)
    bundle = ArtifactFolder(ArtifactFolder.of(folder).child(folder))
    index = _read_index(folder, bundle)
    inputs = []
    for i, entry in enumerate(index["inputs"]):
        where = f"{folder.name}/index.json inputs[{i}]"
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("tensor"), str)
                and isinstance(entry.get("shape"), list) and entry["shape"]
                and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in entry["shape"])
                and (entry.get("image") is None or isinstance(entry["image"], str))):
            raise _bundle_error(folder, f"{where} is malformed (needs name, tensor, shape of positive ints, image)")
        expected = 4 * math.prod(entry["shape"])
        if expected > BUNDLE_TENSOR_LIMIT:
            raise _bundle_error(folder, f"{where} declares shape {entry['shape']} ({expected:,} bytes as float32), "
                                f"over the {BUNDLE_TENSOR_LIMIT:,}-byte limit for a validation tensor")
        tensor_file = bundle.path(entry["tensor"])
        if not tensor_file.exists() and not tensor_file.is_symlink():
            raise _bundle_error(folder, f"{entry['tensor']} is missing (shape {entry['shape']} as float32)")
        try:
            raw = read_artifact_file(bundle, entry["tensor"], "validation tensor", BUNDLE_TENSOR_LIMIT,
                                     exact=expected)
        except ArtifactError as exc:
            raise _bundle_error(folder, f"{entry['tensor']} (shape {entry['shape']} as float32): {exc}") from None
        data = np.frombuffer(raw, dtype="<f4").reshape(entry["shape"])
        if not np.isfinite(data).all():
            raise _bundle_error(folder, f"{entry['tensor']} holds NaN or infinite values")
        image = None
        if entry.get("image"):
            image = _read_image(bundle, entry["image"], folder)
        inputs.append(ValidationInput(entry["name"], torch.from_numpy(data.copy()), image))
    return inputs


def _read_image(bundle: ArtifactFolder, name: str, folder: Path) -> Image.Image:
    raw = read_artifact_file(bundle, name, "validation image", BUNDLE_IMAGE_LIMIT)
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > MAX_BUNDLE_IMAGE_PIXELS:
                raise _bundle_error(folder, f"{name} is {img.width}x{img.height} pixels, over the "
                                    f"{MAX_BUNDLE_IMAGE_PIXELS:,}-pixel limit for a validation image")
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _bundle_error(folder, f"{name} is not a readable image ({exc})") from None


def _read_index(folder: Path, bundle: ArtifactFolder) -> dict:
    if not folder.is_dir():
        raise _bundle_error(folder, "the folder is missing")
    index_file = bundle.path("index.json")
    if not index_file.exists() and not index_file.is_symlink():
        raise _bundle_error(folder, "index.json is missing")
    try:
        index = parse_json(read_artifact_file(bundle, "index.json", "index.json", INDEX_LIMIT), "index.json")
    except ArtifactError as exc:
        raise _bundle_error(folder, str(exc)) from None
    if not isinstance(index, dict) or index.get("format") != BUNDLE_FORMAT:
        raise _bundle_error(folder, f"index.json is not an {BUNDLE_FORMAT} index")
    if not isinstance(index.get("inputs"), list) or not index["inputs"]:
        raise _bundle_error(folder, "index.json lists no inputs")
    if len(index["inputs"]) > MAX_BUNDLE_INPUTS:
        raise _bundle_error(folder, f"index.json lists {len(index['inputs'])} inputs, over the limit of "
                            f"{MAX_BUNDLE_INPUTS}")
    return index


def _bundle_error(folder: Path, problem: str) -> ArtifactError:
    return ArtifactError(f"validation inputs {folder}: {problem}. Re-run edgevit convert to rewrite them.")
