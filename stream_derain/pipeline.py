"""Threaded stages joined by bounded queues: decode -> derain -> smooth -> encode.

Every stage is a thread with a stop event, an end-of-stream sentinel and an error
slot; every queue get/put has a timeout so a stopped pipeline never hangs. Files
apply backpressure (a full queue blocks the producer: no frame is ever dropped);
live sources use :class:`DropOldestQueue`, which drops the oldest frame instead.
The first error in any stage stops all stages and is re-raised in the caller.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

EOS = object()  # end-of-stream sentinel
POLL = 0.1  # seconds: how often blocked gets/puts look at the stop event


class RunControl:
    """One run's stop request: set by whoever asks the run to stop (the CLI's signal
    handler, :func:`sigint_sets` for a library call, another thread of the caller's),
    read by the run. A set control ends the run as Ctrl-C does: the source stops, the
    frames in flight are finished and the output is finalised, and the result says
    ``interrupted``. PyAV turns a signal that arrives inside one of its calls into an
    ExitError ("Immediate exit requested"); code that catches one asks the control to
    tell it from a timeout. Each run has its own (no state is shared between runs)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


@contextmanager
def sigint_sets(control: RunControl) -> Iterator[RunControl]:
    """For the block, Ctrl-C (SIGINT) sets ``control`` and raises KeyboardInterrupt, as
    the CLI's handler does; the previous handler is put back after. Signal handlers
    belong to the main thread: called from another one, this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield control
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: object) -> None:
        control.set()
        raise KeyboardInterrupt

    handler.control = control  # type: ignore[attr-defined] - whose run it stops
    signal.signal(signal.SIGINT, handler)
    try:
        yield control
    finally:
        if previous is not None:  # None: a handler not set from Python, nothing to restore
            signal.signal(signal.SIGINT, previous)


class Stopped(Exception):
    """Raised inside a stage when the pipeline was told to stop."""


@dataclass
class StageStats:
    """What a stage did: items out, seconds busy in its own work, seconds waiting."""

    name: str
    items: int = 0
    busy_s: float = 0.0
    wait_in_s: float = 0.0
    wait_out_s: float = 0.0
    # input-queue depth at each get, as running totals (a live run never ends: no list)
    queue_gets: int = 0
    queue_sum: int = 0
    queue_max: int = 0

    def sample_queue(self, depth: int) -> None:
        self.queue_gets += 1
        self.queue_sum += depth
        self.queue_max = max(self.queue_max, depth)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "items": self.items, "busy_s": round(self.busy_s, 4),
                "wait_in_s": round(self.wait_in_s, 4), "wait_out_s": round(self.wait_out_s, 4),
                "fps_busy": round(self.items / self.busy_s, 2) if self.busy_s > 0 else None,
                "queue_mean": round(self.queue_sum / self.queue_gets, 2) if self.queue_gets else 0.0,
                "queue_max": self.queue_max}


class DropOldestQueue(queue.Queue):
    """A bounded queue for live sources: put never blocks; when full, the oldest
    item is discarded and counted in ``dropped``. A dropped item's ``discontinuity``
    mark moves to the next item, so temporal state downstream still resets."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.dropped = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self.mutex:
            if item is not EOS and self.maxsize > 0 and len(self.queue) >= self.maxsize:
                old = self.queue.popleft()
                self.dropped += 1
                heir = self.queue[0] if self.queue else item
                if getattr(old, "discontinuity", False) and hasattr(heir, "discontinuity"):
                    heir.discontinuity = True
            self.queue.append(item)
            self.unfinished_tasks += 1
            self.not_empty.notify()


class Stage(threading.Thread):
    """Runs ``work(item) -> iterable of outputs`` on each input until EOS, then
    ``finish() -> iterable``; a source stage has no input queue and runs ``produce()``."""

    def __init__(self, name: str, stop: threading.Event, inq: queue.Queue | None,
                 outq: queue.Queue | None) -> None:
        super().__init__(name=f"stream-derain-{name}", daemon=True)
        self.stop, self.inq, self.outq = stop, inq, outq
        self.stats = StageStats(name)
        self.error: BaseException | None = None

    # --- to override -------------------------------------------------------
    def produce(self) -> Iterator[Any]:
        raise NotImplementedError

    def work(self, item: Any) -> Iterable[Any]:
        return (item,)

    def finish(self) -> Iterable[Any]:
        return ()

    def close(self) -> None:
        """Always called last, also after an error or a stop (release resources)."""

    # --- machinery ---------------------------------------------------------
    def get(self) -> Any:
        t0 = time.perf_counter()
        self.stats.sample_queue(self.inq.qsize())
        while True:
            if self.stop.is_set():
                raise Stopped
            try:
                item = self.inq.get(timeout=POLL)
                self.stats.wait_in_s += time.perf_counter() - t0
                return item
            except queue.Empty:
                continue

    def put(self, item: Any) -> None:
        if self.outq is None:
            return
        t0 = time.perf_counter()
        while True:
            if self.stop.is_set():
                raise Stopped
            try:
                self.outq.put(item, timeout=POLL)
                self.stats.wait_out_s += time.perf_counter() - t0
                return
            except queue.Full:
                continue

    def _timed(self, it: Iterable[Any]) -> Iterator[Any]:
        """Iterate ``it``, counting time spent inside it as busy time."""
        iterator = iter(it)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.stats.busy_s += time.perf_counter() - t0
                return
            self.stats.busy_s += time.perf_counter() - t0
            yield item

    def _call(self, fn: Callable[..., Iterable[Any]], *args: Any) -> Iterable[Any]:
        """Call ``fn``, counting the call as busy time (iterating lazy outputs is counted by emit)."""
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.stats.busy_s += time.perf_counter() - t0

    def emit(self, outputs: Iterable[Any]) -> None:
        for out in self._timed(outputs):
            self.put(out)
            self.stats.items += 1

    def run(self) -> None:
        try:
            if self.inq is None:
                self.emit(self.produce())
            else:
                while (item := self.get()) is not EOS:
                    self.emit(self._call(self.work, item))
                self.emit(self._call(self.finish))
            self.put(EOS)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - the error slot re-raises it in the caller
            self.error = exc
            self.stop.set()
        finally:
            try:
                self.close()
            except BaseException as exc:  # noqa: BLE001
                if self.error is None:
                    self.error = exc
                    self.stop.set()


class IterSource(Stage):
    """Source stage over any iterator (a VideoReader's items, a live camera).
    Setting ``end`` ends the stream early but cleanly: EOS still flows downstream."""

    def __init__(self, name: str, stop: threading.Event, end: threading.Event, outq: queue.Queue,
                 items: Callable[[], Iterable[Any]], close: Callable[[], None] | None = None) -> None:
        super().__init__(name, stop, None, outq)
        self.end = end
        self._items, self._close = items, close

    def produce(self) -> Iterator[Any]:
        for item in self._items():
            if self.stop.is_set() or self.end.is_set():
                return
            yield item

    def close(self) -> None:
        if self._close is not None:
            self._close()


@dataclass
class PipelineResult:
    frames: int
    seconds: float
    interrupted: bool
    stages: list[StageStats]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Pipeline:
    """Owns the stages and their queues; :meth:`run` blocks until done.

    ``source_stop`` ends only the source (Ctrl-C: drain what is in flight and
    finalise the output); ``stop`` ends every stage at once (errors)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.source_stop = threading.Event()
        self.stages: list[Stage] = []

    def add(self, stage: Stage) -> Stage:
        self.stages.append(stage)
        return stage

    def _join(self, control: RunControl) -> None:
        for stage in self.stages:
            while stage.is_alive():
                stage.join(timeout=POLL)
                if control.is_set() and not self.source_stop.is_set():
                    self._stop_source()

    def _stop_source(self) -> None:
        log.warning("interrupted: finishing the frames in flight (Ctrl-C again to stop at once)")
        self.source_stop.set()

    def run(self, frames_of: Callable[[], int], control: RunControl | None = None) -> PipelineResult:
        """Run every stage to the end. ``control`` (None: one of its own) ends the run
        early when set, as Ctrl-C (KeyboardInterrupt in this thread) does: the source
        stops, the frames in flight are finished; a second Ctrl-C stops every stage."""
        control = control if control is not None else RunControl()
        t0 = time.perf_counter()
        for stage in self.stages:
            stage.start()
        try:
            self._join(control)
        except KeyboardInterrupt:
            control.set()
            if not self.source_stop.is_set():
                self._stop_source()
            try:
                self._join(control)
            except KeyboardInterrupt:
                self.stop.set()
                self._join(control)
        errors = [s.error for s in self.stages if s.error is not None]
        if errors:
            raise errors[0]
        return PipelineResult(frames_of(), time.perf_counter() - t0, control.is_set(),
                              [s.stats for s in self.stages])
