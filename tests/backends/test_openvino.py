"""OpenVINO backend: agreement with ONNX Runtime per precision on the shipped model,
batching, odd sizes, the compiled-model cache, the precision check, a missing extra."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from stream_derain.backends import create_backend
from stream_derain.catalog import resolve_model, still_model
from stream_derain.errors import BackendError, MissingExtraError
from stream_derain.metrics import psnr

MIN_DB = 50.0


def frames(n: int = 2, h: int = 67, w: int = 101, seed: int = 0) -> np.ndarray:
    """Gradient plus noise plus bright streaks, odd sizes (the backend pads and crops)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(20, 200, w)[None, :, None] + np.linspace(0, 40, h)[:, None, None]
    x = np.clip(ramp[None] + rng.normal(0, 18, (n, h, w, 3)), 0, 255)
    x[:, ::7, ::3] = 250
    return x.astype(np.uint8)


@pytest.fixture(scope="module")
def ov():  # noqa: ANN201 - the openvino module
    return pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def shipped():  # noqa: ANN201 - ModelInfo
    """The shipped single-frame model (v4's stills model; multi-frame: tests/backends/test_multiframe.py)."""
    return still_model(resolve_model(None))


@pytest.fixture(scope="module")
def ort_out(shipped) -> np.ndarray:  # noqa: ANN001
    with create_backend("onnxruntime", shipped) as be:
        return be.infer(frames())


def _precisions() -> list[str]:
    try:
        import openvino
    except ImportError:
        return ["fp32"]
    caps = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return ["auto", "fp32"] + [p for p, cap in (("bf16", "BF16"), ("fp16", "FP16")) if cap in caps]


@pytest.mark.parametrize("precision", _precisions())
def test_agrees_with_onnxruntime(ov, shipped, ort_out, precision, tmp_path: Path) -> None:  # noqa: ANN001
    from stream_derain.backends.openvino import OpenVINOBackend

    x = frames()
    with OpenVINOBackend(shipped, precision, cache=tmp_path) as be:
        out = be.infer(x)
        used = be.precision
        check = be.precision_check
    assert out.shape == x.shape and out.dtype == np.uint8
    assert psnr(out, ort_out) >= MIN_DB, f"{precision} ran as {used}"
    if precision != "auto":
        assert used == precision  # OpenVINO compiled what was asked for
    if used != "fp32":
        assert check["passed"] and check["psnr_db"] >= MIN_DB and check["precision"] == used


def test_auto_takes_a_native_reduced_precision_where_the_cpu_has_one(ov, shipped, tmp_path: Path) -> None:  # noqa: ANN001
    from stream_derain.backends.openvino import OpenVINOBackend
    from stream_derain.devices import cpu_info

    with OpenVINOBackend(shipped, "auto", cache=tmp_path) as be:
        assert be.precision == cpu_info().native_precisions()[0]
        assert "auto" in be.choice_reason and be.precision in be.describe()


def test_failed_precision_check_falls_back_to_fp32(ov, shipped, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from stream_derain.backends import openvino as ovb
    from stream_derain.devices import cpu_info

    if cpu_info().native_precisions() == ["fp32"]:
        pytest.skip("no native reduced precision on this CPU")
    monkeypatch.setattr(ovb, "MIN_PSNR_DB", 1000.0)
    with ovb.OpenVINOBackend(shipped, "auto", cache=tmp_path) as be:
        assert be.precision == "fp32" and "failed the precision check" in be.choice_reason
        assert be.precision_check["passed"] is False


def test_batch_equals_frame_by_frame(ov, shipped, tmp_path: Path) -> None:  # noqa: ANN001
    x = frames(3, 37, 53, seed=1)
    from stream_derain.backends.openvino import OpenVINOBackend

    with OpenVINOBackend(shipped, "fp32", cache=tmp_path) as be:
        batched = be.infer(x)
        single = np.concatenate([be.infer(x[i:i + 1]) for i in range(3)])
        assert be.infer(x[:1, :36, :52]).shape == (1, 36, 52, 3)  # another size, same compiled model
    assert batched.shape == x.shape
    assert np.abs(batched.astype(int) - single).max() <= 1


def test_cache_is_written_once_and_reused(ov, shipped, tmp_path: Path) -> None:  # noqa: ANN001
    from stream_derain.backends.openvino import OpenVINOBackend

    with OpenVINOBackend(shipped, "fp32", cache=tmp_path) as first:
        assert first.loaded_from_cache is False
    blobs = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert blobs and all(p.parent == tmp_path / "fp32" for p in blobs)
    stamps = [p.stat().st_mtime_ns for p in blobs]
    with OpenVINOBackend(shipped, "fp32", cache=tmp_path) as second:
        assert second.loaded_from_cache is True
        out = second.infer(frames(1))
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == blobs
    assert [p.stat().st_mtime_ns for p in blobs] == stamps
    assert out.shape == (1, 67, 101, 3)


def test_precisions_are_cached_apart(ov, shipped, tmp_path: Path) -> None:  # noqa: ANN001
    """OpenVINO's cache key leaves the precision hint out: one folder per precision."""
    from stream_derain.backends.openvino import OpenVINOBackend

    x = frames(1)
    with OpenVINOBackend(shipped, "fp32", cache=tmp_path) as be:
        ref = be.infer(x)
    for precision in [p for p in _precisions() if p in ("bf16", "fp16")]:
        with OpenVINOBackend(shipped, precision, cache=tmp_path) as be:
            assert be.loaded_from_cache is False and be.precision == precision
            assert not np.array_equal(be.infer(x), ref)  # really ran reduced, not the fp32 blob


def test_default_cache_is_under_the_engines_cache(ov, shipped, monkeypatch, tmp_path) -> None:  # noqa: ANN001
    from stream_derain.backends import openvino as ovb

    monkeypatch.setattr(ovb, "cache_dir", lambda: tmp_path)
    be = ovb.OpenVINOBackend(shipped, "fp32")
    assert be.cache_folder("fp32") == tmp_path / "openvino" / "fp32"


def test_missing_openvino_asks_for_the_extra(shipped, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    be = create_backend("openvino", shipped, "auto")
    with pytest.raises(MissingExtraError, match=r"install the \[openvino\] extra"):
        be.__enter__()


def test_unknown_precision_is_refused(shipped) -> None:  # noqa: ANN001
    with pytest.raises(BackendError, match="unknown precision"):
        create_backend("openvino", shipped, "int4")
    with pytest.raises(BackendError, match="bf16 runs on --backend openvino"):
        create_backend("onnxruntime", shipped, "bf16")


def test_threads_are_not_pinned_by_default(ov, shipped, tmp_path: Path) -> None:  # noqa: ANN001
    from stream_derain.backends.openvino import OpenVINOBackend

    with OpenVINOBackend(shipped, "fp32", cache=tmp_path, threads=1) as be:
        assert be.compiled.get_property("ENABLE_CPU_PINNING") is False
        assert be.compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_compiles_into_one_cache_folder_wait_their_turn(ov, shipped, tmp_path: Path) -> None:  # noqa: ANN001
    """Another process compiling into the folder (it holds the lock) keeps this activation
    waiting: OpenVINO read a blob another process was writing (CI: a compile error; four
    processes by hand: SIGBUS)."""
    import threading

    from filelock import FileLock

    from stream_derain.backends.openvino import COMPILE_LOCK, OpenVINOBackend

    (tmp_path / "fp32").mkdir()
    done = threading.Event()

    def activate() -> None:
        with OpenVINOBackend(shipped, "fp32", cache=tmp_path) as be:
            assert be.infer(frames(1)).shape == (1, 67, 101, 3)
        done.set()

    with FileLock(tmp_path / "fp32" / COMPILE_LOCK):
        worker = threading.Thread(target=activate, daemon=True)
        worker.start()
        assert not done.wait(1.5)  # the compile waits for the lock
        assert not [p for p in (tmp_path / "fp32").glob("*.blob")]
    assert done.wait(60)
    assert [p for p in (tmp_path / "fp32").glob("*.blob")]
