"""The driver side: decide what needs a task, submit a window of tasks, poll their
progress, collect outcomes, cancel on Ctrl-C."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..derain import DerainConfig
from .connect import connected, task_resources
from .outcomes import (
    RETRY_EXCEPTIONS,
    ClusterOptions,
    ClusterProgress,
    ClusterResult,
    FileOutcome,
    import_ray,
    one_line,
)
from .worker import Tracker, remove_parts, run_file, sweep_stale_parts

log = logging.getLogger(__name__)


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
            outcome = FileOutcome(str(inp), str(out), status="failed", error=one_line(cause))
        except ray.exceptions.RayError as exc:  # worker or node lost beyond max_retries, or cancelled
            status = "cancelled" if cancelling else "failed"
            outcome = FileOutcome(str(inp), str(out), status=status, error=one_line(exc))
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
    """(input, output, skip reason) of a :class:`stream_derain.jobs.Job` or an
    ``(input, output)`` pair."""
    if hasattr(job, "input"):
        return Path(job.input), Path(job.output), getattr(job, "skip", None)
    inp, out = job
    return Path(inp), Path(out), None


def run_cluster(jobs: Sequence[Any], cfg: DerainConfig, opts: ClusterOptions = ClusterOptions(),
                progress: Callable[[ClusterProgress], None] | None = None) -> ClusterResult:
    """Derain each job (a :class:`stream_derain.jobs.Job` from ``plan_jobs``, or an
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
