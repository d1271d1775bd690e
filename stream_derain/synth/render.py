"""The rain renderer: streak layers composed over one clean image.

Images are float32 HxWx3 RGB in [0, 1]. A rain layer is built from several depth
layers of two kinds:

- procedural: sparse random drops smeared by a motion-blur line kernel (length,
  width and angle per layer), scaled by a brightness;
- photometric: crops of Garg and Nayar's rendered streak layers
  (:class:`StreakBank`, white streaks on black), randomly scaled, rotated, blurred
  along the fall and dimmed, one per depth.
- dense (v3, in a share of training samples): a sheet of fine, overlapping streaks
  rendered as public synthetic sets render rain (:func:`dense_sheet`), which covers
  most pixels and so brightens the whole frame by part of its peak.

Rain only adds light: streaks are added (clipped) or screen-blended, never
multiplied. A minority of samples get a mild veil (atmospheric scattering:
``B * t + A * (1 - t)`` with a smooth transmission map), which is the only term
that may darken a bright background.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ..io import images

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class RainParams:
    """One rain condition. Ranges are sampled by :func:`sample_params`."""

    layers: int = 2
    density: float = 0.02  # fraction of pixels seeding a drop, nearest layer
    length: float = 25.0  # streak length in pixels, nearest layer
    width: float = 1.5  # streak width in pixels (blur of the line kernel)
    angle: float = 0.0  # degrees from vertical, positive leans right
    brightness: float = 0.6  # peak streak intensity, nearest layer
    haze: float = 0.0  # veil strength in [0, 1)
    screen_blend: bool = False  # screen blend instead of clipped addition
    soft: float = 0.0  # brightness of an extra layer of long, wide, faint streaks (0: none)
    procedural: bool = True  # render the procedural drop-field streaks
    photometric: float = 0.0  # peak brightness of the Garg-Nayar streak layers (0: none)
    photometric_layers: int = 1  # how many of them (depths)
    photometric_scale: float = 1.0  # resize of the streak crops (>1: nearer, bigger streaks)
    photometric_keep: float = 1.0  # share of the layer's area kept (a smooth random mask thins it)
    dense: float = 0.0  # peak brightness of a dense sheet of fine streaks (0: none; see dense_sheet)
    dense_density: float = 0.06  # its seed density (10x the drop layers': the streaks overlap)
    dense_length: float = 20.0  # its streak length in pixels
    dense_blur: float = 0.0  # Gaussian sigma of an out-of-focus blur of the sheet (0: sharp)
    coarse: float = 0.0  # peak brightness of a sheet of long, thick streaks (0: none; see coarse_sheet)
    coarse_density: float = 0.004  # its seed density
    coarse_length: float = 60.0  # its streak length in pixels


def sample_params(rng: np.random.Generator, heavy: float | None = None,
                  photometric: bool = False, dense_share: float = 0.0,
                  dense_haze: float = 0.0) -> RainParams:
    """Random rain condition; ``heavy`` in [0, 1] (drawn when None) sets the severity.

    With ``photometric`` (a :class:`StreakBank` is at hand), 60% of samples use the
    rendered streak layers, alone (half of those) or with the procedural ones. The
    veil is in 25% of samples only, and mild (real heavy rain lowers contrast a
    little, it does not fog the scene). A ``dense_share`` of samples (v3; 0 in v2)
    also get a :func:`dense_sheet`; with ``dense_haze`` > 0, half of those sheets are
    defocused into a haze (blur sigma 3-8 px) up to ``dense_haze`` brighter: the
    smooth additive brightening of dense rain far away, always over the sharp
    streaks of the other layers."""
    h = rng.uniform(0, 1) if heavy is None else heavy
    use_photo = photometric and rng.uniform() < 0.6
    p = RainParams(
        layers=int(rng.integers(1, 4)),
        density=float(rng.uniform(0.002, 0.006) + 0.01 * h * rng.uniform(0.3, 1)),
        length=float(rng.uniform(8, 30) + 30 * h * rng.uniform(0, 1)),
        width=float(rng.uniform(0.6, 1.6) + 1.8 * h * rng.uniform(0, 1)),
        angle=float(rng.normal(0, 12) if rng.uniform() < 0.8 else rng.uniform(-40, 40)),
        brightness=float(rng.uniform(0.25, 0.55) + 0.3 * h),
        haze=float(rng.uniform(0.03, 0.12) * (0.5 + h)) if rng.uniform() < 0.25 else 0.0,
        screen_blend=bool(rng.uniform() < 0.3),
        soft=float(rng.uniform(0.08, 0.3)) if rng.uniform() < 0.4 else 0.0,
        procedural=not use_photo or rng.uniform() < 0.5,
        photometric=float(rng.uniform(0.25, 0.6) + 0.25 * h) if use_photo else 0.0,
        photometric_layers=1 if rng.uniform() < 0.7 else 2,
        photometric_scale=float(np.exp(rng.uniform(np.log(0.7), np.log(1.8)))),
        photometric_keep=float(rng.uniform(0.25, 0.6) + 0.4 * h),
    )
    if dense_share > 0 and rng.uniform() < dense_share:  # drawn last: v2's stream is unchanged
        p = replace(p, dense=float(rng.uniform(0.1, 0.25) + 0.2 * h * rng.uniform(0, 1)),
                    dense_density=float(rng.uniform(0.02, 0.1)),
                    dense_length=float(rng.uniform(8, 30) + 15 * h),
                    dense_blur=float(rng.uniform(0.8, 3.0)) if rng.uniform() < 0.5 else 0.0)
        if dense_haze > 0 and rng.uniform() < 0.5:
            p = replace(p, dense=p.dense + float(rng.uniform(0, dense_haze)),
                        dense_blur=float(rng.uniform(3, 8)))
    return p


def streak_kernel(length: float, width: float, angle: float) -> np.ndarray:
    """Normalised motion-blur kernel: a line of ``length`` px at ``angle`` degrees from
    vertical, blurred across to ``width``."""
    size = int(np.ceil(length + 4 * width)) | 1
    k = np.zeros((size, size), np.float32)
    c = size / 2.0
    a = np.deg2rad(angle)
    dx, dy = np.sin(a) * length / 2, np.cos(a) * length / 2
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))),
             1.0, 1, cv2.LINE_AA)
    if width > 1.0:
        k = cv2.GaussianBlur(k, (0, 0), sigmaX=(width - 1.0) / 2 + 1e-3)
    return k / max(float(k.sum()), 1e-6)


def drop_field(shape: tuple[int, int], density: float, rng: np.random.Generator) -> np.ndarray:
    """Sparse drop seeds: HxW float32, non-zero at about ``density`` of the pixels."""
    u = rng.random(shape, dtype=np.float32)
    return np.where(u < density, rng.uniform(0.5, 1.0, shape).astype(np.float32), 0.0).astype(np.float32)


def layer_specs(p: RainParams) -> list[tuple[float, float, float, float, float]]:
    """(density, length, width, angle, brightness) per procedural depth layer, nearest first."""
    if not p.procedural:
        return []
    specs = []
    for i in range(p.layers):
        depth = 1.0 / (1 + i)  # farther layers: shorter, thinner, dimmer, denser
        specs.append((p.density * (1 + 0.6 * i), max(p.length * depth, 3.0), max(p.width * depth, 0.6),
                      p.angle + 3.0 * i, p.brightness * (0.55 + 0.45 * depth)))
    if p.soft > 0:  # out-of-focus drops close to the lens: long, wide, faint
        specs.append((0.002, max(p.length * 4.0, 100.0), 4.0 + 2.0 * p.width, p.angle, p.soft))
    return specs


MAX_OVERLAP = 0.4  # mean number of streaks a pixel lies on, at most (denser fields are dimmed)


def render_streaks(field: np.ndarray, length: float, width: float, angle: float,
                   brightness: float) -> np.ndarray:
    """Smear a drop field into streaks: HxW -> HxW in [0, 1]. An isolated drop peaks at
    ``brightness``; where long, wide streaks would overlap more than :data:`MAX_OVERLAP`
    deep on average, the layer is dimmed to that, so that dense or out-of-focus streaks
    stay streaks and never sum into a uniform veil (v1 did: its soft layer brightened
    whole frames by 0.1-0.6, and the network learnt to darken)."""
    k = streak_kernel(length, width, angle)
    s = cv2.filter2D(field, -1, k, borderType=cv2.BORDER_REFLECT)
    peak = float(k.max()) or 1.0
    overlap = float(field.mean()) / peak  # mean sum of k / peak over the drops at a pixel
    return np.clip(s / peak * brightness / max(1.0, overlap / MAX_OVERLAP), 0.0, 1.0)


class StreakBank:
    """Garg and Nayar's rendered rain-streak layers (white streaks on black, 8-bit grey).

    ``folder`` holds the PNG layers; undecodable files are skipped with a count, an
    empty or missing folder is a :class:`~stream_derain.errors.ConfigError`."""

    def __init__(self, folder: str | Path) -> None:
        from ..errors import ConfigError

        root = Path(folder)
        if not root.is_dir():
            raise ConfigError(f"rain-layer folder not found: {root}")
        layers, bad = [], 0
        for path in sorted(root.iterdir()):
            if not images.is_image(path):
                continue
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if img is None:
                bad += 1
                continue
            layers.append(img)
        if bad:
            log.warning("skipped %d undecodable rain layer(s) in %s", bad, root)
        if not layers:
            raise ConfigError(f"no rain-streak layers in {root}")
        self.layers = layers

    def __len__(self) -> int:
        return len(self.layers)

    def canvas(self, shape: tuple[int, int], rng: np.random.Generator, scale: float,
               angle: float, keep: float = 1.0) -> np.ndarray:
        """An HxW float32 streak map in [0, 1] (peak ~1): one random layer, resized by
        ``scale``, tiled to cover ``shape``, rotated by ``angle`` degrees, flipped at random,
        and thinned to about ``keep`` of its area by a smooth random mask."""
        h, w = shape
        layer = self.layers[int(rng.integers(len(self.layers)))]
        if rng.uniform() < 0.5:
            layer = layer[:, ::-1]
        lh, lw = layer.shape
        layer = cv2.resize(layer, (max(int(lw * scale), 8), max(int(lh * scale), 8)),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        side = int(np.ceil(np.hypot(h, w))) + 2  # room to rotate without empty corners
        reps = (-(-side // layer.shape[0]) + 1, -(-side // layer.shape[1]) + 1)
        tiled = np.tile(layer, reps)
        y0 = int(rng.integers(0, tiled.shape[0] - side + 1))
        x0 = int(rng.integers(0, tiled.shape[1] - side + 1))
        big = tiled[y0:y0 + side, x0:x0 + side].astype(np.float32) / 255.0
        m = cv2.getRotationMatrix2D((side / 2, side / 2), -angle, 1.0)
        m[:, 2] += (w - side) / 2, (h - side) / 2
        out = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if keep < 1.0:
            coarse = rng.uniform(0, 1, (max(h // 40, 2), max(w // 40, 2))).astype(np.float32)
            mask = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
            out *= np.clip((mask - (1.0 - keep)) * 5.0, 0.0, 1.0)
        return out


def photometric_specs(p: RainParams) -> list[tuple[float, float, float, float]]:
    """(scale, angle, brightness, keep) per photometric depth layer, nearest first."""
    return [(p.photometric_scale / (1 + 0.5 * i), p.angle + 4.0 * i, p.photometric / (1 + 0.6 * i),
             p.photometric_keep) for i in range(p.photometric_layers)] if p.photometric > 0 else []


def _photometric_canvases(bank: StreakBank | None, p: RainParams, shape: tuple[int, int],
                          rng: np.random.Generator) -> list[tuple[np.ndarray, float, float]]:
    """(HxW canvas, angle, brightness) for each photometric layer (none without a bank)."""
    if bank is None:
        return []
    return [(bank.canvas(shape, rng, scale, angle, keep), angle, bright)
            for scale, angle, bright, keep in photometric_specs(p)]


def transmission_map(shape: tuple[int, int], haze: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth transmission in (0, 1]: less at the top (farther), with low-frequency noise."""
    h, w = shape
    coarse = rng.uniform(0, 1, (4, 4)).astype(np.float32)
    noise = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    depth = np.linspace(1.0, 0.3, h, dtype=np.float32)[:, None] * 0.7 + 0.3 * noise
    return np.exp(-haze * 2.0 * np.clip(depth, 0, 1)).astype(np.float32)


def compose(clean: np.ndarray, streaks: np.ndarray, p: RainParams, t: np.ndarray | None,
            tint: np.ndarray) -> np.ndarray:
    """Rainy image from a clean HxWx3 image, an HxW streak map and an optional
    transmission map. ``tint`` is the rain/veil colour (3,). Streaks only add light."""
    img = clean
    if t is not None:
        img = img * t[..., None] + tint * (1.0 - t[..., None])
    s = streaks[..., None] * tint
    out = 1.0 - (1.0 - img) * (1.0 - s) if p.screen_blend else img + s
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def rain_tint(rng: np.random.Generator) -> np.ndarray:
    return np.full(3, rng.uniform(0.85, 1.0), np.float32)


def _levels_sheet(shape: tuple[int, int], density: float, drop_sigma: tuple[float, float], length: float,
                  angle: float, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Seed noise, a blur to the drop size (sigma drawn in ``drop_sigma``), a motion
    blur along the fall, levels (the 99.5th percentile maps to ``peak``)."""
    field = cv2.GaussianBlur(drop_field(shape, density, rng), (0, 0), float(rng.uniform(*drop_sigma)))
    k = streak_kernel(length, 1.0, angle + float(rng.normal(0, 3)))
    sheet = cv2.filter2D(field, -1, k, borderType=cv2.BORDER_REFLECT)
    top = float(np.percentile(sheet, 99.5)) or 1.0
    return np.clip(sheet / top, 0.0, 1.0) * peak


def dense_sheet(shape: tuple[int, int], p: RainParams, rng: np.random.Generator) -> np.ndarray:
    """HxW sheet of dense, fine, overlapping streaks in [0, ``p.dense``].

    Seed noise, a slight blur (drop size), a motion blur along the fall, levels (the
    99.5th percentile maps to ``p.dense``), optionally an out-of-focus blur:
    how rain is commonly rendered for public synthetic sets (noise -> motion blur ->
    levels -> screen). Unlike the drop layers, these streaks cover most pixels and
    brighten the whole frame by part of their peak, so the network sees rain whose
    removal must also take away that mean."""
    sheet = _levels_sheet(shape, p.dense_density, (0.3, 0.8), p.dense_length, p.angle, p.dense, rng)
    if p.dense_blur > 0:  # out of focus after the levels: softer, same mean (a haze when wide)
        sheet = cv2.GaussianBlur(sheet, (0, 0), p.dense_blur)
    return sheet.astype(np.float32)


def coarse_sheet(shape: tuple[int, int], p: RainParams, rng: np.random.Generator) -> np.ndarray:
    """HxW sheet of long, thick, bright streaks in [0, ``p.coarse``]: the same recipe
    as :func:`dense_sheet` with sparser, larger drops (blur sigma 0.8-2 px) and a
    longer fall, as public heavy-rain sets render them (streaks 3-6 px wide, 40-120
    px long, near white)."""
    return _levels_sheet(shape, p.coarse_density, (0.8, 2.0), p.coarse_length, p.angle, p.coarse,
                         rng).astype(np.float32)


def streak_map(shape: tuple[int, int], p: RainParams, rng: np.random.Generator,
               bank: StreakBank | None = None) -> np.ndarray:
    """HxW streak intensity in [0, 1]: the brightest of every depth layer."""
    streaks = np.zeros(shape, np.float32)
    for dens, length, width, angle, bright in layer_specs(p):
        streaks = np.maximum(streaks, render_streaks(drop_field(shape, dens, rng), length, width, angle,
                                                     bright))
    for canvas, angle, bright in _photometric_canvases(bank, p, shape, rng):
        streaks = np.maximum(streaks, _fall_blur(canvas, angle, rng) * bright)
    if p.dense > 0:
        streaks = np.maximum(streaks, dense_sheet(shape, p, rng))
    if p.coarse > 0:
        streaks = np.maximum(streaks, coarse_sheet(shape, p, rng))
    return streaks


def _fall_blur(canvas: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Half the time, smear a photometric layer a little more along the fall (exposure)."""
    if rng.uniform() < 0.5:
        return canvas
    k = streak_kernel(float(rng.uniform(3, 12)), 1.0, angle)
    return cv2.filter2D(canvas, -1, k / k.max() * 0.6, borderType=cv2.BORDER_REFLECT).clip(0, 1)


def add_rain(clean: np.ndarray, rng: np.random.Generator, params: RainParams | None = None,
             bank: StreakBank | None = None) -> np.ndarray:
    """Rainy version of ``clean`` (HxWx3 float32 in [0, 1]); the rain layer is
    ``rainy - clean``. ``bank`` adds the photometric streak layers."""
    p = params or sample_params(rng, photometric=bank is not None)
    shape = clean.shape[:2]
    streaks = streak_map(shape, p, rng, bank)
    t = transmission_map(shape, p.haze, rng) if p.haze > 0 else None
    return compose(clean, streaks, p, t, rain_tint(rng))


def faint(p: RainParams, factor: float) -> RainParams:
    """The same condition dimmer and finer (real video's rain is often faint, thin streaks)."""
    return replace(p, brightness=p.brightness * factor, photometric=p.photometric * factor,
                   soft=p.soft * factor, dense=p.dense * factor, width=max(0.6, p.width * 0.6), haze=0.0)


def heavier(p: RainParams, factor: float) -> RainParams:
    """The same condition with density and brightness scaled (for sweeps)."""
    return replace(p, density=p.density * factor, brightness=min(p.brightness * factor, 1.0))
