"""The rain synthesiser v2: light-only rain, rain-free pairs, streak layers, coherent video."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from stream_derain import synth
from stream_derain.errors import ConfigError


def textured(rng: np.random.Generator, h: int = 96, w: int = 128) -> np.ndarray:
    base = cv2.resize(rng.uniform(0.1, 0.9, (12, 16, 3)).astype(np.float32), (w, h))
    return np.clip(base + rng.normal(0, 0.03, (h, w, 3)).astype(np.float32), 0, 1)


@pytest.fixture
def bank_dir(tmp_path):
    """Three small streak layers (white streaks on black) and one file that does not decode."""
    rng = np.random.default_rng(0)
    for i in range(3):
        layer = np.zeros((80, 120), np.uint8)
        for _ in range(40):
            x, y = int(rng.integers(0, 120)), int(rng.integers(0, 80))
            cv2.line(layer, (x, y), (x + 2, y + 14), int(rng.integers(120, 255)), 1, cv2.LINE_AA)
        cv2.imwrite(str(tmp_path / f"{i}-4.png"), layer)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    return tmp_path


def test_rain_only_adds_light_outside_the_veil(bank_dir):
    rng = np.random.default_rng(1)
    bank = synth.StreakBank(bank_dir)
    clean = textured(rng)
    for k in range(20):
        p = replace(synth.sample_params(rng, float(k % 5) / 4, photometric=True), haze=0.0)
        rainy = synth.add_rain(clean, rng, p, bank)
        assert (rainy >= clean - 1e-6).all(), k
        assert (rainy > clean + 0.05).mean() > 0.002, k  # and there is rain


def test_veil_is_a_minority_and_mild():
    rng = np.random.default_rng(2)
    hazes = np.array([synth.sample_params(rng).haze for _ in range(2000)])
    assert 0.1 < (hazes > 0).mean() < 0.3
    assert hazes.max() <= 0.2


def test_dense_sheet_covers_most_pixels_and_only_adds_light():
    rng = np.random.default_rng(5)
    clean = textured(rng)
    p = replace(synth.RainParams(), procedural=False, dense=0.2, dense_density=0.05, dense_length=20.0)
    rainy = synth.add_rain(clean, rng, p)
    added = (rainy - clean).mean(axis=2)
    assert (added >= -1e-6).all()
    assert (added > 0.01).mean() > 0.6  # unlike drop streaks, the sheet covers most of the frame
    assert 0.02 < float(added.mean()) < 0.2 and float(added.max()) <= 0.2 * 1.0 + 1e-6


def test_dense_share_draws_sheets_and_zero_keeps_v2s_stream():
    a, b = np.random.default_rng(6), np.random.default_rng(6)
    assert synth.sample_params(a, 0.5) == synth.sample_params(b, 0.5, dense_share=0.0)
    rng = np.random.default_rng(7)
    shares = [synth.sample_params(rng, 0.5, dense_share=0.3).dense > 0 for _ in range(1000)]
    assert 0.25 < np.mean(shares) < 0.35


def test_coarse_sheet_draws_long_thick_streaks_that_only_add_light():
    rng = np.random.default_rng(5)
    clean = textured(rng)
    p = replace(synth.RainParams(), procedural=False, coarse=0.8, coarse_density=0.005, coarse_length=80.0)
    added = (synth.add_rain(clean, rng, p) - clean).mean(axis=2)
    assert (added >= -1e-6).all() and float(added.max()) <= 0.8 + 1e-6
    fine = synth.dense_sheet(added.shape, replace(p, dense=0.8, dense_density=0.005, dense_length=80.0),
                             np.random.default_rng(9))
    thick = synth.coarse_sheet(added.shape, p, np.random.default_rng(9))
    # wider across the fall: the horizontal gradient is smoother relative to the mean
    across = [float(np.abs(np.diff(s, axis=1)).mean() / s.mean()) for s in (fine, thick)]
    assert across[1] < 0.6 * across[0]


def test_coarse_share_touches_heavy_samples_only():
    clean = textured(np.random.default_rng(1))

    def pairs(recipe: synth.PairRecipe, n: int = 20) -> list[np.ndarray]:
        rng = np.random.default_rng(8)
        return [synth.rain_pair(clean, rng, recipe)[0] for _ in range(n)]

    light = dict(heavy_fraction=0.0, compress_fraction=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(pairs(synth.PairRecipe(**light)),
                                                     pairs(synth.PairRecipe(**light, coarse_share=1.0))))
    heavy = dict(heavy_fraction=1.0, compress_fraction=0.0)
    plain, coarse = pairs(synth.PairRecipe(**heavy)), pairs(synth.PairRecipe(**heavy, coarse_share=1.0))
    assert np.mean([c.mean() for c in coarse]) > np.mean([p.mean() for p in plain]) + 0.02


def test_strong_veil_lowers_contrast_of_heavy_samples_and_leaves_light_rain_alone():
    clean = textured(np.random.default_rng(1))

    def pairs(recipe: synth.PairRecipe, n: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng(8)
        return [synth.rain_pair(clean, rng, recipe) for _ in range(n)]

    same = pairs(synth.PairRecipe(heavy_fraction=1.0, compress_fraction=0.0))  # strong_veil 0
    light = synth.PairRecipe(heavy_fraction=0.0, compress_fraction=0.0)
    light_veiled = synth.PairRecipe(heavy_fraction=0.0, compress_fraction=0.0, strong_veil=1.0)
    # light rain is never strongly veiled, and draws nothing more from the stream
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(pairs(light), pairs(light_veiled)))
    veiled = pairs(synth.PairRecipe(heavy_fraction=1.0, compress_fraction=0.0, strong_veil=1.0))

    def gain(rainy: np.ndarray) -> float:  # rainy ~ gain * clean + offset on the streak-free pixels
        dry = np.abs(rainy - clean).max(axis=2) < 0.5
        return float(np.polyfit(clean[dry].ravel(), rainy[dry].ravel(), 1)[0])

    assert np.median([gain(r) for r, _ in veiled]) < 0.85 < np.median([gain(r) for r, _ in same])
    assert all((r >= c - 1e-6).mean() > 0.9 for r, c in veiled)  # a veil of light: it brightens


def test_rain_free_pairs_are_rain_free_and_others_are_not(bank_dir):
    rng = np.random.default_rng(3)
    bank = synth.StreakBank(bank_dir)
    recipe = synth.PairRecipe(compress_fraction=0.5)
    for _ in range(10):
        clean = textured(rng)
        inp, target = synth.rain_pair(clean, rng, recipe, bank, rain_free=True)
        assert np.array_equal(inp, target)
        assert np.abs(target - clean).mean() < 0.05  # at most a JPEG round trip (noisy texture)
        inp, target = synth.rain_pair(clean, rng, recipe, bank)
        assert np.abs(inp - target).mean() > 0.002


def test_every_batch_holds_rain_free_pairs():
    from stream_derain.train.data import rain_free_every

    assert rain_free_every(0.0, 16) == 0
    assert rain_free_every(0.25, 16) == 4
    assert rain_free_every(0.01, 8) == 8  # at least one per batch


def test_streak_bank_loads_skips_and_composites(bank_dir, caplog):
    bank = synth.StreakBank(bank_dir)
    assert len(bank) == 3
    assert "skipped 1 undecodable" in caplog.text
    canvas = bank.canvas((200, 300), np.random.default_rng(4), scale=1.5, angle=15.0, keep=0.5)
    assert canvas.shape == (200, 300) and canvas.dtype == np.float32
    assert 0 <= canvas.min() and canvas.max() <= 1.0 and (canvas > 0.2).mean() > 0.005


def test_streak_bank_rejects_a_missing_or_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        synth.StreakBank(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no rain-streak layers"):
        synth.StreakBank(tmp_path / "empty")


def test_video_rain_is_coherent_over_a_given_clip(bank_dir):
    rng = np.random.default_rng(5)
    bank = synth.StreakBank(bank_dir)
    frames = [textured(np.random.default_rng(9))] * 6  # a static clip: only the rain moves
    p = replace(synth.sample_params(rng, 0.5, photometric=True), haze=0.0, procedural=True, photometric=0.6)
    rainy = synth.rain_over_frames(frames, rng, p, bank)
    layers = [r - f for r, f in zip(rainy, frames)]
    assert all((lay >= -1e-6).all() and lay.mean() > 0.002 for lay in layers)
    # the rain moves between frames, and the frame-to-frame change is a shift, not new rain:
    # each layer is closer to its neighbour shifted down than to a fresh rain layer
    fresh = synth.rain_over_frames(frames[:1], np.random.default_rng(6), p, bank)[0] - frames[0]
    assert not np.allclose(layers[0], layers[1])
    assert np.abs(layers[1] - layers[0]).mean() < np.abs(fresh - layers[0]).mean()


def test_faint_rain_is_dimmer_and_still_rain(bank_dir):
    bank = synth.StreakBank(bank_dir)
    clean = textured(np.random.default_rng(7))
    light = {}
    for share in (0.0, 1.0):
        rng = np.random.default_rng(8)
        recipe = synth.PairRecipe(compress_fraction=0.0, faint_fraction=share)
        pairs = [synth.rain_pair(clean, rng, recipe, bank) for _ in range(30)]
        light[share] = [float((rainy - clean).mean()) for rainy, _ in pairs]
    assert np.mean(light[1.0]) < 0.7 * np.mean(light[0.0])
    assert min(light[1.0]) >= 0.0 and np.mean(light[1.0]) > 0.002
