"""Reaching Ray: start or join it (retrying a local start that times out), and what one
file's task asks of the cluster."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .outcomes import ENV_PREFIX, GPU_BACKENDS, GPU_IF_AVAILABLE, ClusterOptions, one_line

log = logging.getLogger(__name__)


def task_resources(backend: str, opts: ClusterOptions, cluster_gpus: float) -> tuple[float, float]:
    """(num_cpus, num_gpus) for one file's task."""
    if opts.gpus_per_file is not None:
        return opts.cpus_per_file, opts.gpus_per_file
    needs = backend in GPU_BACKENDS or (backend in GPU_IF_AVAILABLE and cluster_gpus > 0)
    return opts.cpus_per_file, 1.0 if needs else 0.0


def _worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}


def init_ray(ray: Any, opts: ClusterOptions, tries: int = 3) -> None:
    """``ray.init`` for ``opts``: join ``opts.address`` (or RAY_ADDRESS), else start a
    local instance; a local start that times out (Ray allows its raylet 30 s, which a
    loaded machine can miss) is tried again. Failures are a :class:`ConfigError`."""
    kwargs: dict[str, Any] = {"address": opts.address, "log_to_driver": opts.log_to_driver,
                              "logging_level": logging.WARNING,
                              "runtime_env": {"env_vars": _worker_env()}}
    local = opts.address is None and not os.environ.get("RAY_ADDRESS")
    if local:
        kwargs.update(num_cpus=opts.num_cpus, include_dashboard=False)
    for attempt in range(1, tries + 1):
        before = _children()
        try:
            ray.init(**kwargs)
            return
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception on a start timeout
            ray.shutdown()
            _stop_processes(_children() - before)  # a failed start leaves its GCS and monitors running
            if not local or attempt == tries:
                where = opts.address or os.environ.get("RAY_ADDRESS") or "a local instance"
                raise ConfigError(f"cannot start or reach Ray ({where}): {one_line(exc)}") from None
            log.warning("starting Ray failed (%s); trying again", one_line(exc))


def _children() -> set[int]:
    """PIDs of this process's children (empty where /proc is not there)."""
    me, found = str(os.getpid()), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            found.add(int(stat.parent.name))
    return found


def _stop_processes(pids: set[int]) -> None:
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, os.WNOHANG)
        except (ProcessLookupError, ChildProcessError, PermissionError):
            pass


@contextmanager
def connected(ray: Any, opts: ClusterOptions) -> Iterator[None]:
    """Join the cluster at ``opts.address`` (or start a local instance) unless this
    process is connected already; disconnect afterwards when it connected here."""
    if ray.is_initialized():
        yield
        return
    init_ray(ray, opts)
    try:
        yield
    finally:
        ray.shutdown()
