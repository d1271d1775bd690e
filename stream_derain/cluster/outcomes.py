"""What a cluster run is asked and what it answers: options, per-file outcomes, progress,
the run's result, and which exceptions are retried or final."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import (
    BackendError,
    ConfigError,
    InputError,
    MissingExtraError,
    ModelError,
    OutputError,
    require,
)

#: exceptions a task is retried for (on top of a worker dying, which Ray always retries)
RETRY_EXCEPTIONS: tuple[type[BaseException], ...] = (OSError, BackendError)
#: expected failures that retrying cannot mend: the file is reported failed at once
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (InputError, OutputError, ModelError, ConfigError,
                                                     MissingExtraError)
GPU_BACKENDS = {"tensorrt"}  # always need a GPU
GPU_IF_AVAILABLE = {"auto", "torch"}  # take one when the cluster has GPUs
PART = ".ray-part-"  # marker in the temporary names the tasks write under
ENV_PREFIX = "STREAM_DERAIN_"  # driver variables handed on to the workers
UPDATE_EVERY = 0.25  # seconds between a task's progress reports


@dataclass(frozen=True)
class ClusterOptions:
    address: str | None = None  # None: a local instance (or RAY_ADDRESS); "auto"; "ray://host:10001"
    num_cpus: int | None = None  # CPUs of a local instance [default: all]
    cpus_per_file: float = 1.0
    gpus_per_file: float | None = None  # None: from the backend and the cluster
    workers: int | None = None  # files in flight at most [default: twice what the cluster fits, so
    #                             an autoscaler sees queued demand; Ray runs what the resources allow]
    max_retries: int = 3
    skip_existing: bool = False
    poll: float = 0.5  # seconds between progress polls
    cancel_grace: float = 15.0  # seconds to wait for the cancelled tasks to be confirmed
    log_to_driver: bool = False  # forward the workers' stdout/stderr


@dataclass
class FileOutcome:
    input: str
    output: str
    status: str = "pending"  # done, failed, skipped, cancelled
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    node: str = ""
    pid: int = 0
    attempts: int = 0
    error: str = ""
    cpu_seconds: float = 0.0  # the worker process's CPU time for the file (all its threads)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3), "fps": round(self.fps, 2),
                "cpu_seconds": round(self.cpu_seconds, 3)}


@dataclass
class ClusterProgress:
    """A snapshot for progress displays (``files`` counts done + failed + skipped)."""

    files: int
    total: int
    frames: int
    seconds: float
    fraction: float  # files finished plus the running files' fractions
    running: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> tracker state

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ClusterResult:
    """``seconds``: from the first task's submission to the last outcome (what the
    throughput is of); ``wall_seconds`` adds connecting to (or starting) Ray."""

    files: list[FileOutcome]
    seconds: float
    interrupted: bool = False
    in_flight: int = 0  # files submitted at a time (the window)
    wall_seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.files if f.status == "done")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def files_per_min(self) -> float:
        return 60.0 * self.count("done") / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.count("failed") == 0

    def as_dict(self) -> dict[str, Any]:
        summary = {k: self.count(k) for k in ("done", "failed", "skipped", "cancelled")}
        return {"files": [f.as_dict() for f in self.files], "seconds": round(self.seconds, 3),
                "frames": self.frames, "fps": round(self.fps, 2),
                "files_per_min": round(self.files_per_min, 2), "in_flight": self.in_flight,
                "wall_seconds": round(self.wall_seconds, 3),
                "interrupted": self.interrupted, **summary}


def import_ray() -> Any:
    """The ray module, or :class:`MissingExtraError` naming the ``[ray]`` extra."""
    return require("ray", "ray")


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:300]
