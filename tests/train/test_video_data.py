"""Training windows of the multi-frame student: slots, rain, rain-free windows, teacher windows."""

from __future__ import annotations

import numpy as np
import pytest

from stream_derain.model.temporal import OFFSETS
from stream_derain.train.video_data import (
    TeacherClip,
    WindowRecipe,
    batch_windows,
    clip_window,
    load_mined_rain,
    still_window,
    teacher_window,
    windows,
)


def _numbered_clip(n: int = 20, size: int = 64) -> list[np.ndarray]:
    """Frames whose every pixel holds the frame's index (times 10): slots can be read back."""
    return [np.full((size, size, 3), 10 * i, np.uint8) for i in range(n)]


@pytest.mark.parametrize("mode", ["centred", "causal"])
def test_clip_window_slots_follow_the_offsets(mode):
    offsets = OFFSETS[5][mode]
    rng = np.random.default_rng(1)
    for _ in range(20):
        slots, stride = clip_window(_numbered_clip(), offsets, 32, 3, rng)
        index = [round(float(s.mean()) * 255 / 10) for s in slots]
        assert [i - index[0] for i in index] == [o * stride for o in offsets]


def test_windows_rain_free_share_and_rain_adds_light():
    rng = np.random.default_rng(0)
    stills = [np.random.default_rng(i).random((96, 96, 3), dtype=np.float32) * 0.5 for i in range(3)]
    recipe = WindowRecipe(frames=3, crop=48, still_share=1.0, rain_free_share=0.5, compress_share=0.0)
    stream = windows([], stills, recipe, None, rng)
    x, y = batch_windows(stream, 40)
    assert x.shape == (40, 9, 48, 48) and y.shape == (40, 3, 48, 48)
    added = (x[:, :3] - y).reshape(40, -1)
    free = np.abs(added).max(axis=1) == 0
    assert 8 <= free.sum() <= 32  # about half rain-free: target = input
    rainy = added[~free]
    assert (rainy.mean(axis=1) > 0).all()  # rain brightens the target frame


def test_a_fixed_camera_moves_nothing_but_its_noise():
    """``static_share``: still windows from a fixed camera differ frame to frame by sensor
    noise only (a few levels), where a moving camera's differ by the scene's edges."""
    rng = np.random.default_rng(3)
    src = np.random.default_rng(0).random((96, 96, 3), dtype=np.float32)
    fixed = still_window(src, None, OFFSETS[5]["centred"], 64, rng, fixed=True)
    moving = still_window(src, None, OFFSETS[5]["centred"], 64, np.random.default_rng(4))
    step = [np.abs(f - fixed[0]) for f in fixed[1:]]
    assert all(0 < d.mean() < 3 / 255 for d in step)  # noise: sigma 0.3-2 levels
    assert np.abs(np.mean([f - fixed[0] for f in fixed[1:]], axis=0)).mean() < 1.5 / 255  # no motion
    assert np.mean([np.abs(f - moving[0]).mean() for f in moving[1:]]) > 10 / 255
    recipe = WindowRecipe(frames=5, crop=48, still_share=1.0, static_share=1.0, rain_free_share=1.0,
                          compress_share=0.0)
    x, y = batch_windows(windows([], [src], recipe, None, np.random.default_rng(5)), 4)
    assert np.array_equal(x[:, :3], y)  # rain-free: the noisy target frame is its own target
    assert np.median(np.abs(x[:, 3:] - np.tile(y, (1, 4, 1, 1)))) < 3 / 255  # only a crossing object moves


def test_teacher_window_targets_the_teacher_and_stays_in_the_trainable_part():
    frames = _numbered_clip(6, 40)
    teacher = {4: np.full((40, 40, 3), 200, np.uint8)}
    x, y = teacher_window(TeacherClip(frames, teacher), OFFSETS[5]["centred"], 32, np.random.default_rng(0))
    assert np.allclose(y, 200 / 255)
    index = [round(float(x[..., 3 * j:3 * j + 3].mean()) * 255 / 10) for j in range(5)]
    assert index == [4, 3, 5, 2, 5]  # slot +2 (frame 6) lies past the part: the last frame repeats


def test_real_windows_without_teacher_outputs_only_serve_head_distillation(tmp_path):
    """With no teacher cache, a real window's target is its own frame (load_real_clips):
    only a head learning another head's logits may train on it."""
    pytest.importorskip("torch")
    from stream_derain.errors import ConfigError
    from stream_derain.io.images import write_rgb
    from stream_derain.train.temporal import TemporalTrainConfig
    from stream_derain.train.video_data import load_real_clips

    with pytest.raises(ConfigError, match="head distillation"):
        TemporalTrainConfig(teacher_share=0.25, teacher_cache="", head=8)
    TemporalTrainConfig(teacher_share=0.25, teacher_cache="", head=8, head_teacher="teacher.pt")
    clip = tmp_path / "real" / "clip"
    clip.mkdir(parents=True)
    for i in range(10):
        write_rgb(clip / f"{i:05d}.png", np.full((48, 64, 3), 10 * i, np.uint8))
    (real,) = load_real_clips({"clip": "real/clip"}, tmp_path, 0.6)
    assert len(real.frames) == 6 and all(real.targets[i] is real.frames[i] for i in range(6))


def _streak_clip(n: int, size: int = 96) -> list[np.ndarray]:
    """A still textured scene with a dozen short bright streaks in new places every frame."""
    import cv2

    rng = np.random.default_rng(3)
    noise = rng.random((size // 8, size // 8, 3), dtype=np.float32)
    smooth = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    scene = (smooth * 150 + 40).astype(np.uint8)
    frames = []
    for _ in range(n):
        f = scene.copy()
        for _ in range(12):
            y, x = int(rng.integers(8, size - 24)), int(rng.integers(8, size - 8))
            f[y:y + 12, x:x + 2] = np.minimum(scene[y:y + 12, x:x + 2].astype(int) + 60, 255)
        frames.append(f)
    return frames


def test_windows_with_mined_rain_add_the_real_layers_to_the_clean_frames(tmp_path):
    frames = _streak_clip(13)
    from stream_derain.io.images import write_rgb

    clip = tmp_path / "real" / "clip"
    clip.mkdir(parents=True)
    for i, f in enumerate(frames):
        write_rgb(clip / f"{i:05d}.png", f)
    mined = load_mined_rain(["real/clip"], tmp_path, 1.0)
    assert len(mined) == 1 and len(mined[0]) == 9
    stills = [np.random.default_rng(i).random((96, 96, 3), dtype=np.float32) * 0.5 for i in range(3)]
    recipe = WindowRecipe(frames=5, crop=48, still_share=1.0, rain_free_share=0.0, compress_share=0.0,
                          mined_share=1.0)
    x, y = batch_windows(windows([], stills, recipe, None, np.random.default_rng(1), mined=mined), 8)
    added = x[:, :3] - y
    assert (added >= -1e-6).all() and (added.reshape(8, -1).max(axis=1) > 0.1).all()
    # only streak light: a few percent of the pixels, never a veil
    assert ((added.max(axis=1) > 0).mean(axis=(1, 2)) < 0.15).all()
