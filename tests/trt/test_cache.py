"""The engine cache with stand-in builds (no TensorRT needed): keys, reuse, corruption,
rejected plans, atomic writes and the per-key lock."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import pytest

from stream_derain.errors import BackendError
from stream_derain.trt.builder import Profile
from stream_derain.trt.cache import EngineCache, EngineKey

KEY = EngineKey(model="tiny", onnx_sha256="ab" * 32, precision="fp16",
                profile=Profile.for_resolution(64, 96, 2), flavour="tensorrt_rtx", version="1.7.1.116",
                target="portable")


class Builds:
    """A build callable that counts and returns distinct plans."""

    def __init__(self, delay: float = 0.0) -> None:
        self.count, self.delay = 0, delay

    def __call__(self) -> bytes:
        self.count += 1
        time.sleep(self.delay)
        return b"PLAN" + bytes([self.count]) * 100


def test_key_file_name_is_readable_and_unique() -> None:
    assert KEY.stem.startswith("tiny.fp16.n1-2-2.h16-64-64.w16-96-96.trtx1.7.1.116.portable.")
    changes = [dict(onnx_sha256="cd" * 32), dict(precision="fp32"), dict(version="1.8.0"),
               dict(flavour="tensorrt"), dict(target="sm86"), dict(profile=Profile.for_resolution(64, 96, 4))]
    stems = {dataclasses.replace(KEY, **c).stem for c in changes} | {KEY.stem}
    assert len(stems) == len(changes) + 1


def test_same_key_reuses_without_building(engine_cache: EngineCache) -> None:
    build = Builds()
    first = engine_cache.get_or_build(KEY, build)
    mtime = first.path.stat().st_mtime_ns
    second = engine_cache.get_or_build(KEY, build)
    assert first.built and not second.built and build.count == 1 == engine_cache.builds
    assert second.plan == first.plan and second.path.stat().st_mtime_ns == mtime
    assert engine_cache.sidecar_path(KEY).is_file()
    assert not list(engine_cache.folder.glob("*.tmp"))


@pytest.mark.parametrize("change", [dict(onnx_sha256="cd" * 32), dict(precision="fp32"),
                                    dict(version="1.8.0"), dict(target="sm89"),
                                    dict(profile=Profile.for_resolution(128, 96, 2))])
def test_changed_key_component_rebuilds(engine_cache: EngineCache, change: dict) -> None:
    build = Builds()
    engine_cache.get_or_build(KEY, build)
    other = engine_cache.get_or_build(dataclasses.replace(KEY, **change), build)
    assert other.built and build.count == 2
    assert engine_cache.get_or_build(KEY, build).built is False  # the old one is still there


def test_corrupt_plan_is_rebuilt_with_warning(engine_cache: EngineCache,
                                              caplog: pytest.LogCaptureFixture) -> None:
    build = Builds()
    path = engine_cache.get_or_build(KEY, build).path
    path.write_bytes(path.read_bytes()[:10])  # truncated
    with caplog.at_level(logging.WARNING):
        again = engine_cache.get_or_build(KEY, build)
    assert again.built and build.count == 2 and "corrupt" in caplog.text


def test_mismatched_sidecar_is_rebuilt(engine_cache: EngineCache, caplog: pytest.LogCaptureFixture) -> None:
    build = Builds()
    engine_cache.get_or_build(KEY, build)
    engine_cache.sidecar_path(KEY).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert engine_cache.get_or_build(KEY, build).built
    assert "unreadable" in caplog.text


def test_plan_that_does_not_deserialize_is_rebuilt(engine_cache: EngineCache,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    build = Builds()
    engine_cache.get_or_build(KEY, build)
    loads = []

    def load(plan: bytes) -> object | None:  # rejects the first (cached) plan like a driver change would
        loads.append(plan)
        return None if len(loads) == 1 else "engine"

    with caplog.at_level(logging.WARNING):
        res = engine_cache.get_or_build(KEY, build, load=load)
    assert res.built and res.loaded == "engine" and build.count == 2
    assert "cannot be loaded" in caplog.text

    def never(plan: bytes) -> None:
        raise RuntimeError("bad magic")

    with pytest.raises(BackendError, match="freshly built engine .* bad magic"):
        engine_cache.get_or_build(KEY, build, load=never)


def test_force_rebuilds(engine_cache: EngineCache) -> None:
    build = Builds()
    engine_cache.get_or_build(KEY, build)
    assert engine_cache.get_or_build(KEY, build, force=True).built and build.count == 2


def test_concurrent_builds_of_one_key_build_once(tmp_path: Path) -> None:
    build = Builds(delay=0.3)
    caches = [EngineCache(tmp_path), EngineCache(tmp_path)]  # as two processes would
    results = []
    threads = [threading.Thread(target=lambda c=c: results.append(c.get_or_build(KEY, build)))
               for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert build.count == 1 and sorted(r.built for r in results) == [False, True]
    assert results[0].plan == results[1].plan
