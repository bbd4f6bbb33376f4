"""Latency statistics, defined once for every harness (host, iOS, Android) — see schema.json's description.

The Swift and Java harnesses implement the same three formulas; tests compare them on the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DEFAULT_TRIM_FRACTION = 0.1


def median(samples: Sequence[float]) -> float | None:
    """Middle value; mean of the two middle values for an even count; None for no samples."""
    if not samples:
        return None
    s = sorted(samples)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def percentile(samples: Sequence[float], q: float) -> float | None:
    """q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default method)."""
    if not samples:
        return None
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    s = sorted(samples)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def trimmed_mean(samples: Sequence[float], trim_fraction: float = DEFAULT_TRIM_FRACTION) -> float | None:
    """Mean after dropping floor(n * trim_fraction) samples from each end (robust to OS hiccups)."""
    if not samples:
        return None
    if not 0.0 <= trim_fraction < 0.5:
        raise ValueError(f"trim_fraction must be in [0, 0.5), got {trim_fraction}")
    s = sorted(samples)
    k = math.floor(len(s) * trim_fraction)
    kept = s[k : len(s) - k]
    return sum(kept) / len(kept)


def summarize(samples: Sequence[float], trim_fraction: float = DEFAULT_TRIM_FRACTION) -> dict[str, float | None]:
    """The schema's summary fields for one list of per-iteration milliseconds."""
    return {
        "median_ms": median(samples),
        "trimmed_mean_ms": trimmed_mean(samples, trim_fraction),
        "trim_fraction": trim_fraction,
        "p90_ms": percentile(samples, 90.0),
    }
