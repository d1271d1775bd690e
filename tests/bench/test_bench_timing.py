"""Timing covers only the timed calls: not activation, not warm-up, not input set-up."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from stream_derain.backends.base import Backend
from stream_derain.bench import BenchConfig, run_bench
from stream_derain.bench.timing import LoopPlan, latency_stats, measure
from stream_derain.engine_spec import EngineSpec

SLEEP = 0.03


class SlowStartBackend(Backend):
    """Activation takes 0.5 s and each warm-up call 0.3 s; timed calls sleep SLEEP."""

    name = "fake"

    def __init__(self, model: Any, warmup: int) -> None:
        super().__init__(model)
        self.warmup, self.calls = warmup, 0

    def activate(self) -> None:
        time.sleep(0.5)

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - infer is overridden
        return x

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        time.sleep(0.3 if self.calls <= self.warmup else SLEEP)
        return batch


def test_latency_is_the_timed_call_only(tiny_engines: str) -> None:
    made: list[SlowStartBackend] = []

    def factory(name: str, model: Any, precision: str, threads: int, options: Any = ()) -> Backend:
        made.append(SlowStartBackend(model, warmup=2))
        return made[0]

    cfg = BenchConfig(mode="engine", engine=EngineSpec(model=tiny_engines), backends=("fake",),
                      resolutions=((32, 16),), batches=(2,), warmup=2, iters=5)
    (row,) = run_bench(cfg, backend_factory=factory)["engine"]
    lat = row["latency_ms"]
    assert made[0].calls == 7 and row["iters"] == 5 and row["warmup"] == 2
    assert SLEEP * 1000 * 0.95 <= lat["p50"] < SLEEP * 1000 + 40  # sleep, plus scheduling noise
    assert lat["max"] < 250  # neither the 500 ms activation nor a 300 ms warm-up call
    assert row["fps"] == pytest.approx(2 * 5 / row["timed_s"], rel=1e-3)
    assert row["fps"] > 2 / 0.25


def test_adaptive_loop_respects_budget_and_minimum() -> None:
    calls = []
    samples = measure(lambda: (calls.append(1), time.sleep(0.005)), LoopPlan(warmup=3, iters=0, budget_s=0.05,
                                                                             min_iters=4, max_iters=100))
    assert len(calls) == len(samples) + 3
    assert sum(samples) >= 0.05 and len(samples) >= 4 and len(samples) < 100
    assert len(measure(lambda: None, LoopPlan(warmup=0, iters=0, budget_s=10, min_iters=1, max_iters=7))) == 7
    assert len(measure(lambda: None, LoopPlan(warmup=0, iters=3))) == 3


def test_latency_stats_percentiles() -> None:
    stats = latency_stats([i / 1000 for i in range(1, 101)])
    assert stats["p50"] == pytest.approx(50.5) and stats["p99"] == pytest.approx(99.01)
    assert stats["min"] == 1.0 and stats["max"] == 100.0
