"""The CPU temporal smoother: flicker falls, moving objects leave no trail, cuts reset."""

from __future__ import annotations

import numpy as np
import pytest
from smooth_frames import flicker, moving_square, texture

from stream_derain.errors import ConfigError, InputError
from stream_derain.flicker import warping_error
from stream_derain.smooth import TemporalSmoother, make_smoother


def run(smoother: TemporalSmoother, frames: list[np.ndarray]) -> list[np.ndarray]:
    return [smoother(f, f) for f in frames]


def test_static_flicker_is_smoothed(rng: np.random.Generator) -> None:
    bg = texture(rng)
    noisy = [flicker(bg, rng, 6.0) for _ in range(12)]
    out = run(TemporalSmoother(0.7), noisy)
    e_in, e_out = warping_error(noisy), warping_error(out)
    assert e_out < 0.4 * e_in
    err_in = np.abs(noisy[-1].astype(float) - bg).mean()
    err_out = np.abs(out[-1].astype(float) - bg).mean()
    assert err_out < 0.7 * err_in  # averaging also brings the frames closer to the truth


def test_moving_square_leaves_no_trail(rng: np.random.Generator) -> None:
    bg = texture(rng, grain=4.0)
    patch = np.clip(texture(rng, 32, 32, grain=1.5).astype(int) + 40, 0, 255).astype(np.uint8)
    clean, corners = moving_square(bg, patch, n=10, step=8)
    noisy = [flicker(f, rng, 3.0) for f in clean]
    out = run(TemporalSmoother(0.9), noisy)
    for t in range(3, 10):
        y, x = corners[t - 2]
        x_now = corners[t][1]
        # the strip the square covered two frames ago and has left since
        old = (slice(y + 2, y + 30), slice(x + 2, x_now - 2))
        ghost = np.abs(out[t][old].astype(float) - bg[old]).mean()
        assert ghost < 6.0, f"frame {t}: trail of {ghost:.1f} levels where the square was"
        # the square itself is kept (a little softer from resampling: noise alone is ~2.4)
        now = (slice(y + 2, y + 30), slice(x_now + 2, x_now + 30))
        assert np.abs(out[t][now].astype(float) - patch[2:30, 2:30]).mean() < 8.0


def test_trail_check_detects_ghosts(rng: np.random.Generator) -> None:
    """Without its confidence terms the same filter does leave a trail (the test above is
    not vacuous)."""
    bg = texture(rng, grain=4.0)
    patch = np.clip(texture(rng, 32, 32, grain=1.5).astype(int) + 40, 0, 255).astype(np.uint8)
    clean, corners = moving_square(bg, patch, n=6, step=8)
    out = run(TemporalSmoother(0.9, photo_sigma=100.0, fb_tol=100.0), clean)
    (y, x), x_now = corners[3], corners[5][1]
    old = (slice(y + 2, y + 30), slice(x + 2, x_now - 2))
    assert np.abs(out[5][old].astype(float) - bg[old]).mean() > 15.0


def test_scene_cut_resets(rng: np.random.Generator) -> None:
    a, b = texture(rng), np.clip(texture(rng).astype(int) // 2 + 120, 0, 255).astype(np.uint8)
    smoother = TemporalSmoother(0.8)
    run(smoother, [flicker(a, rng, 4.0) for _ in range(5)])
    cut = flicker(b, rng, 4.0)
    assert np.array_equal(smoother(cut, cut), cut)
    assert smoother.resets == 1
    nxt = flicker(b, rng, 4.0)
    assert not np.array_equal(smoother(nxt, nxt), nxt)  # history again after the cut


def test_reset_drops_history(rng: np.random.Generator) -> None:
    bg = texture(rng)
    smoother = TemporalSmoother(0.8)
    run(smoother, [flicker(bg, rng, 4.0) for _ in range(4)])
    smoother.reset()
    f = flicker(bg, rng, 4.0)
    assert np.array_equal(smoother(f, f), f)


def test_strength_zero_is_identity(rng: np.random.Generator) -> None:
    smoother = TemporalSmoother(0.0)
    frames = [flicker(texture(rng), rng, 5.0) for _ in range(3)]
    assert all(np.array_equal(smoother(f, f), f) for f in frames)


def test_size_change_and_odd_sizes(rng: np.random.Generator) -> None:
    smoother = TemporalSmoother(0.7)
    for shape in ((61, 83), (61, 83), (30, 20), (30, 20), (6, 5)):
        f = texture(rng, *shape)
        assert smoother(f, f).shape == f.shape


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        TemporalSmoother(1.5)
    with pytest.raises(ConfigError, match="unknown smoother tuning"):
        TemporalSmoother(0.5, photo_sgima=0.1)
    with pytest.raises(InputError):
        TemporalSmoother()(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32))


def test_make_smoother_cpu() -> None:
    s = make_smoother(0.4, "cpu", scale=2)
    assert isinstance(s, TemporalSmoother) and s.cfg.strength == 0.4 and s.cfg.scale == 2


def streaky(bg: np.ndarray, rng: np.random.Generator, gain: float) -> tuple[np.ndarray, np.ndarray]:
    """(rainy, derained): bright vertical streaks on ``bg``; the derained frame keeps
    ``gain`` of each streak (remnant rain at new places every frame)."""
    streaks = np.zeros(bg.shape[:2], np.float32)
    for _ in range(40):
        y, x = int(rng.integers(0, bg.shape[0] - 20)), int(rng.integers(0, bg.shape[1] - 3))
        streaks[y:y + 20, x:x + 3] = 80.0
    add = lambda g: np.clip(bg + g * streaks[..., None], 0, 255).astype(np.uint8)  # noqa: E731
    return add(1.0), add(gain)


def test_remnant_rain_where_rain_was_removed_is_smoothed_more(rng: np.random.Generator) -> None:
    bg = texture(rng)
    pairs = [streaky(bg, rng, 0.4) for _ in range(10)]
    outs = {}
    for relax in (0.0, 1.0):
        smoother = TemporalSmoother(0.8, rain_relax=relax)
        outs[relax] = [smoother(d, r) for r, d in pairs]
    derained = [d for _, d in pairs]
    e_off, e_on = warping_error(outs[0.0]), warping_error(outs[1.0])
    assert e_on < 0.7 * e_off < 0.7 * warping_error(derained)
    err = {k: np.abs(v[-1].astype(float) - bg).mean() for k, v in outs.items()}
    assert err[1.0] < err[0.0]  # closer to the clean background, not just steadier


def test_opencv_thread_setting_is_restored(rng: np.random.Generator) -> None:
    import cv2

    before = cv2.getNumThreads()
    smoother = TemporalSmoother(0.8, cv_threads=1)
    for _ in range(2):
        f = flicker(texture(rng), rng, 3.0)
        smoother(f, f)
    assert cv2.getNumThreads() == before
