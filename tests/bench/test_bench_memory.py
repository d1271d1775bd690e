"""bench.memory: the device-memory probes."""

from __future__ import annotations

import time
from typing import Any

from stream_derain.bench.memory import PeakSampler, device_used_reader


def test_peak_sampler_keeps_the_highest_reading() -> None:
    readings = iter([100, 300, 250] + [120] * 10_000)
    sampler = PeakSampler(lambda: next(readings), interval=0.001).start()
    time.sleep(0.05)
    assert sampler.stop() == 300

    def broken() -> int:
        raise RuntimeError("driver gone")

    assert PeakSampler(broken).start().stop() == 0  # a failing probe never fails the benchmark


def test_device_used_reader_is_total_minus_free() -> None:
    class FakeCuda:
        @staticmethod
        def mem_get_info(dev: Any) -> tuple[int, int]:
            assert str(dev) == "cuda:1"
            return 3 * 2**30, 8 * 2**30

    class FakeTorch:
        cuda = FakeCuda

        @staticmethod
        def device(name: str) -> str:
            return name

    assert device_used_reader(FakeTorch, "cuda:1")() == 5 * 2**30
