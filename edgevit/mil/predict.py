"""``predict``: run an ML program through the MIL reference interpreter, shaped like ``MLModel.predict``.

    from edgevit import mil
    out = mil.predict("swiftformer-l1.coreml.fp16.mlpackage", {"image": Image.open("cat.jpg").resize((224, 224))})
    out["classLabel"], out["classLabel_probs"]["tabby, tabby cat"]

This is edgevit's own executor of the serialised program (reported as runtime ``mil-reference``), not the
CoreML runtime: it proves the converted program computes the original function; the CoreML runtime itself,
per compute unit, is measured by the iOS harness.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from edgevit.mil.interpreter import PRECISIONS, Observer, Read, Rewrite, constants_of, first_unsupported, run_function
from edgevit.mil.kernels import TORCH_CACHE, MilInterpreterError
from edgevit.mil.load import LoadedProgram, load_program

RUNTIME = "mil-reference"
_ARRAY_DTYPES = {65568: np.float32, 65600: np.float64, 131104: np.int32, 65552: np.float16}  # ArrayDataType
_COLOR_SPACES = {10: "GRAYSCALE", 20: "RGB", 30: "BGR", 40: "GRAYSCALE_FLOAT16"}


class MilModel:
    """A loaded ML program; ``predict`` takes and returns what ``coremltools.models.MLModel.predict`` does."""

    def __init__(self, model: Any, *, precision: str = "auto"):
        if precision not in PRECISIONS:
            raise MilInterpreterError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self.loaded: LoadedProgram = model if isinstance(model, LoadedProgram) else load_program(model)
        self.precision = precision
        self._constants: dict[str, Any] | None = None
        self.fp16_overflow: str | None = None  # the first op that overflowed fp16 in any predict so far

    @property
    def input_names(self) -> list[str]:
        return [item.name for item in self.loaded.description.input]

    def unsupported(self) -> MilInterpreterError | None:
        """Why this program cannot run here (the first op without a kernel), or None."""
        return first_unsupported(self.loaded.main)

    def carry_constants(self, values: dict[Any, np.ndarray]) -> None:
        """Run later predictions with these values for the given const vars (pymil Vars of this program): a
        reference program that carries values read from the program it is compared with."""
        if self._constants is None:
            self._constants = constants_of(self.loaded.main)
        self._constants.update(values)
        cache = self._constants.get(TORCH_CACHE)
        if cache is not None:  # the kernels' torch copy of a constant is made once: drop the stale ones
            for var in values:
                cache.pop(var, None)

    def predict(self, inputs: dict[str, Any], *, observe: Observer | None = None,
                extra_outputs: tuple[str, ...] = (), rewrite: Rewrite | None = None,
                read: Read | None = None) -> dict[str, Any]:
        """``MLModel.predict``'s result; ``extra_outputs`` adds inner values by name (float32 arrays) and
        ``observe(op, var, value)`` sees every op output, ``rewrite(var, value)`` replaces values as they are stored
        and ``read(op, env)`` what one op reads (edgevit.mil.interpreter.run_function)."""
        if not isinstance(inputs, dict):
            raise MilInterpreterError("inputs must be a dict of input name -> numpy array or PIL image")
        main = self.loaded.main
        feeds = {}
        for feature in self.loaded.description.input:
            if feature.name not in inputs:
                raise MilInterpreterError(
                    f"missing input {feature.name!r}; the model takes {', '.join(self.input_names)}")
            feeds[feature.name] = _feed(feature, inputs[feature.name], main.inputs[feature.name])
        if self._constants is None:
            self._constants = constants_of(main)
        report: dict[str, Any] = {}
        values = run_function(main, feeds, precision=self.precision, constants=self._constants, report=report,
                              observe=observe, extra_outputs=extra_outputs, rewrite=rewrite, read=read)
        self.fp16_overflow = self.fp16_overflow or report["fp16_overflow"]
        by_position = list(values.values())
        result: dict[str, Any] = {}
        for i, feature in enumerate(self.loaded.description.output):
            value = values.get(feature.name, by_position[i] if i < len(by_position) else None)
            result[feature.name] = _output(feature, value)
        for name in extra_outputs:
            result[name] = np.asarray(values[name], dtype=np.float32)
        return result


def predict(model: Any, inputs: dict[str, Any], *, precision: str = "auto") -> dict[str, Any]:
    """Run ``model`` (a ``.mlpackage`` path, an ``MLModel`` or a ``MilModel``) on ``inputs``; see MilModel."""
    runner = model if isinstance(model, MilModel) else MilModel(model, precision=precision)
    if isinstance(model, MilModel) and precision != model.precision:
        runner = MilModel(model.loaded, precision=precision)
    return runner.predict(inputs)


def _feed(feature, value: Any, var) -> np.ndarray:
    """One input in the program's layout: images to (1, C, H, W) float32 in 0-255, arrays to the var's shape."""
    kind = feature.type.WhichOneof("Type")
    if kind == "imageType":
        return _image_array(feature, value)
    if kind != "multiArrayType":
        raise MilInterpreterError(f"input {feature.name!r}: {kind} inputs are not supported by the interpreter")
    if isinstance(value, Image.Image):
        raise MilInterpreterError(f"input {feature.name!r} takes a numpy array, not a PIL image")
    arr = np.asarray(value)
    expected = tuple(int(d) if isinstance(d, (int, np.integer)) else -1 for d in var.shape)
    if arr.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, arr.shape, strict=True)):
        raise MilInterpreterError(f"input {feature.name!r} has shape {arr.shape}; the model takes {var.shape}")
    return arr


def _image_array(feature, value: Any) -> np.ndarray:
    image_type = feature.type.imageType
    if not isinstance(value, Image.Image):
        raise MilInterpreterError(f"input {feature.name!r} is an image input: pass a PIL image")
    size = (int(image_type.width), int(image_type.height))
    if value.size != size:
        raise MilInterpreterError(
            f"input {feature.name!r} takes a {size[0]}x{size[1]} image, got {value.size[0]}x{value.size[1]}: "
            "resize it first (as Vision's scaling or MLModel.predict would require)")
    space = _COLOR_SPACES.get(image_type.colorSpace, "RGB")
    if space in ("GRAYSCALE", "GRAYSCALE_FLOAT16"):
        mode, dtype = ("L", np.float32) if space == "GRAYSCALE" else ("F", np.float16)
        pixels = np.asarray(value.convert(mode), dtype=dtype)[None, None]
        return pixels.astype(np.float32)
    pixels = np.asarray(value.convert("RGB"), dtype=np.float32)  # H, W, RGB
    if space == "BGR":
        pixels = pixels[..., ::-1]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


def _output(feature, value: Any) -> Any:
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        dtype = _ARRAY_DTYPES.get(feature.type.multiArrayType.dataType, np.float32)
        return np.asarray(value).astype(dtype)
    if kind == "int64Type":
        return int(value)
    if kind == "dictionaryType":
        return dict(value)
    return value
