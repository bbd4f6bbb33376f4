"""Precision cost: what the artifact's stored precision did to the answer. The second half of every parity verdict.

Measured on logits (never on softmax probabilities, where a saturated softmax hides large errors) against the fp32
original: PSNR, relative L2, cosine, top-1/top-5 agreement, on the photos and on random inputs apart, and on
*centered* logits (each input's logits minus their mean over the inputs), which is what tells one input from
another. Beside them: the reference's input-dependent share (a checkpoint whose logits barely depend on the input
makes every figure here say little, so a reader must see it) and the expected noise of the precision (its stored
weights alone, without its compute precision).

The floor is edgevit's, per precision (``DEFAULT_FLOORS_DB``), or the user's ``--min-psnr``: never the manifest's.
A manifest's recorded floor is shown, and flagged when it is lower than the one applied.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgevit.validate.inputs import ValidationInput
from edgevit.validate.metrics import ParityMetrics, centered, input_share, parity_metrics

# PSNR floors on the photos' logits. fp32 and fp16 are exact programs up to rounding (measured 60-140 dB); the
# quantized floors sit between each scheme's measured noise on edgevit's exercised random-init weights
# (README, "Parity") and a broken model (about 0 dB).
DEFAULT_FLOORS_DB = {"fp32": 80.0, "fp16": 40.0, "int8": 30.0, "w8": 30.0, "w8a8": 25.0, "w4": 15.0,
                     "palette6": 15.0, "palette4": 8.0}
# the spread check: an artifact whose outputs barely depend on the input is not the model, whatever its PSNR
MIN_SPREAD_RATIO = 0.5


@dataclass
class PrecisionCost:
    status: str  # "pass" or "fail"
    floor_db: float
    floor_source: str  # "edgevit default for <precision>" or "--min-psnr"
    photos: ParityMetrics | None = None
    random: ParityMetrics | None = None
    overall: ParityMetrics | None = None
    centered: ParityMetrics | None = None
    input_share: float | None = None
    spread_ratio: float | None = None  # the artifact's input-dependent norm / the reference's
    expected: dict = field(default_factory=dict)  # label -> PSNR dB on the photos' logits
    manifest_floor_db: float | None = None
    reason: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def floor_for(precision: str, min_psnr: float | None) -> tuple[float, str]:
    if min_psnr is not None:
        return float(min_psnr), "--min-psnr"
    return DEFAULT_FLOORS_DB.get(precision, 40.0), f"edgevit default for {precision}"


def precision_cost(reference: np.ndarray, actual: np.ndarray, inputs: list[ValidationInput], precision: str, *,
                   min_psnr: float | None = None, expected: dict | None = None,
                   manifest_floor_db: float | None = None) -> PrecisionCost:
    """Judge ``actual`` logits against the fp32 original's ``reference`` logits on ``inputs`` (same order)."""
    floor, source = floor_for(precision, min_psnr)
    is_photo = np.array([item.kind == "photo" for item in inputs])
    photos = parity_metrics(reference[is_photo], actual[is_photo]) if is_photo.any() else None
    rand = parity_metrics(reference[~is_photo], actual[~is_photo]) if (~is_photo).any() else None
    overall = parity_metrics(reference, actual)
    cen = parity_metrics(centered(reference), centered(actual)) if len(reference) > 1 else None
    ref_spread = float(np.linalg.norm(centered(reference)))
    spread = float(np.linalg.norm(centered(actual))) / ref_spread if ref_spread else None
    cost = PrecisionCost("pass", floor, source, photos, rand, overall, cen, input_share(reference), spread,
                         dict(expected or {}), manifest_floor_db)
    judged = photos or overall
    problems = []
    if not judged.psnr_db >= floor:
        problems.append(f"PSNR on logits {judged.psnr_db:.1f} dB < {floor:g} dB ({source}; top-1 agreement "
                        f"{judged.top1_agreement:.0%})")
    if spread is not None and spread < MIN_SPREAD_RATIO:
        problems.append(f"the outputs barely depend on the input: their spread across inputs is {spread:.0%} of the "
                        "original's")
    if len(reference) > 1 and len({int(i) for i in np.asarray(actual).reshape(len(actual), -1).argmax(1)}) == 1 \
            and overall.distinct_top1 > 1:
        problems.append(f"every input lands in one class, where the original gives {overall.distinct_top1}")
    if problems:
        cost.status = "fail"
        cost.reason = "; ".join(problems)
    if manifest_floor_db is not None and manifest_floor_db < floor:
        note = (f"the manifest records a floor of {manifest_floor_db:g} dB, lower than the {floor:g} dB applied "
                "(edgevit never takes a floor from the artifact)")
        cost.reason = f"{cost.reason}; {note}" if cost.reason else note
    return cost
