"""Dev video (v4): clips held out from training, rendered with and without rain.

Five kinds, under ``runs/devvideo`` (git-ignored: derived from the research data):

- ``<clip>_rain``: the v2 synthesiser's temporally coherent rain
  (:func:`~.synth.rain_over_frames`, fixed seeds, photometric streaks, severity drawn
  in [0.05, 0.6]; faint and fine on half the clips) over a held-out clean clip, with
  the clean clip as ground truth;
- ``<clip>_light``: *light* rain, streaks only (:func:`light_params`: no veil, no soft or
  dense sheet, 0.6 of the density and brightness of a severity drawn in [0.1, 0.45];
  input 24.7-38.6 dB, 30.5 on average). ``_rain``'s veil of 12-39 grey levels on four
  clips makes its mean PSNR mostly a score of dehazing, which one frame does as well as
  five; this kind is the regime of issue 26's held-out driving video (input 29.7 dB),
  where what a model takes from time shows;
- ``<clip>_clean``: the same clip with no rain (do-no-harm: output = input);
- ``<clip>_realrain``: *real* rain over the held-out clean clip, with the clean clip as
  ground truth: the rain mined from the held-out part of a real rainy clip (ra1, rb2
  or pexels 5; :mod:`~stream_derain.synth.mined`), each frame's own streaks over the
  matching frame. Light rain that v3 leaves; pexels 5 is never mined for training;
- real rainy clips without ground truth (:data:`REAL_CLIPS`): the last 40% of each
  clip's frames (the teacher cache and any training use the first 60%, see
  :data:`REAL_TRAIN_SHARE`).

Held-out clean clips (:data:`DEV_CLIPS`): two Cityscapes driving sequences, the
CamVid 15 Hz drive (all of it), the end of the Udacity highway clip, and two DAVIS
sequences (all of ``clean_video/davis`` is kept out of video training, since the
single-frame ``davis_*`` dev sets sample it). Frames are box-resized to at most
``MAX_SIDE`` pixels a side and the first ``FRAMES`` are used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from . import synth
from .devsets import DATA_ROOT
from .errors import ConfigError
from .flicker import read_frames
from .io import images

log = logging.getLogger(__name__)

SEED = 4004
LIGHT_SEED = 2612
FRAMES = 24
MAX_SIDE = 640
REAL_TRAIN_SHARE = 0.6  # real clips: the first 60% may be trained on, the rest is dev


@dataclass(frozen=True)
class Clip:
    """``count`` frames of ``source`` (a folder of frames or a video file under the data
    root) from frame ``start``, every ``step``-th."""

    name: str
    source: str
    start: int = 0
    count: int = FRAMES
    step: int = 1
    faint: bool = False  # render it with faint, fine rain (synth.faint), as real video often has
    real_rain: str = ""  # the real clip whose held-out part's mined rain goes over it (<name>_realrain)


RA1, RB2, PEXELS5 = "real_video/ra1", "real_video/rb2", "real_video/realrain_pexels/5.mp4"
DEV_CLIPS = (
    Clip("cityscapes4", "clean_video/cityscapes/seq0004", real_rain=RA1),
    Clip("cityscapes5", "clean_video/cityscapes/seq0005", faint=True, real_rain=RB2),
    Clip("camvid16e5", "clean_video/camvid_0016E5", 20, real_rain=PEXELS5),
    Clip("udacity", "clean_video/udacity/solidWhiteRight.mp4", 190, 24, faint=True, real_rain=RA1),
    Clip("davis_bmx", "clean_video/davis/bmx-trees", 10, real_rain=RB2),
    Clip("davis_dog", "clean_video/davis/dog", 10, faint=True, real_rain=PEXELS5),
)
REAL_CLIPS = ("real_video/ra1", "real_video/rb2", "real_video/realrain_pexels/262.mp4",
              "real_video/realrain_pexels/42.mp4", "real_video/realrain_pexels/5.mp4")


def fit(img: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Box-resize so the long side is at most ``max_side`` (even sizes), uint8 or float."""
    h, w = img.shape[:2]
    f = min(1.0, max_side / max(h, w))
    nh, nw = max(2, int(round(h * f / 2)) * 2), max(2, int(round(w * f / 2)) * 2)
    return img if (nh, nw) == (h, w) else cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)


def read_source(path: Path) -> list[np.ndarray]:
    """All frames (HxWx3 uint8 RGB) of a folder of images or a video file
    (:func:`~stream_derain.flicker.read_frames`); a missing one is a ConfigError (a
    config or a dev clip names it)."""
    if not path.exists():
        raise ConfigError(f"data not found: {path}")
    return read_frames(path)


def clip_frames(clip: Clip, data_root: Path = DATA_ROOT, max_side: int = MAX_SIDE) -> list[np.ndarray]:
    frames = read_source(data_root / clip.source)[clip.start::clip.step][:clip.count]
    if len(frames) < 2:
        raise ConfigError(f"dev clip {clip.name}: fewer than 2 frames in {clip.source}")
    return [fit(f, max_side) for f in frames]


def real_dev_frames(source: str, data_root: Path = DATA_ROOT, max_side: int = MAX_SIDE) -> list[np.ndarray]:
    """The held-out part (the last 40%) of a real rainy clip."""
    frames = read_source(data_root / source)
    return [fit(f, max_side) for f in frames[int(len(frames) * REAL_TRAIN_SHARE):]]


def real_name(source: str) -> str:
    p = Path(source)
    return p.stem if p.suffix else p.name


def render(clip: Clip, out_root: Path, data_root: Path = DATA_ROOT) -> tuple[Path, Path]:
    """Write ``<clip>_rain/{rain,clean}`` and ``<clip>_clean/{rain,clean}`` as PNG frames
    (once; kept when present). Returns both folders."""
    rain_set, clean_set = out_root / f"{clip.name}_rain", out_root / f"{clip.name}_clean"
    if (rain_set / "clean").is_dir() and (clean_set / "rain").is_dir():
        return rain_set, clean_set
    clean = clip_frames(clip, data_root)
    rng = np.random.default_rng([SEED, sum(map(ord, clip.name))])
    bank = synth.StreakBank(data_root / "rain_layers" / "garg06")
    p = synth.sample_params(rng, float(rng.uniform(0.05, 0.6)), photometric=True)
    if clip.faint:
        p = synth.faint(p, float(rng.uniform(0.3, 0.6)))
    rainy = synth.rain_over_frames([f.astype(np.float32) / 255.0 for f in clean], rng, p, bank)
    for folder in (rain_set / "rain", rain_set / "clean", clean_set / "rain", clean_set / "clean"):
        folder.mkdir(parents=True, exist_ok=True)
    for i, (r, c) in enumerate(zip(rainy, clean)):
        name = f"{i:04d}.png"
        images.write_rgb(rain_set / "rain" / name, (r * 255.0 + 0.5).astype(np.uint8))
        for folder in (rain_set / "clean", clean_set / "rain", clean_set / "clean"):
            images.write_rgb(folder / name, c)
    log.info("rendered dev video %s (%d frames, %dx%d)", clip.name, len(clean), clean[0].shape[1],
             clean[0].shape[0])
    return rain_set, clean_set


def light_params(rng: np.random.Generator) -> synth.RainParams:
    """Streak-only light rain: a photometric condition of severity 0.1-0.45 at 0.6 of its
    density and brightness (0.7 of the photometric layers' brightness, 0.6 of their
    area), with no veil, no soft layer and no dense sheet."""
    p = synth.sample_params(rng, float(rng.uniform(0.1, 0.45)), photometric=True)
    return replace(synth.heavier(p, 0.6), haze=0.0, soft=0.0, dense=0.0,
                   photometric=p.photometric * 0.7, photometric_keep=p.photometric_keep * 0.6)


def render_light(clip: Clip, out_root: Path, data_root: Path = DATA_ROOT) -> Path:
    """Write ``<clip>_light/{rain,clean}``: :func:`light_params` rain over the clean clip,
    with fixed seeds (kept when present)."""
    folder = out_root / f"{clip.name}_light"
    if (folder / "clean").is_dir():
        return folder
    clean = clip_frames(clip, data_root)
    rng = np.random.default_rng([LIGHT_SEED, sum(map(ord, clip.name))])
    bank = synth.StreakBank(data_root / "rain_layers" / "garg06")
    params = light_params(rng)
    rainy = synth.rain_over_frames([f.astype(np.float32) / 255.0 for f in clean], rng, params, bank)
    _write_pairs(folder, rainy, clean)
    log.info("rendered dev video %s with light rain (%d frames)", clip.name, len(clean))
    return folder


def _write_pairs(folder: Path, rainy: list[np.ndarray], clean: list[np.ndarray]) -> None:
    """``folder/{rain,clean}/NNNN.png`` from float [0, 1] rainy and uint8 clean frames."""
    for sub in ("rain", "clean"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, (r, c) in enumerate(zip(rainy, clean)):
        images.write_rgb(folder / "rain" / f"{i:04d}.png", (r * 255.0 + 0.5).astype(np.uint8))
        images.write_rgb(folder / "clean" / f"{i:04d}.png", c)


def render_real_rain(clip: Clip, out_root: Path, data_root: Path = DATA_ROOT) -> Path | None:
    """Write ``<clip>_realrain/{rain,clean}``: the rain mined from the held-out part of
    ``clip.real_rain`` (:func:`~stream_derain.synth.mined.mine_layers`), frame by frame
    over the clean clip, cut to its size (as many frames as both have). None when the
    clip names no real rain. Kept when present."""
    from .synth.mined import composite, mine_layers

    if not clip.real_rain:
        return None
    folder = out_root / f"{clip.name}_realrain"
    if (folder / "clean").is_dir():
        return folder
    clean = clip_frames(clip, data_root)
    layers = mine_layers(real_dev_frames(clip.real_rain, data_root))
    h, w = clean[0].shape[:2]
    lh, lw = layers[0].shape[:2]
    if lh < h or lw < w:
        f = max(h / lh, w / lw)
        layers = [cv2.resize(la, (int(np.ceil(lw * f)), int(np.ceil(lh * f)))) for la in layers]
    n = min(len(clean), len(layers))
    rainy = composite([c.astype(np.float32) / 255.0 for c in clean[:n]], [la[:h, :w] for la in layers[:n]])
    _write_pairs(folder, rainy, clean[:n])
    log.info("rendered dev video %s with real rain from %s (%d frames)", clip.name, clip.real_rain, n)
    return folder


def render_all(out_root: Path = Path("runs/devvideo"), data_root: Path = DATA_ROOT) -> list[Path]:
    folders: list[Path] = []
    for clip in DEV_CLIPS:
        folders += render(clip, out_root, data_root)
    return folders
