"""No-reference rain and detail measures of the video evaluation."""

from __future__ import annotations

import numpy as np

from stream_derain.video_eval import real_scores, transients


def _clip(n: int = 9, rain: bool = True) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = (rng.random((72, 96, 3)) * 120 + 40).astype(np.uint8)
    base = np.ascontiguousarray(np.repeat(np.repeat(base[::4, ::4], 4, 0), 4, 1)[:72, :96])
    frames = []
    for t in range(n):
        f = np.roll(base, t, axis=1).copy()  # a steady pan
        if rain:
            for k in range(6):
                x, y = int(rng.integers(4, 90)), int(rng.integers(4, 50))
                f[y:y + 16, x:x + 1] = 250  # a streak for one frame
        frames.append(f)
    return frames


def test_transients_find_one_frame_streaks():
    t_rain, t_dry = transients(_clip()), transients(_clip(rain=False))
    assert len(t_rain) == 9 - 4
    assert np.mean([(t > 6).mean() for t in t_rain]) > 5 * np.mean([(t > 6).mean() for t in t_dry]) + 1e-4


def test_real_scores_credit_removal_and_detect_smearing():
    rainy, dry = _clip(), _clip(rain=False)
    same = real_scores(rainy, rainy)
    assert same["rain_removed"] == 0.0 and abs(same["background_detail"] - 1.0) < 1e-9
    cleaned = real_scores(dry, rainy)
    assert cleaned["rain_removed"] > 0.5 and cleaned["background_detail"] > 0.9
    import cv2

    blurred = real_scores([cv2.GaussianBlur(f, (0, 0), 2.0) for f in dry], rainy)
    assert blurred["background_detail"] < 0.5
