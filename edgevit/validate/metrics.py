"""Numbers that compare two sets of outputs row by row (one row per input): the vocabulary of every verdict.

``parity_metrics`` gives max abs error, relative L2, PSNR = 20*log10(max|ref| / RMSE), cosine similarity, top-1
agreement (same argmax) and top-5 agreement (mean overlap of the two top-5 sets). ``centered`` removes what all
inputs share (each row minus the mean row): a checkpoint whose logits are mostly one input-independent vector can
score a high PSNR while the part that tells one photo from another is noise, so precision cost is also judged on
centered logits, beside the input-dependent share of the reference (``input_share``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class ParityMetrics:
    max_abs: float
    rel_l2: float
    psnr_db: float
    cosine: float
    top1_agreement: float
    top5_agreement: float
    n_inputs: int
    distinct_top1: int  # distinct reference classes: 1 means top-1 agreement proves little


def rows(values: np.ndarray) -> np.ndarray:
    """(N, ...) outputs as (N, features) float64."""
    return np.asarray(values, dtype=np.float64).reshape(len(values), -1)


def parity_metrics(reference: np.ndarray, actual: np.ndarray) -> ParityMetrics:
    """Compare (N, classes) outputs row by row (one row per input)."""
    ref, act = rows(reference), rows(actual)
    if ref.shape != act.shape:
        raise ValueError(f"output shapes differ: reference {ref.shape} vs artifact {act.shape}")
    diff = act - ref
    rmse = math.sqrt(float(np.mean(diff**2)))
    peak = float(np.max(np.abs(ref)))
    psnr = math.inf if rmse == 0 else 20 * math.log10(peak / rmse) if peak > 0 else -math.inf
    ref_norm, act_norm = float(np.linalg.norm(ref)), float(np.linalg.norm(act))
    cosine = float(np.sum(ref * act) / (ref_norm * act_norm)) if ref_norm and act_norm else 0.0
    k = min(5, ref.shape[1])
    top_ref, top_act = np.argsort(-ref, axis=1)[:, :k], np.argsort(-act, axis=1)[:, :k]
    top5 = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top_ref, top_act, strict=True)]))
    return ParityMetrics(
        max_abs=float(np.max(np.abs(diff))),
        rel_l2=rel_l2(ref, act),
        psnr_db=psnr,
        cosine=cosine,
        top1_agreement=float(np.mean(top_ref[:, 0] == top_act[:, 0])),
        top5_agreement=top5,
        n_inputs=len(ref),
        distinct_top1=len(set(top_ref[:, 0].tolist())),
    )


def rel_l2(reference: np.ndarray, actual: np.ndarray) -> float:
    """||actual - reference|| / ||reference||; infinite when the reference is all zeros and they differ."""
    ref, act = np.asarray(reference, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    diff = float(np.linalg.norm(act - ref))
    norm = float(np.linalg.norm(ref))
    return diff / norm if norm else (0.0 if diff == 0 else math.inf)


def centered(values: np.ndarray) -> np.ndarray:
    """Each row minus the mean row over the inputs: what separates one input from another."""
    r = rows(values)
    return r - r.mean(axis=0, keepdims=True)


def input_share(reference: np.ndarray) -> float:
    """||centered reference|| / ||reference||: how much of the outputs depends on the input (0 = none)."""
    r = rows(reference)
    norm = float(np.linalg.norm(r))
    return float(np.linalg.norm(centered(r))) / norm if norm else 0.0


def non_finite(values: np.ndarray, whose: str) -> str | None:
    """A sentence saying how many NaN/infinite values ``whose`` outputs hold, or None when all are finite."""
    values = np.asarray(values)
    finite = np.isfinite(values)
    if finite.all():
        return None
    nan = int(np.isnan(values).sum())
    return f"{whose} outputs hold {nan} NaN and {int((~finite).sum()) - nan} infinite values (of {values.size})"
