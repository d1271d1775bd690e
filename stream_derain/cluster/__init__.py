"""Derain many files across a Ray cluster: one Ray task per input file.

Each task runs the normal single-machine file pipeline (:func:`stream_derain.derain.derain`)
on its worker with the batch's options, writes to a hidden temporary name beside the
output and renames it on success, so an output path only ever holds a complete file.

- resources: a task asks for ``cpus_per_file`` CPUs, and for one GPU when the chosen
  backend needs one (``tensorrt``; ``auto`` and ``torch`` on a cluster that has GPUs);
- retries: a worker that dies (killed, out of memory, node lost) is retried by Ray
  (``max_retries``); of the exceptions only the transient ones (:data:`RETRY_EXCEPTIONS`:
  OS-level I/O errors, a backend that failed to start) are; bad input, an existing
  output, a bad model or option (:data:`PERMANENT_ERRORS`) fail the file at once, and
  a failed file never stops the rest;
- ``skip_existing`` leaves files whose output exists alone (resuming a batch);
- Ctrl-C cancels the outstanding tasks; the result says what had finished.

Progress flows from the tasks to a small tracker actor that the driver polls, so the
driver sees frames done per file, which worker (node, PID) runs it and each attempt.
Ray is imported only here, lazily: the single-machine path never imports it.

Modules: :mod:`.outcomes` (options, outcomes, results), :mod:`.worker` (the task),
:mod:`.connect` (starting or joining Ray, a task's resources), :mod:`.driver` (the run).
"""

from ..errors import ConfigError
from .connect import connected, init_ray, task_resources
from .driver import job_paths, precheck, run_cluster
from .outcomes import (
    GPU_BACKENDS,
    GPU_IF_AVAILABLE,
    PART,
    PERMANENT_ERRORS,
    RETRY_EXCEPTIONS,
    ClusterOptions,
    ClusterProgress,
    ClusterResult,
    FileOutcome,
    import_ray,
)
from .worker import Tracker, part_path, remove_parts, run_file, sweep_stale_parts

__all__ = [
    "GPU_BACKENDS", "GPU_IF_AVAILABLE", "PART", "PERMANENT_ERRORS", "RETRY_EXCEPTIONS", "ClusterOptions",
    "ClusterProgress", "ClusterResult", "ConfigError", "FileOutcome", "Tracker", "connected", "import_ray",
    "init_ray", "job_paths", "part_path", "precheck", "remove_parts", "run_cluster", "run_file",
    "sweep_stale_parts", "task_resources",
]
