"""Training smoke tests on a handful of tiny images: loss falls, checkpoints reload
and resume, bad inputs give clear errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stream_derain import synth  # noqa: E402
from stream_derain.errors import ConfigError, ModelError  # noqa: E402
from stream_derain.model.student import build_student, student_config_dict  # noqa: E402
from stream_derain.train.checkpoint import load_weights, read_checkpoint  # noqa: E402
from stream_derain.train.config import TrainConfig, load_config  # noqa: E402
from stream_derain.train.data import batch_arrays, load_folders, synthetic_pairs  # noqa: E402
from stream_derain.train.supervised import ARCH, supervised_loss, train_supervised  # noqa: E402

SMALL = {"channels": 8, "se_blocks": 1, "ca_blocks": 1}


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        noise = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
        base = cv2.resize(noise, (64, 64), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{i}.png"), base)
    return folder


def config(tmp_path: Path, image_dir: Path, **kw) -> TrainConfig:
    base = {"out_dir": str(tmp_path / "run"), "clean_dirs": [str(image_dir)], "exclude_like": [],
            "steps": 60, "batch_size": 4, "crop": 32, "warmup": 5, "lr": 3e-3, "log_every": 20,
            "ckpt_every": 20, "student": SMALL}
    base.update(kw)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(base))
    return load_config(path)


def fixed_batch_loss(ckpt_path: Path, image_dir: Path) -> float:
    model = build_student(**SMALL)
    ckpt = read_checkpoint(ckpt_path)
    load_weights(ckpt, model, ARCH, student_config_dict(model))
    rng = np.random.default_rng(123)
    pairs = synthetic_pairs(load_folders([image_dir]), 32, rng, synth.PairRecipe(heavy_fraction=0.5))
    rainy, clean = (torch.from_numpy(a) for a in batch_arrays(pairs, 16))
    with torch.no_grad():
        return float(supervised_loss(model, rainy, clean, 0.5))


def test_loss_falls_and_checkpoint_reloads(tmp_path, image_dir):
    cfg = config(tmp_path, image_dir, steps=1)
    train_supervised(cfg)
    early = fixed_batch_loss(Path(cfg.out_dir) / "last.pt", image_dir)
    cfg = config(tmp_path, image_dir, steps=120)
    last = train_supervised(cfg)  # resumes at step 1
    ckpt = read_checkpoint(last)
    assert ckpt["step"] == 120
    assert fixed_batch_loss(last, image_dir) < early


def test_resume_is_exact(tmp_path, image_dir):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    straight = config(tmp_path / "a", image_dir, steps=40)
    train_supervised(straight)
    train_supervised(config(tmp_path / "b", image_dir, steps=40, stop_at=20))  # "interrupted"
    assert read_checkpoint(tmp_path / "b" / "run" / "last.pt")["step"] == 20
    resumed = train_supervised(config(tmp_path / "b", image_dir, steps=40))
    a = read_checkpoint(Path(straight.out_dir) / "last.pt")["model"]
    b = read_checkpoint(resumed)["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_init_starts_from_another_run(tmp_path, image_dir):
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
    first = train_supervised(config(tmp_path / "a", image_dir, steps=120))
    # lr ~0: the second run keeps what it was initialised with, and so beats a fresh student
    tiny_lr = {"steps": 2, "lr": 1e-9, "min_lr": 1e-9}
    started = train_supervised(config(tmp_path / "b", image_dir, init=str(first), **tiny_lr))
    fresh = train_supervised(config(tmp_path / "c", image_dir, **tiny_lr))
    assert fixed_batch_loss(started, image_dir) == pytest.approx(fixed_batch_loss(first, image_dir), rel=1e-3)
    assert fixed_batch_loss(started, image_dir) < fixed_batch_loss(fresh, image_dir)


def test_unknown_config_key(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"stepz": 10}))
    with pytest.raises(ConfigError, match="stepz"):
        load_config(path)


def test_missing_and_empty_data_folders(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_folders([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        load_folders([tmp_path / "empty"])


def test_undecodable_images_are_skipped_and_counted(image_dir, caplog):
    (image_dir / "broken.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        images = load_folders([image_dir])
    assert len(images) == 4
    assert "skipped 1 undecodable" in caplog.text


def test_checkpoint_of_another_architecture(tmp_path, image_dir):
    cfg = config(tmp_path, image_dir, steps=5, ckpt_every=5)
    last = train_supervised(cfg)
    bigger = build_student(channels=16, se_blocks=1, ca_blocks=1)
    with pytest.raises(ModelError, match="expected"):
        load_weights(read_checkpoint(last), bigger, ARCH, student_config_dict(bigger), last)
    with pytest.raises(ModelError, match="holds a 'DerainStudent' model, expected 'Teacher'"):
        load_weights(read_checkpoint(last), bigger, "Teacher", student_config_dict(bigger), last)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")


def test_export_command_writes_checked_models_and_dev_scores(tmp_path, image_dir):
    from typer.testing import CliRunner

    from stream_derain.catalog import load_model_info
    from stream_derain.cli import app

    ckpt = train_supervised(config(tmp_path, image_dir, steps=5))
    scores = tmp_path / "eval.json"
    scores.write_text(json.dumps([{"set": "sirr20", "input": {"psnr_y": 20.0, "ssim_y": 0.8},
                                   "output": {"psnr_y": 22.5, "ssim_y": 0.85}}]))
    out = tmp_path / "engines"
    result = CliRunner().invoke(app, ["export", str(ckpt), "--out", str(out), "--version", "7",
                                      "--scores", str(scores)])
    assert result.exit_code == 0, result.output
    info = load_model_info(folder=out)
    entry = json.loads((out / "manifest.json").read_text())["models"][info.name]
    assert info.path("fp32").is_file() and info.path("fp16").is_file()
    assert entry["version"] == "7" and entry["trained_steps"] == 5
    assert entry["dev_scores"] == {"sirr20": {"input_psnr_y": 20.0, "input_ssim_y": 0.8,
                                              "output_psnr_y": 22.5, "output_ssim_y": 0.85}}
    bad = CliRunner().invoke(app, ["export", str(ckpt), "--out", str(out),
                                   "--scores", str(image_dir / "0.png")])
    assert bad.exit_code == 1 and bad.output.startswith("Error: cannot read dev-set scores")


@pytest.fixture
def streak_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "streaks"
    folder.mkdir()
    layer = np.zeros((48, 64), np.uint8)
    for x in range(0, 64, 7):
        cv2.line(layer, (x, 0), (x + 3, 20), 220, 1, cv2.LINE_AA)
    cv2.imwrite(str(folder / "1-4.png"), layer)
    return folder


def test_v2_recipe_trains_with_streak_layers_rain_free_pairs_and_detail_loss(tmp_path, image_dir,
                                                                          streak_dir):
    cfg = config(tmp_path, image_dir, steps=20, rain_layers=str(streak_dir), rain_free_fraction=0.25,
                 compress_fraction=0.5, detail_loss_weight=0.5, bf16=True)
    assert read_checkpoint(train_supervised(cfg))["step"] == 20


def test_held_out_names_are_never_loaded(image_dir):
    assert len(load_folders([image_dir], exclude_names=("0.*", "1.*"))) == 2


def test_detail_loss_sees_smearing_that_l1_barely_sees():
    from stream_derain.train.supervised import detail_loss

    rng = np.random.default_rng(1)
    clean = torch.from_numpy(rng.uniform(0, 1, (1, 3, 32, 32)).astype(np.float32))
    smeared = torch.nn.functional.avg_pool2d(clean, 3, 1, 1, count_include_pad=False)
    assert float(detail_loss(clean, clean)) == 0.0
    assert float(detail_loss(smeared, clean)) > 1.5 * float(torch.nn.functional.l1_loss(smeared, clean))


def test_lowpass_loss_sees_a_brightness_residue_not_texture_noise():
    from stream_derain.train.supervised import lowpass_loss

    rng = np.random.default_rng(2)
    clean = torch.from_numpy(rng.uniform(0, 1, (1, 3, 32, 32)).astype(np.float32))
    checker = torch.from_numpy(np.indices((32, 32)).sum(0) % 2 * 2.0 - 1.0).float()  # zero-mean per 8x8
    assert float(lowpass_loss(clean + 0.04 * checker, clean)) < 1e-6  # fine-scale error: not its business
    assert float(lowpass_loss(clean + 0.04, clean)) == pytest.approx(0.04, rel=1e-4)  # a veil left over


def test_init_from_an_exported_onnx_keeps_new_parts_fresh(tmp_path):
    pytest.importorskip("onnx")
    from stream_derain.model.export import export_onnx
    from stream_derain.train.supervised import init_from

    src = build_student(**SMALL)
    for p in src.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    export_onnx(src, tmp_path / "m.onnx")
    grown = build_student(**SMALL, refine=4)
    init_from(grown, tmp_path / "m.onnx")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():  # the refinement starts at zero: the grown student equals its source
        assert torch.allclose(grown(x), src(x), atol=1e-6)


def test_bf16_autocast_is_used_only_where_the_cpu_has_bf16_units(monkeypatch, caplog):
    from stream_derain import devices
    from stream_derain.train import supervised

    cpu = torch.device("cpu")
    for flags, expected in (("avx2 avx512f", False), ("avx2 avx512f avx512_bf16", True), ("amx_bf16", True)):
        monkeypatch.setattr(supervised, "cpu_info", lambda f=flags: devices.cpu_from_text(f"flags : {f}\n"))
        caplog.clear()
        assert supervised.use_bf16(True, cpu) is expected
        assert ("bf16 autocast off" in caplog.text) is not expected
        assert supervised.use_bf16(False, cpu) is False
