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


def test_real_rain_dev_clips_carry_the_held_out_rain_of_a_real_clip(tmp_path):
    """``<clip>_realrain``: the clean clip with the transient light of a real clip's held-out
    part added; its clean frames are the clip's own."""
    from stream_derain import devvideo
    from stream_derain.io import images

    data = tmp_path / "data"
    for name, frames in (("real", _clip(20)), ("clean", _clip(12, rain=False))):
        (data / name).mkdir(parents=True)
        for i, f in enumerate(frames):
            images.write_rgb(data / name / f"{i:05d}.png", f)
    clip = devvideo.Clip("toy", "clean", count=12, real_rain="real")
    folder = devvideo.render_real_rain(clip, tmp_path / "dev", data)
    rainy = [images.read_rgb(p) for p in sorted((folder / "rain").iterdir())]
    clean = [images.read_rgb(p) for p in sorted((folder / "clean").iterdir())]
    assert len(rainy) == len(clean) == 8 - 4  # the last 40% of 20 frames, less two each side
    assert all(np.array_equal(c, f) for c, f in zip(clean, _clip(12, rain=False)))
    added = [r.astype(int) - c for r, c in zip(rainy, clean)]
    assert all(a.min() >= 0 for a in added)  # rain only adds light
    assert np.mean([(a.max(axis=2) > 50).mean() for a in added]) > 0.005  # the streaks came over
    assert devvideo.render_real_rain(devvideo.Clip("dry", "clean"), tmp_path / "dev", data) is None


def test_light_dev_clips_are_streaks_without_a_veil(tmp_path):
    """``<clip>_light``: streak-only rain over the clean clip, the same frames each time it is
    rendered; no veil lifts the untouched pixels (``_rain``'s may)."""
    from stream_derain import devvideo
    from stream_derain.io import images

    data = tmp_path / "data"
    (data / "clean").mkdir(parents=True)
    for i, f in enumerate(_clip(6, rain=False)):
        images.write_rgb(data / "clean" / f"{i:05d}.png", f)
    bank = data / "rain_layers" / "garg06"
    bank.mkdir(parents=True)
    layer = np.zeros((64, 64), np.uint8)
    layer[:, ::9] = 255  # vertical streaks
    images.write_rgb(bank / "streaks.png", np.repeat(layer[..., None], 3, 2))
    clip = devvideo.Clip("toy", "clean", count=6)
    folder = devvideo.render_light(clip, tmp_path / "dev", data)
    rainy = [images.read_rgb(p) for p in sorted((folder / "rain").iterdir())]
    clean = [images.read_rgb(p) for p in sorted((folder / "clean").iterdir())]
    assert len(rainy) == 6 and all(np.array_equal(c, f) for c, f in zip(clean, _clip(6, rain=False)))
    added = np.stack([r.astype(int) - c for r, c in zip(rainy, clean)])
    assert added.min() >= -1 and (added.max(axis=3) > 20).mean() > 0.002  # streaks add light
    assert np.median(added) == 0  # most pixels are untouched: no veil
    again = devvideo.render_light(clip, tmp_path / "dev2", data)
    assert all(np.array_equal(images.read_rgb(a), images.read_rgb(b))
               for a, b in zip(sorted((folder / "rain").iterdir()), sorted((again / "rain").iterdir())))
