"""The fair comparison protocol: how fast is form A against form B on this (shared, noisy) host?

Why not one loop that alternates single iterations (a, b, a, b, ...): a runtime's threads keep running after its
call returns (onnxruntime's workers spin-wait for the next parallel section, XNNPACK's pthreadpool spins before it
sleeps) and its buffers sit in the caches, so each call was charged for the other runtime's leftovers. Measured on
this project's AMD host: a swiftformer-l1 ``.pte`` took 24.1 ms alone and 42.8 ms right after an onnxruntime run.

The protocol instead, per comparison:

- each form is timed with the other fully quiet: a form may release what would keep running between its blocks
  (``Contender.after_block``; the host harness drops an onnxruntime session with worker threads, joining them,
  and opens it again before its next block, untimed), and ExecuTorch's threadpool is sized for the comparison
  before its methods load (edgevit.bench.host);
- it alternates *blocks*: A x k, B x k, repeated ``rounds`` times, the order within each round drawn at random
  (seeded), so neither form always runs first after the other;
- the first iteration of every block is discarded (it pays for the switch: caches, a re-opened session);
- the estimate is the ratio of block medians, ``median(B's block medians) / median(A's block medians)``, with a
  percentile bootstrap interval over rounds (A's and B's blocks of one round resampled together, as they saw the
  same load). Above 1: A is faster.

Too few rounds or iterations per block give no interval: ``Protocol`` refuses them and says how many are needed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgevit.base.errors import UsageError
from edgevit.bench.stats import median

MIN_ROUNDS = 6  # fewer rounds give a bootstrap interval of a handful of distinct values
MIN_BLOCK = 3  # the first of a block is discarded; the median of the rest needs two
DEFAULT_CONFIDENCE = 0.95
RESAMPLES = 4000


class ProtocolTooShortError(UsageError):
    """A comparison with too few rounds or iterations per block to give a confidence interval."""

    def __init__(self, message: str, needed_iterations: int):
        super().__init__(message)
        self.needed_iterations = needed_iterations


@dataclass(frozen=True)
class Protocol:
    """``rounds`` rounds of one block of ``block`` iterations per form (the first of each discarded), after
    ``warmup`` untimed calls of each form; the interval at ``confidence``, its bootstrap seeded by ``seed``."""

    rounds: int = 8
    block: int = 5
    warmup: int = 2
    confidence: float = DEFAULT_CONFIDENCE
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value in (("rounds", self.rounds), ("block", self.block), ("warmup", self.warmup)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"protocol {name} must be a non-negative integer, got {value!r}")
        if not 0.5 <= self.confidence < 1:
            raise UsageError(f"protocol confidence must be in [0.5, 1), got {self.confidence!r}")
        if self.rounds < MIN_ROUNDS or self.block < MIN_BLOCK:
            need = MIN_ROUNDS * MIN_BLOCK
            raise ProtocolTooShortError(
                f"a fair comparison of {self.rounds} round(s) of {self.block} iteration(s) per form gives no "
                f"confidence interval: it needs at least {MIN_ROUNDS} rounds of blocks of {MIN_BLOCK} iterations "
                f"(the first of each block is discarded), that is at least {need} timed iterations per form "
                f"(--iterations {need} or more)", need)

    @property
    def iterations(self) -> int:
        """Timed iterations per form (discarded ones included)."""
        return self.rounds * self.block

    @classmethod
    def for_iterations(cls, iterations: int, warmup: int = 2, **kw) -> Protocol:
        """The protocol that spends about ``iterations`` timed calls per form: blocks of 5 (3 when that leaves
        too few rounds), as many rounds as fit; ProtocolTooShortError below MIN_ROUNDS x MIN_BLOCK."""
        block = 5 if iterations >= 5 * MIN_ROUNDS else MIN_BLOCK
        return cls(rounds=iterations // block, block=block, warmup=warmup, **kw)


@dataclass
class Contender:
    """One form in a comparison: ``run`` is one timed call; ``before_block`` / ``after_block`` (untimed) let it
    (re)acquire and release what would otherwise keep running while the other form is timed."""

    name: str
    run: Callable[[], object]
    before_block: Callable[[], object] | None = None
    after_block: Callable[[], object] | None = None


@dataclass
class Comparison:
    """The outcome: per-form kept samples (ms) and block medians, the ratio B/A and its interval."""

    a: str
    b: str
    protocol: Protocol
    a_samples: list[float] = field(default_factory=list)
    b_samples: list[float] = field(default_factory=list)
    a_block_medians: list[float] = field(default_factory=list)
    b_block_medians: list[float] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # per round, which ran first

    @property
    def ratio(self) -> float:
        """median(B's block medians) / median(A's block medians): above 1, A is faster."""
        return median(self.b_block_medians) / median(self.a_block_medians)

    @property
    def interval(self) -> tuple[float, float]:
        """The percentile bootstrap interval of ``ratio`` at the protocol's confidence, resampling rounds."""
        return bootstrap_ratio_interval(self.a_block_medians, self.b_block_medians, self.protocol.confidence,
                                        self.protocol.seed)

    def contains(self, value: float) -> bool:
        low, high = self.interval
        return low <= value <= high

    def to_json(self, against: str | None = None) -> dict:
        low, high = self.interval
        return {"against": against or self.b, "protocol": "blocks", "ratio": round(self.ratio, 4),
                "ci_low": round(low, 4), "ci_high": round(high, 4), "confidence": self.protocol.confidence,
                "rounds": self.protocol.rounds, "block": self.protocol.block,
                "iterations": self.protocol.iterations,
                "median_ms": round(median(self.a_samples), 4), "against_median_ms": round(median(self.b_samples), 4),
                "note": None}


def bootstrap_ratio_interval(a_medians: list[float], b_medians: list[float], confidence: float = DEFAULT_CONFIDENCE,
                             seed: int = 0, resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap of median(b) / median(a), rounds resampled in pairs (a round's two blocks together)."""
    a, b = np.asarray(a_medians, dtype=np.float64), np.asarray(b_medians, dtype=np.float64)
    if len(a) != len(b) or len(a) < 2:
        raise UsageError("a bootstrap interval needs the same number (at least 2) of A and B block medians")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    ratios = np.median(b[idx], axis=1) / np.median(a[idx], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def _block(contender: Contender, k: int) -> list[float]:
    if contender.before_block is not None:
        contender.before_block()
    samples = []
    try:
        for _ in range(k):
            start = time.perf_counter()
            contender.run()
            samples.append((time.perf_counter() - start) * 1e3)
    finally:
        if contender.after_block is not None:
            contender.after_block()
    return samples


def compare(a: Contender, b: Contender, protocol: Protocol | None = None,
            progress: Callable[[str], None] | None = None) -> Comparison:
    """Time ``a`` against ``b`` by the protocol (module docstring); the ratio above 1 means ``a`` is faster."""
    protocol = protocol or Protocol()
    if protocol.warmup:
        for contender in (a, b):
            _block(contender, protocol.warmup)
    rng = random.Random(protocol.seed)
    result = Comparison(a.name, b.name, protocol)
    for r in range(protocol.rounds):
        pair = [(a, result.a_samples, result.a_block_medians), (b, result.b_samples, result.b_block_medians)]
        if rng.random() < 0.5:
            pair.reverse()
        result.order.append(pair[0][0].name)
        for contender, samples, medians in pair:
            kept = _block(contender, protocol.block)[1:]
            samples += kept
            medians.append(median(kept))
        if progress is not None:
            progress(f"round {r + 1}/{protocol.rounds}")
    return result
