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
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from .derain import DerainConfig, derain
from .errors import (
    BackendError,
    ConfigError,
    InputError,
    MissingExtraError,
    ModelError,
    OutputError,
    require,
)

log = logging.getLogger(__name__)

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


# ---- worker side ---------------------------------------------------------------------------

class Tracker:
    """Per-file state reported by the tasks (run as a zero-CPU Ray actor)."""

    def __init__(self) -> None:
        self.state: dict[int, dict[str, Any]] = {}

    def start(self, index: int, pid: int, node: str) -> tuple[int, list[int]]:
        """Record an attempt; returns its number and the PIDs of the earlier attempts."""
        st = self.state.setdefault(index, {"attempts": 0, "pids": []})
        before = list(st["pids"])
        st.update(attempts=st["attempts"] + 1, pid=pid, node=node, frames=0, total=0, t0=time.time(),
                  pids=before + [pid])
        return st["attempts"], before

    def update(self, index: int, frames: int, total: int) -> None:
        st = self.state.setdefault(index, {"attempts": 1})
        st.update(frames=frames, total=total)

    def snapshot(self, indices: Sequence[int]) -> dict[int, dict[str, Any]]:
        return {i: self.state[i] for i in indices if i in self.state}


def part_path(out: Path) -> Path:
    """The hidden temporary name a task writes ``out`` under (same folder and extension)."""
    return out.with_name(f".{out.stem}{PART}{os.getpid()}{out.suffix}")


STALE = re.compile(rf"\.\.?(?P<stem>.+?)({re.escape(PART)}\d+(\.partial-\d+)?|\.partial-\d+)"
                   r"(?P<suffix>\.[^.]+)")


def remove_parts(out: Path, pids: Sequence[int]) -> None:
    """Remove what the attempts with these PIDs left beside ``out`` (a killed worker):
    our temporary name and the pipeline's own ``.partial-`` name of it."""
    for pid in pids:
        part = out.with_name(f".{out.stem}{PART}{pid}{out.suffix}")
        for p in (part, part.with_name(f".{part.stem}.partial-{pid}{out.suffix}"),
                  out.with_name(f".{out.stem}.partial-{pid}{out.suffix}")):
            p.unlink(missing_ok=True)


def sweep_stale_parts(outputs: Sequence[Path]) -> int:
    """Remove the temporary files an interrupted or killed earlier batch left beside
    ``outputs`` (one listing per folder); returns how many."""
    names: dict[Path, set[str]] = {}
    for out in outputs:
        names.setdefault(out.parent, set()).add(out.name)
    removed = 0
    for folder, wanted in names.items():
        for p in folder.iterdir() if folder.is_dir() else []:
            m = STALE.fullmatch(p.name)
            if m and m["stem"].lstrip(".") + m["suffix"] in wanted and p.is_file():
                p.unlink(missing_ok=True)
                removed += 1
    return removed


def _reporter(tracker: Any, index: int) -> Callable[[int, int], None]:
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= UPDATE_EVERY or (total and done >= total):
            last[0] = now
            tracker.update.remote(index, done, total)

    return report


def run_file(index: int, inp: Path, out: Path, cfg: DerainConfig, tracker: Any) -> FileOutcome:
    """The body of one Ray task: derain ``inp`` into ``out`` through a temporary name.
    Permanent errors become a failed outcome (so Ray does not retry them); transient
    ones propagate for Ray's ``retry_exceptions``."""
    import ray

    node = f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"
    outcome = FileOutcome(str(inp), str(out), node=node, pid=os.getpid())
    outcome.attempts, earlier = ray.get(tracker.start.remote(index, os.getpid(), node))
    remove_parts(out, earlier)
    part = part_path(out)
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        _, result = derain(replace(cfg, input=inp, output=part, overwrite=True), _reporter(tracker, index))
    except PERMANENT_ERRORS as exc:
        part.unlink(missing_ok=True)
        outcome.status, outcome.error = "failed", str(exc)
        return outcome
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    frames = result.frames
    outcome.frames, outcome.seconds = frames, time.perf_counter() - t0
    outcome.cpu_seconds = time.process_time() - cpu0
    outcome.fps = frames / outcome.seconds if outcome.seconds > 0 else 0.0
    if result.interrupted:
        part.unlink(missing_ok=True)
        outcome.status, outcome.error = "cancelled", "interrupted"
    elif frames == 0 or not part.exists():
        part.unlink(missing_ok=True)
        outcome.status, outcome.error = "failed", "no frames were written"
    else:
        os.replace(part, out)
        outcome.status = "done"
    return outcome


# ---- driver side ---------------------------------------------------------------------------

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
                raise ConfigError(f"cannot start or reach Ray ({where}): {_one_line(exc)}") from None
            log.warning("starting Ray failed (%s); trying again", _one_line(exc))


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


def precheck(inp: Path, out: Path, cfg: DerainConfig, opts: ClusterOptions,
             planned: bool = False) -> FileOutcome | None:
    """An outcome decided on the driver without a task (skipped, or failed up front).
    ``planned``: ``batch.plan_jobs`` already decided skipping (with --skip-existing it
    skips complete outputs only, so an existing output of a planned job is redone)."""
    outcome = FileOutcome(str(inp), str(out))
    if out.exists() and opts.skip_existing and not planned:
        outcome.status, outcome.error = "skipped", "output exists"
    elif not inp.exists():
        outcome.status, outcome.error = "failed", f"input not found: {inp}"
    elif out.exists() and os.path.samefile(inp, out):
        outcome.status, outcome.error = "failed", f"output would overwrite the input: {out}"
    elif out.exists() and not (cfg.overwrite or opts.skip_existing):
        outcome.status, outcome.error = "failed", f"{out} exists (use --overwrite or --skip-existing)"
    else:
        return None
    return outcome


class _Runner:
    """Submits a window of tasks, polls progress, collects outcomes."""

    def __init__(self, ray: Any, jobs: Sequence[tuple[Path, Path]], cfg: DerainConfig,
                 opts: ClusterOptions, outcomes: dict[int, FileOutcome],
                 progress: Callable[[ClusterProgress], None] | None) -> None:
        self.ray, self.jobs, self.cfg, self.opts = ray, jobs, cfg, opts
        self.outcomes, self.progress = outcomes, progress
        self.tracker = ray.remote(num_cpus=0)(Tracker).remote()
        gpus = ray.cluster_resources().get("GPU", 0.0)
        cpus, gpus_per = task_resources(cfg.engine.backend_name, opts, gpus)
        threads = cfg.engine.threads or max(int(cpus), 1)  # no oversubscription of a worker's CPUs
        self.cfg = replace(cfg, engine=replace(cfg.engine, threads=threads))
        self.task = ray.remote(run_file).options(
            num_cpus=cpus, num_gpus=gpus_per, max_retries=opts.max_retries,
            retry_exceptions=list(RETRY_EXCEPTIONS))
        self.resources = cpus, gpus_per
        self.window = opts.workers or 2 * self._slots()
        self.running: dict[Any, int] = {}  # ref -> job index
        self.seen_attempts: dict[int, int] = {}
        self.t0 = time.perf_counter()
        log.info("ray: %d file(s), %g CPU%s per file, %d submitted at a time",
                 len(jobs), cpus, f" + {gpus_per:g} GPU" if gpus_per else "", self.window)

    def _slots(self) -> int:
        """Files the cluster's resources fit at once (it may grow: an autoscaler)."""
        cpus, gpus = self.resources
        res = self.ray.cluster_resources()
        fits = [res.get("CPU", 0.0) / cpus] if cpus else []
        fits += [res.get("GPU", 0.0) / gpus] if gpus else []
        return max(int(min(fits)) if fits else 1, 1)

    def run(self, todo: list[int]) -> bool:
        """Run every job in ``todo``; returns True when interrupted (Ctrl-C)."""
        pending, polls = list(reversed(todo)), 0
        try:
            while pending or self.running:
                polls += 1
                if not self.opts.workers and polls % 20 == 0:  # the cluster may have grown
                    self.window = max(self.window, 2 * self._slots())
                while pending and len(self.running) < self.window:
                    i = pending.pop()
                    inp, out = self.jobs[i]
                    self.running[self.task.remote(i, inp, out, self.cfg, self.tracker)] = i
                done, _ = self.ray.wait(list(self.running), num_returns=1, timeout=self.opts.poll)
                for ref in done:
                    self._collect(ref)
                self._report()
        except KeyboardInterrupt:
            self._cancel(pending)
            return True
        return False

    def _collect(self, ref: Any, cancelling: bool = False) -> None:
        ray = self.ray
        i = self.running.pop(ref)
        inp, out = self.jobs[i]
        try:
            outcome = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            outcome = FileOutcome(str(inp), str(out), status="cancelled", error="cancelled")
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            outcome = FileOutcome(str(inp), str(out), status="failed", error=_one_line(cause))
        except ray.exceptions.RayError as exc:  # worker or node lost beyond max_retries, or cancelled
            status = "cancelled" if cancelling else "failed"
            outcome = FileOutcome(str(inp), str(out), status=status, error=_one_line(exc))
        st = self._state([i]).get(i, {})
        if outcome.status != "done":  # what killed attempts left (a task removes its own)
            remove_parts(out, st.get("pids", []))
        if not outcome.node:
            outcome.node, outcome.pid = st.get("node", ""), st.get("pid", 0)
        outcome.attempts = max(outcome.attempts, st.get("attempts", 0))
        self.outcomes[i] = outcome
        level = logging.WARNING if outcome.status == "failed" else logging.INFO
        log.log(level, "%s: %s%s (%d frames, %.1f fps, %s, pid %d, attempt %d)", Path(inp).name,
                outcome.status, f": {outcome.error}" if outcome.error else "", outcome.frames,
                outcome.fps, outcome.node, outcome.pid, outcome.attempts)

    def _state(self, indices: Sequence[int]) -> dict[int, dict[str, Any]]:
        try:
            return self.ray.get(self.tracker.snapshot.remote(list(indices)), timeout=10)
        except self.ray.exceptions.RayError:
            return {}

    def _report(self) -> None:
        running = self._state(list(self.running.values()))
        for i, st in running.items():
            if st["attempts"] > self.seen_attempts.setdefault(i, st["attempts"]):
                log.warning("%s: attempt %d on %s (pid %d); the previous attempt's worker was lost",
                            self.jobs[i][0].name, st["attempts"], st["node"], st["pid"])
                self.seen_attempts[i] = st["attempts"]
        if self.progress is None:
            return
        finished = [o for o in self.outcomes.values() if o.status != "pending"]
        frames = sum(o.frames for o in finished) + sum(st.get("frames", 0) for st in running.values())
        part = sum(st["frames"] / st["total"] for st in running.values() if st.get("total"))
        self.progress(ClusterProgress(len(finished), len(self.jobs), frames, time.perf_counter() - self.t0,
                                      len(finished) + min(part, len(running)), running))

    def _cancel(self, pending: list[int]) -> None:
        """Stop the running tasks (their workers are killed: a cancelled output is not
        wanted, and its temporary files are removed) and mark the queued ones cancelled."""
        log.warning("interrupted: cancelling %d running and %d queued file(s)", len(self.running),
                    len(pending))
        for ref in self.running:
            self.ray.cancel(ref, force=True)
        deadline = time.monotonic() + self.opts.cancel_grace
        while self.running and time.monotonic() < deadline:
            done, _ = self.ray.wait(list(self.running), num_returns=1, timeout=0.5)
            for ref in done:
                self._collect(ref, cancelling=True)
        for ref in list(self.running):  # not confirmed in time: reported as cancelled all the same
            i = self.running.pop(ref)
            inp, out = self.jobs[i]
            self.outcomes[i] = FileOutcome(str(inp), str(out), status="cancelled", error="cancel pending")
        for i in pending:
            inp, out = self.jobs[i]
            self.outcomes[i] = FileOutcome(str(inp), str(out), status="cancelled", error="not started")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:300]


def _output_folder(outcome: FileOutcome) -> bool:
    """Create the output's folder; False (the outcome failed) when it cannot be."""
    folder = Path(outcome.output).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return True
    except OSError as exc:
        outcome.status = "failed"
        outcome.error = f"cannot create the output folder {folder}: {exc.strerror or exc}"
        return False


def job_paths(job: Any) -> tuple[Path, Path, str | None]:
    """(input, output, skip reason) of a :class:`stream_derain.batch.Job` or an
    ``(input, output)`` pair."""
    if hasattr(job, "input"):
        return Path(job.input), Path(job.output), getattr(job, "skip", None)
    inp, out = job
    return Path(inp), Path(out), None


def run_cluster(jobs: Sequence[Any], cfg: DerainConfig, opts: ClusterOptions = ClusterOptions(),
                progress: Callable[[ClusterProgress], None] | None = None) -> ClusterResult:
    """Derain each job (a :class:`stream_derain.batch.Job` from ``plan_jobs``, or an
    ``(input, output)`` pair) with the options of ``cfg`` (its ``input``/``output`` are
    ignored), one Ray task per file. Never raises for one bad file: each file's outcome
    is in the result, in the order of ``jobs``."""
    ray = import_ray()
    t0 = time.perf_counter()
    outcomes: dict[int, FileOutcome] = {}
    todo, pairs = [], []
    for i, job in enumerate(jobs):
        inp, out, skip = job_paths(job)
        pairs.append((inp, out))
        planned = not isinstance(job, (tuple, list))
        pre = FileOutcome(str(inp), str(out), "skipped", error=skip) if skip else \
            precheck(inp, out, cfg, opts, planned)
        outcomes[i] = pre or FileOutcome(str(inp), str(out))
        if pre is None:
            todo.append(i)
    interrupted, window, seconds = False, 0, 0.0
    if todo:
        with connected(ray, opts):
            todo = [i for i in todo if _output_folder(outcomes[i])]
            if n := sweep_stale_parts([pairs[i][1] for i in todo]):
                log.info("removed %d temporary file(s) left by an earlier run", n)
            runner = _Runner(ray, pairs, cfg, opts, outcomes, progress)
            window = runner.window
            interrupted = runner.run(todo)
            seconds = time.perf_counter() - runner.t0
    files = [outcomes[i] for i in range(len(pairs))]
    return ClusterResult(files, seconds, interrupted, window, time.perf_counter() - t0)
