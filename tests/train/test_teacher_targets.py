"""Distillation's real pairs: the teacher's outputs on real frames, held-out frames unused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stream_derain.errors import ConfigError  # noqa: E402
from stream_derain.io.images import shrink  # noqa: E402
from stream_derain.model.grown_teacher import build_teacher  # noqa: E402
from stream_derain.train.checkpoint import read_checkpoint  # noqa: E402
from stream_derain.train.config import load_config  # noqa: E402
from stream_derain.train.supervised import TEACHER_ARCH, load_derainer, train_supervised  # noqa: E402
from stream_derain.train.teacher_targets import (  # noqa: E402
    mixed,
    real_crops,
    teacher_pairs,
    training_frames,
)

SMALL = {"channels": 8, "se_blocks": 1, "ca_blocks": 1}
REFINER = {"channels": 8, "blocks": 1}


def write_images(folder: Path, n: int, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        noise = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.resize(noise, size, interpolation=cv2.INTER_CUBIC))
    return folder


def test_held_out_frames_are_never_used(tmp_path):
    folder = write_images(tmp_path / "real", 10)
    names = [p.name for p in training_frames([folder], holdout=0.2)]
    assert names == [f"{i:03d}.png" for i in range(8)]


def test_teacher_pairs_hold_the_teachers_output(tmp_path):
    folder = write_images(tmp_path / "real", 3, size=(90, 50))
    (folder / "broken.png").write_bytes(b"not an image")
    teacher = build_teacher(SMALL, REFINER)
    torch.nn.init.normal_(teacher.refiner.head.weight, std=0.05)
    pairs = teacher_pairs(teacher, [folder], holdout=0.0, max_side=64, min_side=16)
    assert len(pairs) == 3  # the undecodable file skipped
    frame = pairs[0]
    assert frame.shape[2] == 6 and max(frame.shape[:2]) == 64  # box-resized to the long side
    x = torch.from_numpy(frame[..., :3].transpose(2, 0, 1).copy())[None]
    h, w = frame.shape[:2]
    x = torch.nn.functional.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
    with torch.no_grad():
        ref = teacher(x)[0, :, :h, :w].numpy().transpose(1, 2, 0)
    assert np.allclose(frame[..., 3:], ref, atol=1e-5)
    assert not np.allclose(frame[..., 3:], frame[..., :3], atol=1e-3)  # the teacher did something


def test_crops_stay_aligned_and_the_mix_follows_its_share():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (40, 50, 3)).astype(np.float32)
    pair = np.concatenate([img, 1.0 - img], axis=2)
    crops = real_crops([pair], 16, rng)
    for _ in range(5):
        a, b = next(crops)
        assert a.shape == b.shape == (16, 16, 3)
        assert np.allclose(b, 1.0 - a, atol=1e-5)
    synthetic = iter(lambda: ("s", "s"), None)
    real = iter(lambda: ("r", "r"), None)
    draws = [next(mixed(synthetic, real, 0.25, rng))[0] for _ in range(2000)]
    assert 0.2 < draws.count("r") / 2000 < 0.3
    assert shrink(img, 100) is img


def test_frozen_grown_teacher_then_distilled_student(tmp_path):
    clean = write_images(tmp_path / "clean", 4)
    real = write_images(tmp_path / "real", 5, size=(80, 60), seed=1)
    base = {"clean_dirs": [str(clean)], "exclude_like": [], "batch_size": 4, "crop": 32, "warmup": 2,
            "steps": 4, "log_every": 2, "ckpt_every": 2, "student": SMALL}

    def cfg(name: str, **kw):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**base, "out_dir": str(tmp_path / name), **kw}))
        return load_config(path)

    base_student = train_supervised(cfg("base"))
    teacher = train_supervised(cfg("teacher", model="grown_teacher", refiner=REFINER, init=str(base_student),
                                   freeze_student=True))
    ckpt = read_checkpoint(teacher)
    assert ckpt["arch"] == TEACHER_ARCH
    start = read_checkpoint(base_student)["model"]
    for k, v in start.items():  # frozen: the teacher's student is still the one it grew from
        assert torch.equal(ckpt["model"][f"student.{k}"], v), k
    head = ckpt["model"]["refiner.head.weight"]
    assert head.abs().sum() > 0  # while the refiner (zero at step 0) was trained
    model, _ = load_derainer(teacher)
    assert model.multiple == 4
    student = train_supervised(cfg("student", teacher=str(teacher), real_dirs=[str(real)], real_share=0.5))
    assert read_checkpoint(student)["step"] == 4
    with pytest.raises(ConfigError, match="grown_teacher"):
        cfg("bad", refiner=REFINER)
    with pytest.raises(ConfigError, match="grown_teacher"):
        cfg("bad1", freeze_student=True)
    with pytest.raises(ConfigError, match="model must be"):
        cfg("bad2", model="giant")
