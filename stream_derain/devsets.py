"""Development sets rendered from the research data (v2): what v1's dev sets missed.

- ``camvid_rain`` / ``davis_rain``: the v2 synthesiser's rain (procedural and
  photometric streaks, fixed seeds) over held-back CamVid dashcam frames (drive
  ``0006R0``, never trained on) and over DAVIS video frames (not trained on);
- ``camvid_clean`` / ``davis_clean``: the same frames with **no rain** (``rain/`` is
  a copy of ``clean/``): the output must match the input.

They are written once as lossless PNG under a cache folder (``runs/devsets`` by
default, git-ignored: never committed, since they are derived from the data) and
re-rendered only when missing. Each set is a paired folder for ``stream-derain eval``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import synth
from .errors import ConfigError
from .io import images

log = logging.getLogger(__name__)

SEED = 2026
# ../shared/data beside the project checkout, unless STREAM_DERAIN_DATA says otherwise
DATA_ROOT = Path(os.environ.get("STREAM_DERAIN_DATA",
                                Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@dataclass(frozen=True)
class DevSource:
    """Frames a dev set is rendered from: ``pattern`` under ``folder``, every ``step``-th."""

    name: str
    folder: str  # relative to the data root
    pattern: str
    step: int
    limit: int


SOURCES = (
    DevSource("camvid", "clean/camvid", "0006R0_*", 3, 34),
    DevSource("davis", "clean_video/davis", "*/*.jpg", 12, 48),
)
PAIR_SETS = ("pairs/sirr20", "pairs/heavy25")


def matching_images(folder: Path, pattern: str, missing: str = "data folder",
                    what: str = "images") -> list[Path]:
    """The images in ``folder`` that match ``pattern`` (a glob), sorted; ConfigError when
    the folder is missing (``missing`` names it) or nothing matches (``what`` names them)."""
    if not folder.is_dir():
        raise ConfigError(f"{missing} not found: {folder}")
    files = sorted(p for p in folder.glob(pattern) if images.is_image(p))
    if not files:
        raise ConfigError(f"no {what} match {pattern} in {folder}")
    return files


def source_frames(data_root: Path, src: DevSource) -> list[Path]:
    return matching_images(data_root / src.folder, src.pattern)[::src.step][:src.limit]


def render_source(data_root: Path, src: DevSource, out_root: Path, bank: synth.StreakBank) -> list[Path]:
    """Write ``<name>_rain`` and ``<name>_clean`` under ``out_root``; returns both folders."""
    rain_set, clean_set = out_root / f"{src.name}_rain", out_root / f"{src.name}_clean"
    rng = np.random.default_rng(SEED)
    for folder in (rain_set / "rain", rain_set / "clean", clean_set / "rain", clean_set / "clean"):
        folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(source_frames(data_root, src)):
        clean = images.read_rgb(path).astype(np.float32) / 255.0
        rainy = synth.add_rain(clean, rng, synth.sample_params(rng, float(rng.uniform(0.1, 0.9)),
                                                               photometric=True), bank)
        name = f"{i:03d}_{path.stem}.png"
        clean_u8 = (clean * 255.0 + 0.5).astype(np.uint8)
        images.write_rgb(rain_set / "rain" / name, (rainy * 255.0 + 0.5).astype(np.uint8))
        for folder in (rain_set / "clean", clean_set / "rain", clean_set / "clean"):
            images.write_rgb(folder / name, clean_u8)
    return [rain_set, clean_set]


def dev_sets(data_root: Path = DATA_ROOT, out_root: Path = Path("runs/devsets")) -> list[Path]:
    """Every dev set's paired folder: the ``pairs`` sets, then the rendered ones
    (rendered now when missing)."""
    sets = [data_root / p for p in PAIR_SETS]
    missing = [s for s in sets if not s.is_dir()]
    if missing:
        raise ConfigError(f"dev set not found: {missing[0]}")
    bank = None
    for src in SOURCES:
        done = [out_root / f"{src.name}_rain" / "rain", out_root / f"{src.name}_clean" / "rain"]
        if not all(d.is_dir() and any(d.iterdir()) for d in done):
            bank = bank or synth.StreakBank(data_root / "rain_layers" / "garg06")
            log.info("rendering dev sets %s_rain / %s_clean under %s", src.name, src.name, out_root)
            render_source(data_root, src, out_root, bank)
        sets += [out_root / f"{src.name}_rain", out_root / f"{src.name}_clean"]
    return sets

