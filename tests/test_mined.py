"""Rain mined from real video: what is kept, what is dropped, how windows take it."""

from __future__ import annotations

import cv2
import numpy as np

from stream_derain.model.temporal import OFFSETS
from stream_derain.synth.mined import composite, mine_layers, mined_window


def _scene(size: int = 96, seed: int = 0) -> np.ndarray:
    """A textured background (smooth blobs, so that flow finds it)."""
    noise = np.random.default_rng(seed).random((size // 8, size // 8, 3), dtype=np.float32)
    smooth = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return (smooth * 150 + 40).astype(np.uint8)


def _rainy_clip(n: int = 9, size: int = 96) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A still scene with a short bright streak in a new place every frame: (frames, streak masks)."""
    rng = np.random.default_rng(3)
    scene = _scene(size)
    frames, masks = [], []
    for _ in range(n):
        mask = np.zeros((size, size), np.uint8)
        y, x = int(rng.integers(8, size - 24)), int(rng.integers(8, size - 8))
        mask[y:y + 12, x:x + 2] = 1
        lit = np.minimum(scene.astype(int) + 60, 255)
        frames.append(np.where(mask[..., None] > 0, lit, scene).astype(np.uint8))
        masks.append(mask)
    return frames, masks


def test_mining_keeps_each_frames_transient_light_and_nothing_of_the_scene():
    frames, masks = _rainy_clip()
    layers = mine_layers(frames)
    assert len(layers) == len(frames) - 4  # frames with two neighbours each side
    for t, layer in enumerate(layers, start=2):
        streak = masks[t] > 0
        assert layer.shape == frames[t].shape and layer.dtype == np.float32
        assert abs(layer[streak].mean() - 60 / 255) < 3 / 255  # the streak's own light
        assert layer[streak].min() > 45 / 255
        assert np.abs(layer[~streak]).max() == 0  # the scene is not rain


def test_mining_a_rain_free_clip_with_motion_finds_no_rain():
    scene = _scene(128, seed=5)
    frames = [np.ascontiguousarray(np.roll(scene, 2 * i, axis=1)[:, 16:112]) for i in range(8)]
    layers = mine_layers(frames)
    assert max((la.max(axis=2) > 0).mean() for la in layers) < 0.01


def test_mined_windows_take_consecutive_layers_in_slot_order_with_one_gain():
    layers = [np.full((40, 50, 3), (i + 1) / 100, np.float32) for i in range(12)]  # layer i holds i + 1
    rng = np.random.default_rng(0)
    for mode in ("centred", "causal"):
        offsets = OFFSETS[5][mode]
        for _ in range(10):
            out = mined_window(layers, offsets, 32, rng)
            assert all(o.shape == (32, 32, 3) for o in out)
            values = np.array([float(o.mean()) for o in out]) * 100
            gain = (values[1] - values[0]) / offsets[1]  # one gain scales every slot
            assert 0.7 <= gain <= 1.5
            assert np.allclose((values - values[0]) / gain, offsets, atol=1e-3)
            target = round(values[0] / gain) - 1
            assert 0 <= target + min(offsets) and target + max(offsets) < 12
    clean = [np.full((4, 4, 3), 0.9, np.float32)] * 2
    assert np.allclose(composite(clean, [np.full((4, 4, 3), 0.3, np.float32)] * 2)[0], 1.0)
