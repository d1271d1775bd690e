"""The engine cache: one plan per key, beside the models (:func:`models.cache_dir`).

A key is everything a plan depends on: the ONNX file's sha256, the precision, the
profile shapes, TensorRT flavour + version and the target (compute capabilities, and
the GPU name for standard TensorRT). The file name is readable and ends in a digest
of the whole key, so changing any component misses and builds; the JSON sidecar
repeats the key plus the plan's sha256, so a truncated or altered plan is noticed
without a GPU. A plan that TensorRT cannot deserialise (e.g. a driver change) is
rebuilt with a warning. Writes are atomic (tmp + ``os.replace``) and builds of one key
hold an ``fcntl`` lock, so concurrent processes build it once and never corrupt it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import BackendError
from .builder import Profile

log = logging.getLogger(__name__)
T = TypeVar("T")
FORMAT = 1


@dataclass(frozen=True)
class EngineKey:
    model: str  # the ONNX file's stem, for readability only (the sha256 decides)
    onnx_sha256: str
    precision: str
    profile: Profile
    flavour: str
    version: str
    target: str

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["profile"] = self.profile.as_dict()
        d["format"] = FORMAT
        return d

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def stem(self) -> str:
        """e.g. 'tiny.fp16.n1-2-2.h16-64-64.w16-96-96.trtx1.7.1.116.portable.3f9c0a1b2c4d'."""
        flav = "trtx" if self.flavour == "tensorrt_rtx" else "trt"
        return ".".join([self.model, self.precision, self.profile.tag, flav + self.version,
                         self.target, self.digest])


@dataclass
class CachedEngine(Generic[T]):
    path: Path
    plan: bytes
    built: bool  # True when this call built the plan (False: reused from the cache)
    loaded: T | None = None  # what ``load(plan)`` returned (e.g. an ICudaEngine)
    build_seconds: float = 0.0


@dataclass
class EngineCache:
    """Plans in ``folder`` (default: :func:`stream_derain.catalog.cache_dir`)."""

    folder: Path | None = None
    builds: int = field(default=0, init=False)  # plans built through this object

    def __post_init__(self) -> None:
        if self.folder is None:
            from ..catalog import cache_dir

            self.folder = cache_dir()
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def plan_path(self, key: EngineKey) -> Path:
        return self.folder / f"{key.stem}.plan"  # type: ignore[operator]

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.folder / f"{key.stem}.json"  # type: ignore[operator]

    @contextlib.contextmanager
    def lock(self, key: EngineKey) -> Iterator[None]:
        """Exclusive lock for one key; other processes wait for the build in progress."""
        locks = self.folder / ".locks"  # type: ignore[operator]
        locks.mkdir(exist_ok=True)
        path = locks / f"{key.stem}.lock"
        with path.open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("another process is building %s; waiting", path.stem)
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def lookup(self, key: EngineKey) -> bytes | None:
        """The cached plan for ``key`` if present and intact (warns when it is not)."""
        plan_path, side_path = self.plan_path(key), self.sidecar_path(key)
        if not plan_path.is_file():
            return None
        try:
            side = json.loads(side_path.read_text())
            plan = plan_path.read_bytes()
        except (OSError, ValueError) as exc:
            log.warning("engine cache entry %s is unreadable (%s); rebuilding", plan_path.name, exc)
            return None
        if side.get("key") != key.as_dict():
            log.warning("engine cache entry %s was written for another key; rebuilding", plan_path.name)
            return None
        if side.get("plan_sha256") != hashlib.sha256(plan).hexdigest():
            log.warning("engine %s is corrupt (checksum mismatch); rebuilding", plan_path.name)
            return None
        return plan

    def store(self, key: EngineKey, plan: bytes, extra: dict[str, Any] | None = None) -> Path:
        """Write plan then sidecar, each atomically (a reader sees old or new, never half)."""
        plan_path, side_path = self.plan_path(key), self.sidecar_path(key)
        side = {"key": key.as_dict(), "plan_sha256": hashlib.sha256(plan).hexdigest(),
                "plan_bytes": len(plan), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(extra or {})}
        _atomic_write(plan_path, plan)
        _atomic_write(side_path, (json.dumps(side, indent=2, sort_keys=True) + "\n").encode())
        return plan_path

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes],
                     load: Callable[[bytes], T | None] | None = None, force: bool = False,
                     extra: dict[str, Any] | None = None) -> CachedEngine[T]:
        """The plan for ``key``: reused when cached, intact and loadable, else built.

        ``load`` (optional) turns a plan into a usable object (deserialises it); a
        cached plan it rejects (returns None or raises) is rebuilt with a warning.
        """
        with self.lock(key):
            plan = None if force else self.lookup(key)
            if plan is not None:
                loaded, why = _try_load(load, plan)
                if why is None:
                    log.info("reusing engine %s", self.plan_path(key).name)
                    return CachedEngine(self.plan_path(key), plan, False, loaded)
                log.warning("cached engine %s cannot be loaded (%s); rebuilding",
                            self.plan_path(key).name, why)
            t0 = time.perf_counter()
            plan = build()
            seconds = time.perf_counter() - t0
            self.builds += 1
            path = self.store(key, plan, {"build_seconds": round(seconds, 3), **(extra or {})})
        loaded, why = _try_load(load, plan)
        if why is not None:
            raise BackendError(f"freshly built engine {path.name} cannot be loaded: {why}")
        return CachedEngine(path, plan, True, loaded, seconds)


def _try_load(load: Callable[[bytes], T | None] | None, plan: bytes) -> tuple[T | None, str | None]:
    """(object, None) on success, (None, reason) on failure."""
    if load is None:
        return None, None
    try:
        obj = load(plan)
    except BackendError as exc:
        return None, str(exc)
    except Exception as exc:  # TensorRT raises untyped errors on bad plans
        return None, f"{type(exc).__name__}: {exc}"
    return (obj, None) if obj is not None else (None, "deserialisation returned nothing")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BackendError(f"cannot write {path}: {exc}") from None
