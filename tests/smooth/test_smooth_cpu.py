"""The CPU temporal smoother (v3): remnant rain flicker falls, clean video and texture
pass unchanged, moving objects leave no trail, cuts and resets drop the history."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from smooth_frames import H, W, flicker, moving_square, rain_pair, texture

from stream_derain.errors import ConfigError, InputError
from stream_derain.flicker import laplacian_energy, warping_error
from stream_derain.metrics import psnr
from stream_derain.smooth import TemporalSmoother, make_smoother


def run(smoother: TemporalSmoother, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Smoothed frames of (rainy, derained) pairs."""
    return [smoother(d, r) for r, d in pairs]


def pan(rng: np.random.Generator, n: int, step: float, grain: float) -> list[np.ndarray]:
    """A texture panning right by ``step`` (sub-pixel) px per frame: HxWx3 uint8 frames."""
    big = texture(rng, H + 8, W + int(step * n) + 8, grain=grain)
    m = lambda i: np.float32([[1, 0, -step * i], [0, 1, 0]])  # noqa: E731
    shifted = [cv2.warpAffine(big, m(i), (W + 4, H + 4), flags=cv2.INTER_CUBIC) for i in range(n)]
    return [f[2:H + 2, 2:W + 2].copy() for f in shifted]


def test_static_remnant_rain_is_smoothed(rng: np.random.Generator) -> None:
    bg = texture(rng)
    pairs = [rain_pair(bg, rng, 0.4) for _ in range(12)]
    derained = [d for _, d in pairs]
    out = run(TemporalSmoother(), pairs)
    assert warping_error(out) < 0.5 * warping_error(derained)
    err = lambda f: np.abs(f.astype(float) - bg).mean()  # noqa: E731
    assert np.mean([err(f) for f in out[1:]]) < 0.8 * np.mean([err(f) for f in derained[1:]])


def test_rain_free_moving_clip_passes_unchanged(rng: np.random.Generator) -> None:
    """No rain removed (the network's output differs from its input by noise only): the
    smoother leaves the per-frame output alone, even on a moving, textured clip."""
    clean, _ = moving_square(texture(rng, grain=1.5), texture(rng, 32, 32, grain=1.0), n=10, step=6)
    frames = pan(rng, 10, 2.3, 1.2)
    for f, c in zip(frames, clean):
        f[40:72] = c[40:72]
    derained = [flicker(f, rng, 2.0) for f in frames]
    smoother = TemporalSmoother()
    out = [smoother(d, f) for d, f in zip(derained, frames)]
    assert min(psnr(o, d) for o, d in zip(out, derained)) >= 45.0


def test_textured_pan_keeps_its_texture(rng: np.random.Generator) -> None:
    """Fine texture panning by sub-pixel steps under rain: the scene's detail (Laplacian
    energy away from the streaks) is that of the per-frame output, while remnants fall."""
    frames = pan(rng, 12, 1.7, 0.8)
    pairs = [rain_pair(f, rng, 0.4, n=25) for f in frames]
    out = run(TemporalSmoother(), pairs)
    derained = [d for _, d in pairs]
    assert laplacian_energy(out[1:]) >= 0.9 * laplacian_energy(frames[1:])
    assert laplacian_energy(out[1:]) >= 0.95 * laplacian_energy(derained[1:])  # issue 12's detail ratio
    for (r, d), o, f in zip(pairs[1:], out[1:], frames[1:]):
        dry = cv2.erode((np.abs(r.astype(int) - f).max(axis=2) == 0).astype(np.uint8), np.ones((9, 9)))
        assert dry.mean() > 0.2
        lap = lambda img: cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32), -1)  # noqa: E731
        assert (lap(o) ** 2)[dry > 0].mean() >= 0.95 * (lap(d) ** 2)[dry > 0].mean()
    assert warping_error(out) < 0.8 * warping_error(derained)


def dense_rain_pan(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fine texture panning by 1.3 px/frame under dense rain that the "network" removes
    completely: (rainy, derained) pairs whose derained frames are the clean pan."""
    return [rain_pair(f, rng, 0.0, n=200) for f in pan(rng, 10, 1.3, 0.7)]


def test_perfect_removal_is_left_alone(rng: np.random.Generator) -> None:
    """Rain removed everywhere and completely: nothing flickers, so the smoother must not
    add the (misaligned) past: flicker and detail stay those of the per-frame output. A
    filter that relaxes its photometric test for brightening too raises E_warp by ~20% here."""
    pairs = dense_rain_pan(rng)
    derained = [d for _, d in pairs]
    out = run(TemporalSmoother(1.0), pairs)
    assert warping_error(out) <= 1.08 * warping_error(derained)
    assert laplacian_energy(out[1:]) >= 0.97 * laplacian_energy(derained[1:])


def test_high_band_is_the_current_frames(rng: np.random.Generator) -> None:
    """With its confidence terms and bound off, the filter still takes only the low band
    from the past: fine texture keeps most of its Laplacian energy (a full-band blend of
    the warped previous frame keeps ~0.75 of it here)."""
    pairs = dense_rain_pan(rng)
    loose = TemporalSmoother(1.0, photo_sigma=100.0, fb_tol=100.0, bound_gain=100.0, rain_eps=1e-4)
    out = run(loose, pairs)
    changed = np.mean([np.abs(o.astype(int) - d).mean() for o, (_, d) in zip(out[1:], pairs[1:])])
    assert changed > 2.0  # the loose filter does blend
    assert laplacian_energy(out[1:]) >= 0.88 * laplacian_energy([d for _, d in pairs[1:]])


def square_clip(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, list, list]:
    bg = texture(rng, grain=4.0)
    patch = np.clip(texture(rng, 32, 32, grain=1.5).astype(int) + 40, 0, 255).astype(np.uint8)
    clean, corners = moving_square(bg, patch, n=n, step=8)
    return bg, patch, clean, corners


def test_moving_square_leaves_no_trail(rng: np.random.Generator) -> None:
    bg, patch, clean, corners = square_clip(rng, 10)
    out = run(TemporalSmoother(1.0), [rain_pair(f, rng, 0.4, n=30) for f in clean])
    for t in range(3, 10):
        y, x = corners[t - 2]
        x_now = corners[t][1]
        old = (slice(y + 2, y + 30), slice(x + 2, x_now - 2))  # left by the square since t-2
        ghost = np.median(np.abs(out[t][old].astype(float) - bg[old]))
        assert ghost < 3.0, f"frame {t}: trail of {ghost:.1f} levels where the square was"
        now = (slice(y + 2, y + 30), slice(x_now + 2, x_now + 30))
        assert np.median(np.abs(out[t][now].astype(float) - patch[2:30, 2:30])) < 3.0


def test_trail_check_detects_ghosts(rng: np.random.Generator) -> None:
    """Without its confidence terms and its bound the same filter does leave a trail
    where new rain falls (the test above is not vacuous)."""
    bg, _, clean, corners = square_clip(rng, 6)
    loose = TemporalSmoother(1.0, photo_sigma=100.0, fb_tol=100.0, bound_gain=100.0)
    out = run(loose, [rain_pair(f, rng, 0.4, n=150) for f in clean])
    (y, x), x_now = corners[4], corners[5][1]
    old = (slice(y + 2, y + 30), slice(x + 2, x_now - 2))
    assert np.abs(out[5][old].astype(float) - bg[old]).mean() > 8.0


def test_change_is_bounded_by_the_removed_rain(rng: np.random.Generator) -> None:
    """Where the network removed nothing the output is the per-frame output (to a level)."""
    bg = texture(rng)
    pairs = [rain_pair(bg, rng, 0.4) for _ in range(6)]
    pairs = [(np.where(np.arange(W)[None, :, None] < W // 2, r, d), d) for r, d in pairs]  # rain left only
    out = run(TemporalSmoother(1.0), pairs)
    right = slice(W // 2 + 8, W)
    assert max(np.abs(o[:, right].astype(int) - d[:, right]).max() for o, (_, d) in zip(out, pairs)) <= 1
    left = slice(0, W // 2 - 8)
    assert any(np.abs(o[:, left].astype(int) - d[:, left]).max() > 10 for o, (_, d) in zip(out, pairs))


def test_scene_cut_resets(rng: np.random.Generator) -> None:
    a, b = texture(rng), np.clip(texture(rng).astype(int) // 2 + 120, 0, 255).astype(np.uint8)
    smoother = TemporalSmoother()
    run(smoother, [rain_pair(a, rng, 0.4) for _ in range(5)])
    r, d = rain_pair(b, rng, 0.4)
    assert np.array_equal(smoother(d, r), d)
    assert smoother.resets == 1
    r, d = rain_pair(b, rng, 0.4)
    assert not np.array_equal(smoother(d, r), d)  # history again after the cut


def test_reset_drops_history(rng: np.random.Generator) -> None:
    bg = texture(rng)
    smoother = TemporalSmoother()
    run(smoother, [rain_pair(bg, rng, 0.4) for _ in range(4)])
    smoother.reset()
    r, d = rain_pair(bg, rng, 0.4)
    assert np.array_equal(smoother(d, r), d)
    r, d = rain_pair(bg, rng, 0.4)
    assert not np.array_equal(smoother(d, r), d)


def test_strength_zero_is_identity(rng: np.random.Generator) -> None:
    smoother = TemporalSmoother(0.0)
    pairs = [rain_pair(texture(rng), rng, 0.4) for _ in range(3)]
    assert all(np.array_equal(smoother(d, r), d) for r, d in pairs)


def test_size_change_and_odd_sizes(rng: np.random.Generator) -> None:
    smoother = TemporalSmoother()
    for shape in ((61, 83), (61, 83), (30, 20), (30, 20), (6, 5), (6, 5), (1, 9), (1, 9)):
        f = texture(rng, *shape)
        r = np.clip(f.astype(int) + 20, 0, 255).astype(np.uint8)
        assert smoother(f, r).shape == f.shape


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        TemporalSmoother(1.5)
    with pytest.raises(ConfigError, match="unknown smoother tuning"):
        TemporalSmoother(0.5, photo_sgima=0.1)
    with pytest.raises(ConfigError):
        TemporalSmoother(0.5, rain_eps=0.0)
    with pytest.raises(InputError):
        TemporalSmoother()(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32))


def test_make_smoother_cpu() -> None:
    s = make_smoother(0.4, "cpu", scale=2)
    assert isinstance(s, TemporalSmoother) and s.cfg.strength == 0.4 and s.cfg.scale == 2


def test_opencv_thread_setting_is_restored(rng: np.random.Generator) -> None:
    before = cv2.getNumThreads()
    smoother = TemporalSmoother(cv_threads=1)
    for r, d in [rain_pair(texture(rng), rng, 0.4) for _ in range(2)]:
        smoother(d, r)
    assert cv2.getNumThreads() == before
