"""Issue 27: the run owns its interrupt state. A library call stops as the command line
does: Ctrl-C (or the caller's own RunControl) finishes the frames in flight, finalises
a playable file and returns a result marked interrupted; no module-level flag."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from stream_derain import pipeline
from stream_derain.backends.base import Backend
from stream_derain.derain import DerainConfig, derain
from stream_derain.engine_spec import EngineSpec
from stream_derain.pipeline import RunControl, sigint_sets


class Slow(Backend):
    """Returns its input, a little later: a backend slower than the file."""

    name = "onnxruntime"

    def activate(self) -> None:
        pass

    def run(self, x: np.ndarray) -> np.ndarray:
        time.sleep(0.03)
        return x


def frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def config(src: Path, out: Path) -> DerainConfig:
    return DerainConfig(input=src, output=out, engine=EngineSpec(smooth=False))


def test_sigint_ends_a_library_call_with_a_playable_file(make_clip, tiny_model, tmp_path: Path) -> None:
    src, out = make_clip("long.mp4", frames=80), tmp_path / "out.mp4"
    sent: list[int] = []

    def progress(done: int, total: int) -> None:  # the encoder's thread: the signal goes to the main one
        if done >= 3 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    with Slow(tiny_model, "fp32") as be:
        path, result = derain(config(src, out), progress, backend=be)
    assert signal.getsignal(signal.SIGINT) is before  # the call's handler is put back
    assert sent and result.interrupted and path == out
    assert 0 < result.frames < 80 and frames_in(out) == result.frames


def test_the_callers_control_stops_the_run_from_another_thread(make_clip, tiny_model, tmp_path: Path) -> None:
    src, out = make_clip("long.mp4", frames=80), tmp_path / "out.mp4"
    control = RunControl()
    before = signal.getsignal(signal.SIGINT)

    def progress(done: int, total: int) -> None:
        if done >= 3:
            control.set()

    with Slow(tiny_model, "fp32") as be:
        _, result = derain(config(src, out), progress, backend=be, control=control)
    assert signal.getsignal(signal.SIGINT) is before  # a control of the caller's: no handler
    assert result.interrupted and 0 < frames_in(out) < 80


def test_sigint_sets_changes_nothing_off_the_main_thread() -> None:
    seen: list[Any] = []
    control = RunControl()

    def other() -> None:
        with sigint_sets(control):
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [before] and not control.is_set()


def test_no_module_level_interrupt_flag() -> None:
    assert not [n for n in vars(pipeline) if "interrupt" in n.lower()]
