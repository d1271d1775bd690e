"""The warping-error flicker metric (Lai et al. 2018) and evaluate_video."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from stream_derain.flicker import evaluate_video, flow_pairs, non_occlusion, read_frames, warping_error


def texture(rng: np.random.Generator, h: int = 96, w: int = 128) -> np.ndarray:
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 3.0)
    return ((tex - tex.min()) / (np.ptp(tex) + 1e-6) * 200 + 25).astype(np.uint8)


def noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(frame + rng.normal(0, sigma, frame.shape) + 0.5, 0, 255).astype(np.uint8)


def test_static_identical_sequence_has_zero_error() -> None:
    frame = texture(np.random.default_rng(0))
    assert warping_error([frame] * 5) == 0.0


def test_error_grows_with_flicker() -> None:
    rng = np.random.default_rng(1)
    frame = texture(rng)
    pairs = flow_pairs([frame] * 6)  # flow on the clean frames, as with a reference
    errors = [warping_error([noisy(frame, rng, s) for _ in range(6)], pairs) for s in (1.0, 4.0, 12.0)]
    assert 0 < errors[0] < errors[1] < errors[2]
    # sum of squares over 3 channels of the difference of two N(0, s) frames: 6 s^2 / 255^2
    assert errors[2] == pytest.approx(6 * 12.0**2 / 255**2, rel=0.15)


def test_translation_is_compensated() -> None:
    big = texture(np.random.default_rng(2), 96, 160)
    frames = [big[:, 3 * i:3 * i + 128] for i in range(5)]
    assert warping_error(frames) < 1e-3  # motion is warped away; an unwarped diff is far larger
    unwarped = np.mean([((a / 255.0 - b / 255.0) ** 2).sum(axis=2).mean()
                        for a, b in zip(frames, frames[1:])])
    assert unwarped > 20 * warping_error(frames)


def test_non_occlusion_mask() -> None:
    zero = np.zeros((20, 30, 2), np.float32)
    assert non_occlusion(zero, zero).all()
    inconsistent = zero.copy()
    inconsistent[5:10, 5:10] = 4.0  # flow_b says +4 where flow_f says 0: occluded
    mask = non_occlusion(inconsistent, zero)
    assert mask[5:10, 5:10].sum() == 0 and mask.sum() == 20 * 30 - 25


def write_clip(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=10, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "rgb24"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())


def test_evaluate_video(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    big = texture(rng, 96, 160)
    clean = [big[:, 2 * i:2 * i + 128].copy() for i in range(6)]
    rainy = [noisy(f, rng, 20.0) for f in clean]
    output = [noisy(f, rng, 3.0) for f in clean]
    for name, frames in (("clean", clean), ("rainy", rainy), ("out", output)):
        write_clip(tmp_path / f"{name}.mp4", frames)
    r = evaluate_video(tmp_path / "out.mp4", tmp_path / "clean.mp4", tmp_path / "rainy.mp4")
    assert r["frames"] == 6 and r["flow_on"] == "reference"
    assert r["e_warp"] < r["e_warp_source"]
    assert 35 < r["psnr_rgb"] < 45 and r["ssim_y"] > 0.8
    alone = evaluate_video(tmp_path / "out.mp4")
    assert alone["flow_on"] == "output" and "psnr_rgb" not in alone


def test_laplacian_energy_and_dry_masks() -> None:
    from stream_derain.flicker import dry_masks, laplacian_energy, laplacian_std

    rng = np.random.default_rng(4)
    sharp = texture(rng)
    soft = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    assert laplacian_energy([soft]) < 0.8 * laplacian_energy([sharp])
    assert laplacian_std([soft]) < laplacian_std([sharp])
    rainy = sharp.copy()
    rainy[:, :40] = np.clip(rainy[:, :40].astype(int) + 60, 0, 255).astype(np.uint8)  # rain on the left
    (mask,) = dry_masks([rainy], [sharp], margin=4)
    assert not mask[:, :44].any() and mask[:, 48:].all()
    # on the dry pixels only, the rain on the left does not count
    assert laplacian_energy([rainy], [mask]) == pytest.approx(laplacian_energy([sharp], [mask]))


def test_image_folder_frames_use_the_image_list(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = [texture(rng, 32, 48) for _ in range(3)]
    for i, (f, ext) in enumerate(zip(frames, (".png", ".webp", ".bmp"), strict=True)):
        cv2.imwrite(str(tmp_path / f"{i:02d}{ext}"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else [])
    cv2.imwrite(str(tmp_path / ".hidden.png"), frames[0])
    (tmp_path / "notes.txt").write_text("not a frame")
    got = read_frames(tmp_path)
    assert len(got) == 3 and all(np.array_equal(a, b) for a, b in zip(got, frames, strict=True))
    assert len(read_frames(tmp_path, limit=2)) == 2
