"""Issue 13, point 9: a failing bench case is a "failed" row, not ``KeyError: 'name'``."""

from __future__ import annotations

import numpy as np

from stream_derain.bench.engine import run_engine
from stream_derain.bench.timing import LoopPlan


class FailingBackend:
    name, device, precision = "fake", "cpu", "fp32"

    def describe(self) -> str:
        return "fake (fp32, cpu)"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        raise MemoryError("out of memory at this size")


def test_a_failing_case_becomes_a_failed_row():
    variant = {"variant": "fake/fp32", "backend": "fake", "precision": "fp32", "status": "ok", "reason": None}
    rows = run_engine(FailingBackend(), variant, ((64, 48),), (1, 2), LoopPlan(warmup=1, iters=2))
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert all("MemoryError" in r["reason"] and r["variant"] == "fake/fp32" for r in rows)


def test_unknown_bench_backend_is_an_error():
    from test_derain_cli import cli, one_line_error

    one_line_error(cli("bench", "--backend", "foo", "--mode", "engine"), "unknown backend 'foo'")


def test_bench_where_every_case_fails_is_an_error(tmp_path, use_tiny_model):
    """Issue 30, point 12: an e2e input with nothing in it fails every backend: exit 1."""
    from test_derain_cli import cli, one_line_error

    empty = tmp_path / "zero.mp4"
    empty.write_bytes(b"")
    result = cli("bench", "--mode", "e2e", "-i", str(empty), "--backend", "onnxruntime", "--frames", "2")
    one_line_error(result, "every case failed")
