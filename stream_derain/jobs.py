"""Jobs: several inputs (videos, images, folders of them) in one call, each a job; a
single file is a batch of one job. ("batch" elsewhere means frames per inference call.)

Planning and running are apart, so that another executor (a Ray cluster) can run the
same plan::

    jobs = plan_jobs([Path("a.mp4"), Path("clips/")], Path("out"), skip_existing=True)
    batch = run_jobs(jobs, DerainConfig(input=Path(), engine=EngineSpec(backend="onnxruntime")))
    batch.failed, batch.summary()

- :func:`plan_jobs` expands folders (their media files, not recursive; hidden files
  are skipped with a count), names each output, refuses two jobs writing one file and
  marks jobs to skip (``--skip-existing``: the output exists and is complete; an
  unreadable input);
- :func:`run_jobs` runs the jobs in order with ``run_one(job, cfg) -> JobResult``
  (default: :class:`LocalRunner`, in this process, one backend for all jobs); a failed
  job is recorded and the others still run; Ctrl-C ends the batch after the current
  job (its output finalised), and ``--skip-existing`` resumes it later;
- :func:`job_config` is the per-job :class:`~stream_derain.derain.DerainConfig`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .derain import (
    KEEP_SUFFIXES,
    VIDEO_SUFFIXES,
    DerainConfig,
    DerainResult,
    Progress,
    check_input,
    check_job,
    default_output,
    derain_checked,
)
from .engine_spec import open_engine
from .errors import InputError, OutputError, StreamDerainError
from .io import images
from .io.paths import av_name, check_name, is_regular_or_fifo
from .pipeline import RunControl

log = logging.getLogger(__name__)
MEDIA_SUFFIXES = images.SUFFIXES | VIDEO_SUFFIXES


@dataclass(frozen=True)
class Job:
    """One input file and its output; ``skip``: why it is not run (None: run it);
    ``redo``: replace an incomplete output (``--skip-existing``) even without --overwrite."""

    input: Path
    output: Path
    skip: str | None = None
    redo: bool = False


@dataclass
class JobResult:
    """``status``: done, skipped, failed or interrupted (output finalised, incomplete)."""

    job: Job
    status: str
    frames: int = 0  # frames of a video, 1 for an image
    seconds: float = 0.0
    message: str = ""

    def line(self) -> str:
        j = self.job
        if self.status == "done":
            return f"done     {j.input} -> {j.output} ({self.frames} frames, {self.seconds:.1f} s)"
        if self.status == "interrupted":
            return f"stopped  {j.input} -> {j.output} ({self.frames} frames: interrupted, playable)"
        return f"{self.status:<8} {j.input}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"input": str(self.job.input), "output": str(self.job.output), "status": self.status,
                "frames": self.frames, "seconds": round(self.seconds, 3), "message": self.message}


@dataclass
class BatchResult:
    results: list[JobResult] = field(default_factory=list)
    interrupted: bool = False
    not_run: list[Job] = field(default_factory=list)  # left after an interruption

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> int:
        return self.count("failed")

    def summary(self) -> str:
        statuses = ("done", "failed", "skipped", "interrupted")
        parts = [f"{self.count(s)} {s}" for s in statuses if self.count(s)]
        if self.not_run:
            parts.append(f"{len(self.not_run)} not run")
        return ", ".join(parts) or "nothing to do"


def output_name(inp: Path) -> str:
    """The name of an input's output inside an output folder: its own name, with a
    container PyAV's default encoder can fill (.avi, .ts ... become .mp4)."""
    suffix = inp.suffix if inp.suffix.lower() in KEEP_SUFFIXES else ".mp4"
    return inp.stem + suffix


def is_media(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_SUFFIXES


def expand_folder(folder: Path) -> list[Path]:
    """The media files of a folder (sorted, not recursive); hidden ones are skipped with
    a warning and a count, as are other files than regular files and FIFOs."""
    files, hidden = [], []
    for p in sorted(folder.iterdir()):
        if not is_media(p) or p.is_dir():
            continue
        if p.name.startswith("."):
            hidden.append(p.name)
        elif is_regular_or_fifo(p):
            files.append(p)
    if hidden:
        log.warning("skipped %d hidden file(s) in %s: %s", len(hidden), folder, ", ".join(hidden[:5]))
    if not files:
        log.warning("no videos or images in %s", folder)
    return files


def _pairs(inputs: Sequence[Path], output: Path | None, output_is_dir: bool) -> list[tuple[Path, Path]]:
    """(input file, output file) of every input; ``output`` is a folder unless there is
    one input file and ``output`` is neither marked a folder nor an existing one."""
    several = len(inputs) > 1
    out_dir = output is not None and (several or output_is_dir or output.is_dir() or inputs[0].is_dir())
    if output is not None and out_dir and not output.is_dir() and (output.exists() or is_media(output)):
        what = "is a file" if output.exists() else "names a file"
        raise OutputError(f"{output} {what}: with {'several inputs' if several else 'a folder input'} "
                          "-o names a folder")
    pairs = []
    for inp in inputs:
        if inp.is_dir():
            base = default_output(inp) if output is None else output / inp.name if several else output
            pairs += [(f, base / output_name(f)) for f in expand_folder(inp)]
        elif output is None:
            pairs.append((inp, default_output(inp)))
        else:
            pairs.append((inp, output / output_name(inp) if out_dir else output))
    return pairs


def plan_jobs(inputs: Sequence[Path | str], output: Path | None = None, *, skip_existing: bool = False,
              trimmed: bool = False, output_is_dir: bool = False) -> list[Job]:
    """The jobs for ``inputs`` (files and folders) writing into ``output`` (a file for a
    single input file, else a folder; None: beside each input). ``skip_existing`` skips
    a job whose output exists and is complete, also with --overwrite, and marks one that
    is shorter than its input to be redone (``trimmed``: --start/--max-frames were
    given, so an existing output counts as complete); ``output_is_dir``: ``output`` names
    a folder even for one input file (``-o clean/``). Raises InputError for a missing
    input, OutputError when two jobs would write one file or an output name is longer
    than its filesystem holds."""
    for raw in inputs:
        _check_input(raw)
    if output is not None:
        check_name(Path(output))
    paths = list(dict.fromkeys(Path(p) for p in inputs))
    jobs, seen = [], {}
    for inp, out in _pairs(paths, output, output_is_dir):
        check_name(out)
        key = os.path.abspath(out)
        if key in seen:
            raise OutputError(f"{seen[key]} and {inp} would both write {out}")
        seen[key] = inp
        skip = _skip_reason(inp, out, skip_existing, trimmed)
        jobs.append(Job(inp, out, skip, redo=skip_existing and skip is None and out.exists()))
    return jobs


def _check_input(raw: Path | str) -> None:
    """:func:`~stream_derain.derain.check_input`, with a name too long for any file an
    InputError too."""
    try:
        check_input(raw)
    except OSError as exc:
        raise InputError(f"cannot read {str(raw)[:60]}...: {exc.strerror or exc}") from None


def _skip_reason(inp: Path, out: Path, skip_existing: bool, trimmed: bool) -> str | None:
    """Why a job is not run; ``--skip-existing`` skips a complete output also with
    ``--overwrite`` (which then only lets incomplete outputs be replaced)."""
    if not os.access(inp, os.R_OK):
        log.warning("skipping %s: not readable (permissions)", inp)
        return "not readable (permissions)"
    if skip_existing and out.exists():
        if trimmed or images.is_image(inp) or output_complete(inp, out):
            return "output exists"
        log.warning("redoing %s: it is shorter than its input (an interrupted run?)", out)
    return None


def output_complete(inp: Path, out: Path) -> bool:
    """Whether a video output lasts as long as its input (within 2 frames or 0.1 s);
    False when either cannot be read."""
    import av

    from .io.video import TAG_ERRORS

    try:
        with (av.open(av_name(inp), metadata_errors=TAG_ERRORS) as a,
              av.open(av_name(out), metadata_errors=TAG_ERRORS) as b):
            da, db = _duration(a), _duration(b)
            rate = a.streams.video[0].average_rate if a.streams.video else None
    except (av.error.FFmpegError, OSError, ValueError, IndexError, UnicodeDecodeError):
        return False
    if da is None or db is None:
        return False
    return db >= da - max(0.1, 2 / float(rate) if rate else 0.1)


def _duration(container: Any) -> float | None:
    v = container.streams.video[0]
    if v.duration and v.time_base:
        return float(v.duration * v.time_base)
    return container.duration / 1e6 if container.duration else None


def job_config(template: DerainConfig, job: Job) -> DerainConfig:
    """The template's settings for one job's input and output."""
    return replace(template, input=job.input, output=job.output, overwrite=template.overwrite or job.redo)


class LocalRunner:
    """Runs jobs in this process with one backend, opened at the first job that passes
    its checks and closed by :meth:`close`. ``progress(job)``: a context manager giving
    the job's frame-progress callback ``(done, total)`` (a progress bar, say);
    ``control``: the batch's stop request (None: each job's own, see
    :func:`~stream_derain.derain.derain`)."""

    def __init__(self, template: DerainConfig,
                 progress: Callable[[Job], AbstractContextManager[Progress | None]] | None = None,
                 control: RunControl | None = None) -> None:
        self.template, self.progress, self.control = template, progress, control
        self._backend: Any = None
        self._stack = ExitStack()  # holds the backend open from the first job to close()

    def backend(self) -> Any:
        if self._backend is None:
            self._backend = self._stack.enter_context(open_engine(self.template.engine))
            log.info("%s", self._backend.summary())
        return self._backend

    def close(self) -> None:
        self._backend = None
        self._stack.close()

    def __call__(self, job: Job, cfg: DerainConfig) -> JobResult:
        t0 = time.perf_counter()
        try:
            out = check_job(cfg)  # before the first job's model loads; run once per job
            with (self.progress(job) if self.progress else nullcontext()) as callback:
                result = derain_checked(cfg, out, callback, self.backend(), self.control)
        except StreamDerainError as exc:
            return JobResult(job, "failed", seconds=time.perf_counter() - t0, message=str(exc))
        return finished(job, result, time.perf_counter() - t0)


def finished(job: Job, result: DerainResult, seconds: float) -> JobResult:
    """The JobResult of what :func:`~stream_derain.derain.derain` returned."""
    return JobResult(job, "interrupted" if result.interrupted else "done", result.frames, seconds)


def run_jobs(jobs: Iterable[Job], template: DerainConfig,
             run_one: Callable[[Job, DerainConfig], JobResult] | None = None,
             on_result: Callable[[JobResult], None] | None = None,
             control: RunControl | None = None, create_folders: bool = True) -> BatchResult:
    """Run ``jobs`` in order with ``run_one`` (default: a :class:`LocalRunner` of
    ``template`` and ``control``); ``on_result`` sees each result as it comes. Stops at
    Ctrl-C or once ``control`` is set (the current video is finalised) and returns what
    was done. ``create_folders``: make missing output folders (removed again if they
    stay empty); False for one file named by the user, whose folder must exist."""
    jobs = list(jobs)
    local = LocalRunner(template, control=control) if run_one is None else None
    runner = run_one or local
    batch, created = BatchResult(), make_folders(jobs) if create_folders else []
    try:
        for i, job in enumerate(jobs):
            if job.skip:
                result = JobResult(job, "skipped", message=job.skip)
            else:
                try:
                    result = runner(job, job_config(template, job))
                except KeyboardInterrupt:
                    result = JobResult(job, "interrupted", message="interrupted")
            batch.results.append(result)
            if on_result:
                on_result(result)
            if result.status == "interrupted" or (control is not None and control.is_set()):
                batch.interrupted, batch.not_run = True, jobs[i + 1:]
                break
    finally:
        if local is not None:
            local.close()
        remove_empty(created)
    return batch


def make_folders(jobs: Sequence[Job]) -> list[Path]:
    """Create the output folders of the jobs to run; returns those created."""
    created = []
    for folder in dict.fromkeys(j.output.parent for j in jobs if not j.skip):
        missing = [p for p in [folder, *folder.parents] if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
        created += missing
    return created


def remove_empty(folders: Sequence[Path]) -> None:
    """Remove the folders a batch created that stayed empty (every job failed), deepest
    first, so that a rerun finds the place as it was."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass


def results_json(batch: BatchResult) -> dict[str, Any]:
    return {"summary": batch.summary(), "interrupted": batch.interrupted,
            "results": [r.as_dict() for r in batch.results],
            "not_run": [asdict(j) | {"input": str(j.input), "output": str(j.output)} for j in batch.not_run]}


__all__ = ["BatchResult", "InputError", "Job", "JobResult", "LocalRunner", "expand_folder", "finished",
           "job_config", "output_complete", "plan_jobs", "results_json", "run_jobs"]
