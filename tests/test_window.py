"""The temporal window (stream_derain.window): slots at the start, the end and around
cuts, causal windows never reading ahead, packets in place, bounded memory, and the
scene-cut threshold against the repo's sample clips."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from stream_derain.catalog import default_offsets
from stream_derain.window import (
    SCENE_CUT_MAD,
    FrameWindow,
    scene_change,
    stack_slots,
    still_window,
    thumbnail,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CENTRED5, CAUSAL5 = default_offsets(5)["centred"], default_offsets(5)["causal"]


@dataclass
class Item:
    index: int
    image: np.ndarray
    discontinuity: bool = False


def frame(i: int, value: int | None = None, size: tuple[int, int] = (16, 24), **kw) -> Item:
    rng = np.random.default_rng(i)
    base = 100 if value is None else value
    img = np.clip(base + rng.integers(-4, 5, (*size, 3)), 0, 255).astype(np.uint8)
    return Item(i, img, **kw)


def run(window: FrameWindow, items: list) -> list[tuple[object, tuple[int, ...]]]:
    """(item, slot indices) of everything released, in order, the stream then ended."""
    out = [r for it in items for r in window.push(it)] + window.flush()
    return [(r.item, tuple(f.item.index for f in r.slots)) for r in out]


def slots_of(released: list) -> dict[int, tuple[int, ...]]:
    return {it.index: s for it, s in released if isinstance(it, Item)}


def test_centred_window_repeats_the_nearest_frame_at_start_and_end() -> None:
    got = slots_of(run(FrameWindow(CENTRED5), [frame(i) for i in range(6)]))
    assert got == {0: (0, 0, 1, 0, 2), 1: (1, 0, 2, 0, 3), 2: (2, 1, 3, 0, 4), 3: (3, 2, 4, 1, 5),
                   4: (4, 3, 5, 2, 5), 5: (5, 4, 5, 3, 5)}


def test_centred_window_waits_for_its_look_ahead_only() -> None:
    window = FrameWindow(CENTRED5)
    released = [[r.item.index for r in window.push(frame(i))] for i in range(5)]
    assert released == [[], [], [0], [1], [2]]
    assert [r.item.index for r in window.flush()] == [3, 4]


def test_causal_window_releases_at_once_and_never_reads_ahead() -> None:
    window = FrameWindow(CAUSAL5)
    for i in range(8):
        (ready,) = window.push(frame(i))
        assert ready.item.index == i
        assert [f.item.index for f in ready.slots] == [i, max(i - 1, 0), max(i - 2, 0), max(i - 3, 0),
                                                        max(i - 4, 0)]
    assert window.flush() == []


@pytest.mark.parametrize("cut", ["discontinuity", "index gap", "size", "scene", "asked"])
def test_a_frame_never_sees_across_a_cut(cut: str) -> None:
    first = [frame(i) for i in range(4)]
    nxt = {"discontinuity": frame(4, discontinuity=True), "index gap": frame(7),
           "size": frame(4, size=(20, 24)), "scene": frame(4, value=220), "asked": frame(4)}[cut]
    rest = [nxt] + [frame(nxt.index + 1 + i, size=nxt.image.shape[:2], value=220 if cut == "scene" else None)
                    for i in range(3)]
    window = FrameWindow(CENTRED5)
    out = []
    for it in first + rest:
        out += window.push(it, cut=cut == "asked" and it is nxt)
    out += window.flush()
    got = {r.item.index: {f.item.index for f in r.slots} for r in out}
    before, after = {it.index for it in first}, {it.index for it in rest}
    assert [r.item.index for r in out] == [it.index for it in first + rest]  # order kept
    assert all(got[i] <= before for i in before) and all(got[i] <= after for i in after)
    assert window.cuts == 1
    n = nxt.index
    assert got[3] == {1, 2, 3} and got[n] == {n, n + 1, n + 2}  # the nearest frame of its segment


def test_no_cut_within_a_moving_scene() -> None:
    window = FrameWindow(CENTRED5)
    run(window, [frame(i, value=100 + 3 * i) for i in range(10)])
    assert window.cuts == 0


def test_packets_keep_their_place() -> None:
    stream: list = []
    for i in range(5):
        stream += [f"packet{i}", frame(i)]
    stream.append("last packet")
    for offsets in (CENTRED5, CAUSAL5):
        released = run(FrameWindow(offsets), stream)
        assert [it for it, _ in released] == stream
        assert all(s == () for it, s in released if isinstance(it, str))


def test_memory_is_bounded() -> None:
    for offsets in (CENTRED5, CAUSAL5, (0, -1, 1)):
        window = FrameWindow(offsets)
        held = []
        for i in range(50):
            window.push(frame(i, size=(8, 8)))
            held.append(len(window))
        assert max(held) <= max(offsets) - min(offsets) + 1


def test_slot_stack_layout_and_still_windows() -> None:
    window = FrameWindow((0, -1, 1))
    items = [frame(i) for i in range(3)]
    ready = [r for it in items for r in window.push(it)] + window.flush()
    x = stack_slots([r.slots for r in ready])
    assert x.shape == (3, 16, 24, 9) and x.dtype == np.uint8
    assert np.array_equal(x[1, :, :, 0:3], items[1].image) and np.array_equal(x[1, :, :, 3:6], items[0].image)
    assert np.array_equal(x[1, :, :, 6:9], items[2].image)
    still = still_window(np.stack([items[0].image]), 5)
    assert still.shape == (1, 16, 24, 15)
    assert all(np.array_equal(still[0, :, :, 3 * j:3 * j + 3], items[0].image) for j in range(5))
    assert still_window(still[..., :3], 1).shape == (1, 16, 24, 3)


def test_the_target_must_be_slot_zero() -> None:
    with pytest.raises(ValueError, match="slot 0"):
        FrameWindow((-1, 0, 1))


def _decode(path: Path, frames: int) -> list[np.ndarray]:
    from stream_derain.io.video import VideoReader

    reader = VideoReader(path, 0, frames, copy_streams=False, hwaccel="none")
    try:
        return [it.image for it in reader.items() if hasattr(it, "image")]
    finally:
        reader.close()


def test_scene_cut_threshold_on_the_sample_clips() -> None:
    """Normal motion in the rainy samples never trips the threshold; a cut between them does."""
    import cv2

    names = ("rainy_cafe_table_360p.mp4", "rainy_launchpad_720p.mp4")
    clips = [_decode(SAMPLES / name, 40) for name in names]
    for images in clips:
        thumbs = [thumbnail(im) for im in images]
        worst = max(scene_change(a, b) for a, b in zip(thumbs, thumbs[1:]))
        assert worst < SCENE_CUT_MAD / 2, worst
        window = FrameWindow(CENTRED5)
        run(window, [Item(i, im) for i, im in enumerate(images)])
        assert window.cuts == 0
    cafe, launchpad = clips
    h, w = cafe[0].shape[:2]
    spliced = cafe[:10] + [cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in launchpad[:10]]
    window = FrameWindow(CENTRED5)
    released = slots_of(run(window, [Item(i, im) for i, im in enumerate(spliced)]))
    assert window.cuts == 1
    assert all(max(s) <= 9 for i, s in released.items() if i <= 9)
    assert all(min(s) >= 10 for i, s in released.items() if i >= 10)


def test_align_slots_aligns_each_distinct_neighbour_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame repeated in several slots (the nearest frame at a segment's end) is aligned
    once; a window of the target alone (a still) computes nothing; without ``align``
    stack_slots never aligns."""
    import stream_derain.window as window

    calls: list[int] = []

    def fake(images, mode, greys=None, offsets=None, pair=None):
        calls.append(len(images))
        assert offsets == [0, 1]  # each distinct frame's position from the target's
        assert mode == "flow"
        assert greys is not None and len(greys) == len(images)  # each frame's luma, kept
        return [images[0]] + [np.full_like(im, 7 + j) for j, im in enumerate(images[1:])]

    monkeypatch.setattr(window, "align_window", fake)
    items = [frame(i) for i in range(2)]
    w = FrameWindow(CENTRED5)
    ready = [r for it in items for r in w.push(it)] + w.flush()
    first = ready[0].slots  # frame 0: (0, 0, 1, 0, 1)
    assert [f.item.index for f in first] == [0, 0, 1, 0, 1]
    got = window.align_slots(first)
    assert calls == [2]  # the target and frame 1, once
    assert got[0] is items[0].image and got[1] is items[0].image and got[3] is items[0].image
    assert got[2] is got[4] and (got[2] == 7).all()
    x = stack_slots([first], align="flow")
    assert (x[0, :, :, 6:9] == 7).all() and np.array_equal(x[0, :, :, :3], items[0].image)
    assert stack_slots([first]).shape == x.shape and calls == [2, 2]  # align None: no call
    still = FrameWindow(CENTRED5)
    (lone,) = still.push(frame(9)) + still.flush()
    assert all(im is lone.item.image for im in window.align_slots(lone.slots)) and calls == [2, 2]
