"""The worker side: one Ray task per file, its temporary names, its progress reports."""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..derain import DerainConfig, derain
from .outcomes import PART, PERMANENT_ERRORS, UPDATE_EVERY, FileOutcome


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
