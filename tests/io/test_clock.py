"""Issue 30, items 2-5: the output clock (stream_derain.io.clock), one rule for every
container."""

from __future__ import annotations

from fractions import Fraction

import pytest

from stream_derain.io.clock import OutputClock

MS = Fraction(1, 1000)


class Packet:
    def __init__(self, pts, dts=None, duration=0, time_base=MS):
        self.pts, self.dts = pts, pts if dts is None else dts
        self.duration, self.time_base = duration, time_base


def frames(clock: OutputClock, pts: list, durations: list | None = None, tb=MS) -> list[int]:
    return [clock.frame(p, tb, (durations or [None] * len(pts))[i]) for i, p in enumerate(pts)]


@pytest.mark.parametrize("start", [-1000, 0, 1480, 10**9])
def test_the_first_frame_is_at_zero_whatever_the_source_start(start):
    clock = OutputClock(MS, Fraction(25))
    assert frames(clock, [start + 40 * i for i in range(5)]) == [0, 40, 80, 120, 160]


def test_frames_without_timestamps_get_the_frame_rate():
    clock = OutputClock(Fraction(1, 1200000), Fraction(25))
    assert frames(clock, [None] * 4, tb=Fraction(1, 1200000)) == [0, 48000, 96000, 144000]


def test_repeated_timestamps_take_the_frame_duration():
    """All timestamps 0 (an MKV with broken timestamps): one frame step each, not 1 tick."""
    clock = OutputClock(MS, Fraction(25))
    assert frames(clock, [0, 0, 0, 0], [40, 40, 40, 40]) == [0, 40, 80, 120]


def test_a_gap_is_kept_and_a_broken_jump_is_not():
    clock = OutputClock(MS, Fraction(25))
    assert frames(clock, [0, 40, 6040, 6080]) == [0, 40, 6040, 6080]
    clock = OutputClock(MS, Fraction(25))
    assert frames(clock, [0, 40, 40 + 2**31 * 1000, 120]) == [0, 40, 80, 120]


def test_durations_run_to_the_next_frame_shown_and_the_last_keeps_its_own():
    clock = OutputClock(MS, Fraction(25))
    frames(clock, [0, 40, 6040, 6080], [40, 40, 40, 33])
    assert clock.duration(40) == (True, 6000)  # the frame before the gap lasts until after it
    assert clock.duration(6080) == (False, None)  # the last: only at the end
    assert clock.duration(6080, final=True) == (True, 33)


def test_containers_without_vfr_count_frames():
    clock = OutputClock(MS, Fraction(25), cfr=True)
    assert clock.time_base == Fraction(1, 25)
    assert frames(clock, [1000, 1040, 1080, 1080, 1400]) == [0, 1, 2, 3, 10]


def test_copied_packets_move_with_the_video_and_early_ones_are_dropped():
    clock = OutputClock(MS, Fraction(25))
    frames(clock, [2000, 2040])
    audio = Packet(1990, duration=20)
    assert clock.shift(audio) and (audio.pts, audio.dts) == (-10, -10)  # overlaps the first frame: kept
    assert not clock.shift(Packet(1900, duration=20))  # ends before the first frame
    priming = Packet(1979, duration=21)  # ends exactly at the first frame (AAC priming): kept
    assert clock.shift(priming)
