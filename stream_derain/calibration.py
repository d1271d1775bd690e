"""Calibration data for INT8 quantization (:mod:`stream_derain.quantize`): rainy and clean
windows of K frames in slot order from the training-side data, never a dev set's frames.

Sources (:data:`CALIBRATION_SOURCES`, under ``../shared/data``): clean video (DAVIS
``davis_extra``, Cityscapes ``seq0000``-``seq0003``) with and without the synthesiser's
temporally coherent rain, the first 60% of the real rainy clips ``ra1`` and ``rb2``, and
CamVid stills of the drives that no dev set uses (:data:`EXCLUDED` lists what is never read).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .catalog import ModelInfo
from .devsets import DATA_ROOT, matching_images
from .errors import ConfigError

log = logging.getLogger(__name__)

CALIB_SIZE = (360, 640)  # H, W of the calibration windows
CALIB_COUNT = 200  # windows; NNCF's statistics settle well before 300
SEED = 29


# --- calibration data ------------------------------------------------------------------------

@dataclass(frozen=True)
class CalibSource:
    """Frames under the data root: a folder of consecutive frames (``video``) or stills.

    ``rain``: ``real`` (already rainy), ``synthetic`` (rain rendered over it, and the clean
    frames too) or ``none``; ``first``: the share of a clip's frames that may be used."""

    folder: str
    pattern: str = "*"
    video: bool = True
    rain: str = "synthetic"
    first: float = 1.0
    share: float = 1.0  # weight of this source in the windows drawn


CALIBRATION_SOURCES = (
    CalibSource("clean_video/davis_extra/camel", share=1.0),
    CalibSource("clean_video/davis_extra/parkour", share=1.0),
    CalibSource("clean_video/cityscapes/seq0000", share=0.5),
    CalibSource("clean_video/cityscapes/seq0001", share=0.5),
    CalibSource("clean_video/cityscapes/seq0002", share=0.5),
    CalibSource("clean_video/cityscapes/seq0003", share=0.5),
    CalibSource("real_video/ra1", rain="real", first=0.6, share=1.0),
    CalibSource("real_video/rb2", rain="real", first=0.6, share=1.0),
    # CamVid stills of the two drives no dev set uses (0006R0: camvid dev sets; 0016E5: dev video)
    CalibSource("clean/camvid", "0001TP_*", video=False, share=1.0),
    CalibSource("clean/camvid", "Seq05V*", video=False, share=1.0),
)
# what calibration must never read (dev sets and dev video); checked by calibration_files
EXCLUDED = ("pairs/", "clean/camvid/0006R0", "clean/camvid/0016E5", "clean_video/davis/",
            "clean_video/camvid_0016E5", "clean_video/cityscapes/seq0004", "clean_video/cityscapes/seq0005",
            "clean_video/udacity")


def fit_crop(img: np.ndarray, size: tuple[int, int] = CALIB_SIZE) -> np.ndarray:
    """HxWx3 uint8 -> ``size`` (H, W): resized (area) to cover it, then centre-cropped."""
    h, w = img.shape[:2]
    th, tw = size
    f = max(th / h, tw / w)
    nh, nw = max(th, round(h * f)), max(tw, round(w * f))
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    y0, x0 = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(img[y0:y0 + th, x0:x0 + tw])


def calibration_files(src: CalibSource, data_root: Path = DATA_ROOT) -> list[Path]:
    files = matching_images(data_root / src.folder, src.pattern, "calibration data", "calibration frames")
    files = files[:max(1, int(len(files) * src.first))] if src.first < 1 else files
    for p in files:
        rel = p.relative_to(data_root).as_posix()
        if any(rel.startswith(x) for x in EXCLUDED):
            raise ConfigError(f"calibration source {src.folder} reaches dev data: {rel}")
    return files


@dataclass
class Window:
    """One calibration input: K frames (HxWx3 uint8, shared between windows) in slot order."""

    frames: tuple[np.ndarray, ...]

    def nchw(self) -> np.ndarray:
        """1x(3K)xHxW float32 in [0, 1], the model's input."""
        x = np.concatenate(self.frames, axis=2).transpose(2, 0, 1)[None]
        return np.ascontiguousarray(x, dtype=np.float32) * np.float32(1 / 255)


def aligned(window: Window, model: ModelInfo) -> Window:
    """``window`` as the model sees it in the product: a model exported with ``"align":
    "flow"`` gets its neighbours warped onto the target (:func:`stream_derain.align.align_window`)."""
    mode = (model.meta or {}).get("align", "none")
    if mode == "none" or len(window.frames) < 2:
        return window
    from .align import align_window

    return Window(tuple(align_window(list(window.frames), mode)))


def window_at(frames: Sequence[np.ndarray], i: int, offsets: Sequence[int]) -> Window:
    """The window of frame ``i``: each offset clamped into the clip (as the product's
    window repeats the nearest frame at a clip's ends)."""
    n = len(frames)
    return Window(tuple(frames[min(max(i + o, 0), n - 1)] for o in offsets))


def _rainy(frames: list[np.ndarray], rng: np.random.Generator, bank: Any) -> list[np.ndarray]:
    from . import synth

    p = synth.sample_params(rng, float(rng.uniform(0.1, 0.9)), photometric=True)
    rainy = synth.rain_over_frames([f.astype(np.float32) / 255.0 for f in frames], rng, p, bank)
    return [(np.clip(r, 0, 1) * 255.0 + 0.5).astype(np.uint8) for r in rainy]


def calibration_windows(model: ModelInfo, count: int = CALIB_COUNT, size: tuple[int, int] = CALIB_SIZE,
                        data_root: Path = DATA_ROOT, seed: int = SEED,
                        sources: Sequence[CalibSource] = CALIBRATION_SOURCES) -> list[Window]:
    """``count`` calibration windows of ``model.frames`` frames at ``size``, drawn from
    ``sources`` by their shares: about half of the clean video with rain rendered over
    it and half without, the real rainy clips as they are, stills in every slot (one
    rainy, one clean version each). Windows of video alternate the model's centred
    and causal offsets."""
    from . import synth
    from .io import images

    rng = np.random.default_rng(seed)
    bank = synth.StreakBank(data_root / "rain_layers" / "garg06")
    modes = [model.window(m) for m in ("centred", "causal")]
    total = sum(s.share for s in sources)
    quotas = [max(1, int(count * s.share / total)) for s in sources]
    for i in range(max(0, count - sum(quotas))):  # the rounding's remainder, one each
        quotas[i % len(quotas)] += 1
    windows: list[Window] = []
    for src, quota in zip(sources, quotas):
        files = calibration_files(src, data_root)
        if src.video:
            clip = [fit_crop(images.read_rgb(p), size) for p in files]
            versions = [clip] if src.rain != "synthetic" else [_rainy(clip, rng, bank), clip]
            per = [quota - quota // 2, quota // 2] if len(versions) == 2 else [quota]
            for frames, n in zip(versions, per):
                targets = np.linspace(0, len(frames) - 1, n).round().astype(int) if n else []
                windows += [window_at(frames, int(i), modes[j % 2]) for j, i in enumerate(targets)]
        else:
            picks = rng.choice(len(files), size=min(quota, len(files)), replace=False)
            for j, k in enumerate(sorted(picks)):
                img = fit_crop(images.read_rgb(files[k]), size)
                if src.rain == "synthetic" and j % 2 == 0:
                    img = _rainy([img], rng, bank)[0]
                windows.append(Window((img,) * model.frames))
    order = rng.permutation(len(windows))[:count]
    log.info("calibration: %d windows of %d frame(s) at %dx%d from %d sources", len(order), model.frames,
             size[1], size[0], len(sources))
    return [aligned(windows[i], model) for i in order]


# --- quantization ----------------------------------------------------------------------------
