"""Training pairs: a drawn rain condition over a clean image, optionally JPEG-compressed.

:func:`rain_pair` can JPEG-compress the rainy image *and its target* with the same
quality (real input is compressed; the network should remove rain, not invent a
cleaner codec), and returns rain-free pairs (target = input) at a given rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .render import RainParams, StreakBank, add_rain, faint, sample_params


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip (4:2:0, as video codecs subsample chroma) of an HxWx3 float image."""
    u8 = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid array
        return img
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


@dataclass(frozen=True)
class PairRecipe:
    """How :func:`rain_pair` draws a training pair."""

    heavy_fraction: float = 0.35  # share of heavy-rain samples (severity in [0.5, 1])
    compress_fraction: float = 0.3  # share JPEG-compressed after the rain (input and target alike)
    quality: tuple[int, int] = (35, 90)  # JPEG quality range
    faint_fraction: float = 0.0  # share of faint, fine rain (dimmed x0.25-0.6, thinner), as on real video
    dense_share: float = 0.0  # share of rainy samples with a dense sheet of fine streaks (dense_sheet)
    dense_haze: float = 0.0  # > 0: half of those sheets defocused into a haze, up to this much brighter
    strong_veil: float = 0.0  # share of the heavy samples under a strong veil (haze 0.15-0.35:
    # transmission down to 0.5, as in public heavy-rain sets); 0 draws nothing (v3's stream)
    coarse_share: float = 0.0  # share of the heavy samples with a coarse_sheet; 0 draws nothing


def draw_condition(rng: np.random.Generator, heavy_fraction: float, faint_fraction: float,
                   photometric: bool, dense_share: float = 0.0,
                   dense_haze: float = 0.0) -> tuple[float, RainParams]:
    """(severity, condition) of a training sample: heavy (severity in [0.5, 1]) in
    ``heavy_fraction`` of draws, else light ([0, 0.5]); :func:`sample_params`; then
    dimmed and thinned (:func:`faint`) in ``faint_fraction`` of draws."""
    heavy = rng.uniform(0.5, 1.0) if rng.uniform() < heavy_fraction else rng.uniform(0.0, 0.5)
    p = sample_params(rng, heavy, photometric, dense_share, dense_haze)
    if rng.uniform() < faint_fraction:
        p = faint(p, float(rng.uniform(0.25, 0.6)))
    return heavy, p


def rain_pair(clean: np.ndarray, rng: np.random.Generator, recipe: PairRecipe = PairRecipe(),
              bank: StreakBank | None = None, rain_free: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) HxWx3 float32 for training: rain over ``clean`` (none when
    ``rain_free``: target = input), then, in a share of samples, the same JPEG
    compression of both."""
    heavy, p = draw_condition(rng, recipe.heavy_fraction, recipe.faint_fraction, bank is not None,
                              recipe.dense_share, recipe.dense_haze)
    if recipe.strong_veil > 0 and heavy >= 0.5 and rng.uniform() < recipe.strong_veil:
        p = replace(p, haze=float(rng.uniform(0.15, 0.35)))
    if recipe.coarse_share > 0 and heavy >= 0.5 and rng.uniform() < recipe.coarse_share:
        p = replace(p, coarse=float(rng.uniform(0.45, 0.9)), coarse_density=float(rng.uniform(0.002, 0.008)),
                    coarse_length=float(rng.uniform(40, 120)))
    rainy = clean if rain_free else add_rain(clean, rng, p, bank)
    if rng.uniform() < recipe.compress_fraction:
        q = int(rng.integers(recipe.quality[0], recipe.quality[1] + 1))
        clean = jpeg(clean, q)
        rainy = clean if rain_free else jpeg(rainy, q)
    return rainy, clean
