"""The fair comparison protocol (edgevit.bench.fair) is unbiased and sees a real difference at its true size.

A tiny XNNPACK .pte (about 1-3 ms a call here) keeps these fast. They run on 2 busy cores in CI, so every assertion
is about the interval containing the truth, never about a tight number.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from edgevit.bench.fair import MIN_BLOCK, MIN_ROUNDS, Contender, Protocol, ProtocolTooShortError, compare
from edgevit.bench.stats import median

# 99% in the tests: a 95% interval misses an unbiased truth one run in twenty by construction.
TEST_PROTOCOL = Protocol(rounds=30, block=6, warmup=2, confidence=0.99)


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


@pytest.fixture(scope="module")
def tiny_pte(tmp_path_factory) -> tuple[Path, dict, torch.Tensor]:
    from edgevit.export.executorch import export_executorch

    torch.manual_seed(0)
    example = torch.randn(1, 3, 80, 80)
    path = tmp_path_factory.mktemp("fair") / "tiny.executorch.xnnpack.fp32.pte"
    export_executorch(TinyNet().eval(), example, path)
    return path, {"target": "executorch", "backend": "xnnpack"}, example


def _runner(tiny_pte, threads: int):
    from edgevit.validate.runtimes import open_runner

    path, manifest, _ = tiny_pte
    return open_runner(path, manifest, threads=threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_same_pte_against_itself_reads_one_within_its_interval(tiny_pte, threads):
    from edgevit.validate.threads import reset_executorch_threads

    example = tiny_pte[2]
    reset_executorch_threads(threads)
    runner = _runner(tiny_pte, threads)  # one loaded method as both A and B: the true ratio is exactly 1
    result = compare(Contender("A", lambda: runner.run(example)), Contender("B", lambda: runner.run(example)),
                     TEST_PROTOCOL)
    low, high = result.interval
    assert low <= 1.0 <= high, f"self vs self at {threads} thread(s): {result.ratio:.3f} [{low:.3f}, {high:.3f}]"
    assert len(result.a_block_medians) == TEST_PROTOCOL.rounds
    assert len(result.a_samples) == TEST_PROTOCOL.rounds * (TEST_PROTOCOL.block - 1)  # first of each block dropped
    assert set(result.order) == {"A", "B"}  # the order within rounds is drawn, not fixed


def test_a_slowed_copy_is_detected_at_its_true_ratio(tiny_pte):
    """B is the same .pte followed by a sleep of about twice its own time: the truth is 1 + sleep / A's time, with
    the sleep measured (a sleep overshoots by a scheduler-dependent amount)."""
    from edgevit.validate.threads import reset_executorch_threads

    example = tiny_pte[2]
    reset_executorch_threads(1)
    a, b = _runner(tiny_pte, 1), _runner(tiny_pte, 1)
    for _ in range(5):
        a.run(example)
    alone = []
    for _ in range(9):
        start = time.perf_counter()
        a.run(example)
        alone.append(time.perf_counter() - start)
    sleep_s = median(alone)
    slept: list[float] = []

    def slowed() -> None:
        b.run(example)
        start = time.perf_counter()
        time.sleep(2 * sleep_s)
        slept.append((time.perf_counter() - start) * 1e3)

    result = compare(Contender("A", lambda: a.run(example)), Contender("slowed", slowed), TEST_PROTOCOL)
    truth = 1 + median(slept) / median(result.a_block_medians)
    low, high = result.interval
    assert truth > 2 and low > 1.5  # detected: A is clearly faster
    # the truth is itself an estimate (a ratio of separate medians): it is allowed 5% of its own error
    assert 0.95 * low <= truth <= 1.05 * high, f"true {truth:.3f}, measured {result.ratio:.3f} [{low:.3f}, {high:.3f}]"


def test_a_protocol_too_short_for_an_interval_says_how_many_iterations_it_needs():
    with pytest.raises(ProtocolTooShortError, match=f"at least {MIN_ROUNDS * MIN_BLOCK} timed iterations") as err:
        Protocol(rounds=MIN_ROUNDS - 1, block=5)
    assert err.value.needed_iterations == MIN_ROUNDS * MIN_BLOCK
    with pytest.raises(ProtocolTooShortError):
        Protocol(rounds=10, block=MIN_BLOCK - 1)
    with pytest.raises(ProtocolTooShortError):
        Protocol.for_iterations(MIN_ROUNDS * MIN_BLOCK - 1)
    assert Protocol.for_iterations(MIN_ROUNDS * MIN_BLOCK).iterations == MIN_ROUNDS * MIN_BLOCK


def test_the_bootstrap_interval_of_known_block_medians():
    """The bootstrap itself: a pure function, checked against known block medians."""
    from edgevit.bench.fair import bootstrap_ratio_interval

    a = [10.0, 10.2, 9.9, 10.1, 10.0, 10.3, 9.8, 10.0]
    low, high = bootstrap_ratio_interval(a, [2 * x for x in a])
    assert low == pytest.approx(2.0) and high == pytest.approx(2.0)  # B is exactly 2x A in every round
    low, high = bootstrap_ratio_interval(a, [x + 1 for x in a])
    assert low <= 1.1 <= high and high < 1.2


def test_the_fastvit_report_refuses_too_few_iterations_before_any_work():
    from edgevit.studies.zoo import fastvit_report

    with pytest.raises(ProtocolTooShortError, match=f"--iterations {MIN_ROUNDS * MIN_BLOCK} or more"):
        fastvit_report(["fastvit-t8"], iterations=5)
