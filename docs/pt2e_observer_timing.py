"""PT2E activation observers on one model: seconds per calibration image, convert time and logits PSNR.

    PYTHONPATH=$PWD python docs/pt2e_observer_timing.py swiftformer-l1 12 minmax histogram

Calibrates the prepared model with edgevit's XNNPACKQuantizer config (edgevit.export.quantize), activation
observer ``minmax`` (edgevit's default) or ``histogram`` (ExecuTorch's default), on N of the default calibration
views, converts, and compares the converted (emulated int8) model's logits with the fp32 model on the validation
photos. Weights: edgevit's "exercised" random init.
"""

from __future__ import annotations

import sys
import time
import warnings

import torch


def main() -> None:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from converters import get_converter
    from edgevit.export.quantize import observe_pt2e
    from edgevit.export.sensitivity import centered, psnr_db
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec
    from edgevit.validate.calibration import calibration_set
    from edgevit.validate.inputs import photo_inputs

    warnings.simplefilter("ignore")
    name, count, observers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    spec = get_spec(name)
    original, _ = build_model(spec, {}, None, "exercised", 0)
    prepared = get_converter(spec.converter).prepare(original).module
    views = calibration_set(spec).tensors
    calibration = views[:: max(1, len(views) // count)][:count]
    inputs = [item.tensor for item in photo_inputs(spec)]
    with torch.no_grad():
        reference = torch.cat([original(x) for x in inputs]).numpy()
    for observer in observers:
        stages: dict[str, float] = {}
        observed, _ = observe_pt2e(prepared, calibration[0], calibration, activation_observer=observer,
                                   stages=stages)
        clock = time.perf_counter()
        converted = convert_pt2e(observed)
        stages["convert_pt2e_s"] = time.perf_counter() - clock
        with torch.no_grad():
            logits = torch.cat([converted(x) for x in inputs]).numpy()
        print(f"{observer}: {stages['calibration_s'] / len(calibration):.2f} s/image ({len(calibration)} images), "
              f"convert {stages['convert_pt2e_s']:.1f} s, logits PSNR {psnr_db(reference, logits):.1f} dB, "
              f"centered {psnr_db(centered(reference), centered(logits)):.1f} dB", flush=True)


if __name__ == "__main__":
    main()
