"""Explicit alignment (stream_derain.align): flow composition, the chained mode's paths
through a window, the flows a stream's windows share (stream_derain.window), and the
cost model the manifest's MAC budget counts."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from stream_derain import align
from stream_derain.align import FLOWS, align_window, chain, compose
from stream_derain.catalog import default_offsets
from stream_derain.window import FrameWindow, stack_slots

CENTRED5, CAUSAL5 = default_offsets(5)["centred"], default_offsets(5)["causal"]


def scene(n: int = 5, step: int = 3, size: tuple[int, int] = (120, 160)) -> list[np.ndarray]:
    """A pan over a textured picture: frame i is the crop ``step * i`` pixels further right."""
    rng = np.random.default_rng(5)
    h, w = size
    noise = cv2.GaussianBlur(rng.random((h, w + step * n, 3)).astype(np.float32), (0, 0), 2.5)
    pic = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return [np.ascontiguousarray(pic[:, step * i:step * i + w]) for i in range(n)]


def test_compose_follows_the_first_flow_into_the_second() -> None:
    """a -> b moves 2 px right; b -> c is read where the first flow lands, so a flow that
    varies along x is sampled 2 px further on."""
    h, w = 8, 32
    first = np.zeros((h, w, 2), np.float32)
    first[..., 0] = 2.0
    second = np.zeros((h, w, 2), np.float32)
    second[..., 0] = np.arange(w, dtype=np.float32)[None, :] * 0.1
    second[..., 1] = 0.5
    got = compose(first, second)
    x = np.arange(w - 2, dtype=np.float32)
    assert np.allclose(got[:, :w - 2, 0], 2.0 + (x + 2.0) * 0.1, atol=1e-4)
    assert np.allclose(got[..., 1], 0.5)


@pytest.mark.parametrize(("offsets", "j", "path"), [
    (CENTRED5, 1, [0, 1]), (CENTRED5, 2, [0, 2]), (CENTRED5, 3, [0, 1, 3]), (CENTRED5, 4, [0, 2, 4]),
    (CAUSAL5, 4, [0, 1, 2, 3, 4]), ((0, -2), 1, None), ((0, 1, 3), 2, None),
])
def test_a_chain_walks_one_frame_at_a_time_or_not_at_all(offsets, j, path) -> None:
    assert chain(offsets, j) == path


@pytest.mark.parametrize("offsets", [CENTRED5, CAUSAL5], ids=["centred", "causal"])
def test_the_chained_flow_aligns_a_pan_as_well_as_the_direct_one(offsets) -> None:
    """Every neighbour of a 3 px/frame pan lands on the target: the composed flows (two
    steps away: 6 px, four: 12 px) within a grey level or so of the target, as the direct
    medium flow does, and far closer than the unaligned neighbour."""
    frames = scene(n=9)
    t = 4
    slots = [frames[t + o] for o in offsets]
    b = 16  # the warp replicates the border where a neighbour has no content
    for mode in ("flow-chain", "flow-medium"):
        out = align_window(slots, mode, offsets=offsets)
        assert out[0] is slots[0]
        for o, im, raw in zip(offsets[1:], out[1:], slots[1:]):
            err = np.abs(im.astype(int) - slots[0])[b:-b, b:-b].mean()
            before = np.abs(raw.astype(int) - slots[0])[b:-b, b:-b].mean()
            assert err < 2.0 and err < before / 5, (mode, o, err, before)


@pytest.mark.parametrize(("offsets", "flows_per_frame"),
                         [(CENTRED5, align.window_work("flow-chain", 5)[0]),
                          (CAUSAL5, align.window_work("flow-chain", 5, causal=True)[0])],
                         ids=["centred", "causal"])
def test_a_stream_computes_each_consecutive_flow_once(monkeypatch, offsets, flows_per_frame) -> None:
    """Through the window, the chained mode computes the flow of each ordered pair of
    consecutive frames once for the whole stream (centred: both ways; causal: backwards
    only), where the direct mode computes K - 1 flows a window."""
    frames = scene(n=10)
    calls: list[tuple[int, int]] = []
    ids = {align.grey(f, 1.0).tobytes(): i for i, f in enumerate(frames)}  # frames below 320 px: full size

    class Counting:
        def __init__(self, dis):
            self.dis = dis

        def calc(self, a, b, flow):
            calls.append((ids[a.tobytes()], ids[b.tobytes()]))
            return self.dis.calc(a, b, flow)

    real_create = align.Flow.create
    monkeypatch.setattr(align.Flow, "create", lambda self: Counting(real_create(self)))
    for mode in ("flow-chain", "flow"):
        calls.clear()
        w = FrameWindow(offsets, scene_cut=None)
        ready = []
        for i, f in enumerate(frames):
            ready += w.push(SimpleNamespace(image=f, index=i))
        ready += w.flush()
        for r in ready:
            stack_slots([r.slots], mode)
        n = len(frames)
        if mode == "flow-chain":
            assert len(calls) == len(set(calls)) == flows_per_frame * (n - 1), calls
            assert all(abs(a - b) == 1 for a, b in calls)
        else:  # the direct flow: one per distinct neighbour of every window
            assert len(calls) == sum(len({f.position for f in r.slots}) - 1 for r in ready) > 3 * (n - 2)


def test_the_chained_mode_is_a_manifest_align_mode() -> None:
    from stream_derain.catalog import ALIGN_MODES

    assert "flow-chain" in ALIGN_MODES and FLOWS["flow-chain"].chain
    assert not FLOWS["flow"].chain and not FLOWS["flow-medium"].chain


@pytest.mark.parametrize("mode", ["flow-chain", "flow"])
@pytest.mark.parametrize("causal", [False, True], ids=["centred", "causal"])
def test_the_cost_model_counts_the_compositions_and_warps_a_window_does(monkeypatch, mode, causal) -> None:
    """align.window_work (what align.macs_per_pixel multiplies out) against the calls one
    full window makes: each composition is one warp of a flow, each neighbour one warp."""
    offsets = CAUSAL5 if causal else CENTRED5
    frames = scene(n=5)
    target = -min(offsets)
    slots = [frames[target + o] for o in offsets]
    counts = {"compose": 0, "warp": 0}

    def counted(name, fn):
        def call(*args):
            counts[name] += 1
            return fn(*args)
        return call

    monkeypatch.setattr(align, "compose", counted("compose", align.compose))
    monkeypatch.setattr(align, "warp", counted("warp", align.warp))
    align_window(slots, mode, offsets=offsets)
    _, composes, warps = align.window_work(mode, 5, causal)
    assert counts["compose"] == composes
    assert counts["warp"] == composes + warps


def test_the_cost_model_orders_the_modes_and_falls_with_the_frame_size() -> None:
    """A finer preset costs more, a causal chain less than a centred one, and a flow at a
    fixed side costs less per pixel of a larger frame (the warps do not)."""
    macs = align.macs_per_pixel
    assert macs("flow-medium", 360, 640, 5) > macs("flow-chain", 360, 640, 5) > macs("flow", 360, 640, 5)
    assert macs("flow-chain", 360, 640, 5, causal=True) < macs("flow-chain", 360, 640, 5)
    sizes = [macs("flow-chain", h, w, 5) for h, w in ((180, 320), (360, 640), (1080, 1920), (2160, 3840))]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] > 4 * (10 + 14)  # the warps stay per pixel
