"""Prepared module -> CoreML ``.mlpackage`` (mlprogram) that drops into Xcode and Vision.

By default the package takes an RGB image (0-255) and applies the model's exact per-channel normalisation
inside the model (``ct.ImageType`` has only one scale for all channels), outputs class probabilities
(softmax inside) with ImageNet-1k labels via ``ct.ClassifierConfig``, and carries author/license/version/
description metadata. ``tensor_input=True`` gives a raw float tensor input and logits instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from edgevit.base.arguments import DEPLOYMENT_TARGETS
from edgevit.base.atomic import atomic_path
from edgevit.base.errors import ExportError
from edgevit.export.failures import export_error
from edgevit.export.mil_inspect import stats_of_program, to_exported_program
from edgevit.models.registry import ModelSpec
from edgevit.models.spec import imagenet_labels


class ImageClassifier(nn.Module):
    """uint8-range RGB image -> normalised tensor -> model -> softmax, all inside the CoreML graph."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.model = model
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", -mean_t / std_t)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """The tensor before the softmax: what parity compares (a saturated softmax hides large errors)."""
        return self.model(image * self.scale + self.shift)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(image), dim=-1)


# --compress: coremltools.optimize.coreml configs; what each needs of the deployment target
COMPRESSION = {
    "w8": ("linear_quantize_weights", "int8 weights, symmetric, per output channel", "iOS16"),
    "w4": ("linear_quantize_weights", "int4 weights, symmetric, per block of 32 input channels", "iOS18"),
    "palette6": ("palettize_weights", "6-bit k-means palette (64 values) per tensor", "iOS16"),
    "palette4": ("palettize_weights", "4-bit k-means palette (16 values) per tensor", "iOS16"),
}


def compress_mlmodel(mlmodel, compress: str):
    """The model with its weights compressed (coremltools.optimize.coreml); returns (model, summary)."""
    import coremltools.optimize.coreml as cto

    if compress in ("w8", "w4"):
        op = (cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
              if compress == "w8" else
              cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                          block_size=32))
        compressed = cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    else:
        op = cto.OpPalettizerConfig(mode="kmeans", nbits=6 if compress == "palette6" else 4,
                                    granularity="per_tensor")
        compressed = cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    ops = [o.op_type for f in compressed._mil_program.functions.values() for o in f.operations]
    constexpr = {t: ops.count(t) for t in sorted(set(ops)) if t.startswith("constexpr_")}
    float_consts = sum(1 for f in compressed._mil_program.functions.values() for o in f.operations
                       if o.op_type == "const" and o.outputs[0].val is not None
                       and getattr(o.outputs[0].val, "size", 0) >= 2048)
    function, scheme, minimum = COMPRESSION[compress]
    return compressed, {"scheme": f"{compress}: {scheme} (coremltools.optimize.coreml.{function})",
                        "minimum_deployment_target": minimum, "compressed_weight_ops": constexpr,
                        "float_weights_left": float_consts,
                        "note": "weights under 2048 elements (biases, norms, small kernels) stay in float "
                                "(coremltools' weight_threshold)"}


def coreml_metadata(spec: ModelSpec, winfo, version: str) -> dict[str, str]:
    """The package's author/license/version/description and edgevit's keys (model, weights' source and hash):
    what Xcode shows for the model and what a reader needs to trace the weights (a WeightsInfo)."""
    return {"author": "edgevit (conversion); model: " + (spec.paper or spec.name),
            "license": (f"weights: {winfo.license} ({winfo.tag}, {winfo.repo}); edgevit: Apache-2.0"
                        if getattr(winfo, "license", None) else "weights: see their source; edgevit: Apache-2.0"),
            "version": version,
            "description": f"{spec.name} image classifier (ImageNet-1k), converted by edgevit",
            "edgevit.model": spec.name, "edgevit.models.checkpoints": winfo.source,
            "edgevit.weights_sha256": winfo.sha256 or "random-init"}


def export_coreml(prepared: nn.Module, spec: ModelSpec, out: Path, *, precision: str = "fp16",
                  deployment_target: str = "iOS17", tensor_input: bool = False,
                  metadata: dict[str, str] | None = None, num_classes: int = 1000,
                  compress: str | None = None) -> dict:
    """Convert and save atomically; returns what the manifest records (input/output spec, MIL stats).

    ``compress`` (w8, w4, palette6, palette4) compresses the weights after conversion (compress_mlmodel).
    """
    import coremltools as ct

    if deployment_target not in DEPLOYMENT_TARGETS:
        raise ExportError(f"unknown deployment target {deployment_target!r}; choose one of {DEPLOYMENT_TARGETS}")
    shape = (1, *spec.input_size)
    classify = not tensor_input and spec.labels == "imagenet-1k" and num_classes == 1000
    module = prepared if tensor_input else ImageClassifier(prepared, spec.mean, spec.std).eval()
    example = torch.rand(shape) * (1.0 if tensor_input else 255.0)
    program = None
    try:
        program = to_exported_program(module, example)
        if tensor_input:
            inputs = [ct.TensorType(name="input", shape=shape)]
        else:
            inputs = [ct.ImageType(name="image", shape=shape, color_layout=ct.colorlayout.RGB)]
        kwargs = {"classifier_config": ct.ClassifierConfig(imagenet_labels())} if classify else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlmodel = ct.convert(
                program,
                inputs=inputs,
                convert_to="mlprogram",
                minimum_deployment_target=getattr(ct.target, deployment_target),
                compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                **kwargs,
            )
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported with module and op, not the converter's trace
        raise export_error("CoreML", exc, program) from None
    compression = None
    if compress is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlmodel, compression = compress_mlmodel(mlmodel, compress)
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"CoreML weight compression --compress {compress} failed: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}") from None
    meta = metadata or {}
    mlmodel.author = meta.get("author", "edgevit")
    mlmodel.license = meta.get("license", "")
    mlmodel.version = meta.get("version", "")
    mlmodel.short_description = meta.get("description", spec.name)
    for key, value in meta.items():
        mlmodel.user_defined_metadata[key] = str(value)
    mil = stats_of_program(mlmodel._mil_program)
    with atomic_path(out) as tmp:
        mlmodel.save(str(tmp))
    desc = mlmodel.get_spec().description
    return {
        "input": {"name": inputs[0].name, "kind": "tensor" if tensor_input else "image", "shape": list(shape),
                  "color_layout": None if tensor_input else "RGB", "range": None if tensor_input else [0, 255]},
        "output": {"name": desc.predictedProbabilitiesName or desc.output[0].name,
                   "kind": "logits" if tensor_input else "probabilities",
                   "label_name": desc.predictedFeatureName or None},
        "deployment_target": deployment_target,
        "mil": mil.to_json(),
        **({"quantization": compression} if compression else {}),
    }
