"""Smoke tests of the task-transfer stages on a handful of tiny generated images:
losses fall, checkpoints reload and resume, the contrastive loss behaves, and bad
inputs give clear errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from stream_derain import synth  # noqa: E402
from stream_derain.errors import ConfigError, ModelError  # noqa: E402
from stream_derain.model.student import build_student, count_macs_per_pixel, student_config_dict  # noqa: E402
from stream_derain.model.transfer import build_recognition  # noqa: E402
from stream_derain.train.checkpoint import load_weights, read_checkpoint  # noqa: E402
from stream_derain.train.config import load_config  # noqa: E402
from stream_derain.train.losses import dual_contrast, hinged_contrast, no_new_detail  # noqa: E402
from stream_derain.train.supervised import ARCH  # noqa: E402
from stream_derain.train.transfer.data import (  # noqa: E402
    degraded_batch,
    fixed_pairs,
    load_capped,
    real_batch,
    recognition_batch,
)
from stream_derain.train.transfer.distill import DistillConfig, distill_losses, make_teachers, train_distill  # noqa: E402
from stream_derain.train.transfer.finetune import FinetuneConfig, train_finetune  # noqa: E402
from stream_derain.train.transfer.teachers import (  # noqa: E402
    RECOGNITION_ARCH,
    RECONSTRUCTION_ARCH,
    RecognitionTrainConfig,
    ReconstructionTrainConfig,
    load_frozen,
    train_recognition,
    train_reconstruction,
)

SMALL = {"channels": 8, "se_blocks": 1, "ca_blocks": 1}
TINY_RECOGNITION = {"widths": [8, 8, 8]}
TINY_RECONSTRUCTION = {"channels": 8, "blocks": 1}
COMMON = {"exclude_like": [], "batch_size": 4, "crop": 32, "warmup": 5, "lr": 3e-3, "log_every": 10,
          "ckpt_every": 10}


def smooth_image(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    noise = rng.uniform(0, 1, (6, 6, 3)).astype(np.float32)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """4 smooth "clean" PNGs and 4 "rainy" PNGs made by the synthesiser."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for name in ("clean", "rainy"):
        (root / name).mkdir()
        for i in range(4):
            img = np.clip(smooth_image(rng), 0, 1)
            if name == "rainy":
                img = synth.add_rain(img, rng, synth.sample_params(rng, 1.0))
            cv2.imwrite(str(root / name / f"{i}.png"), (img[..., ::-1] * 255).astype(np.uint8))
    return {"clean_dirs": [str(root / "clean")], "rainy_dirs": [str(root / "rainy")]}


def make_config(cls: type, tmp: Path, data: dict[str, str], **kw: object) -> object:
    keys = {f for f in cls.__dataclass_fields__}
    base = {k: v for k, v in {**COMMON, **data}.items() if k in keys}
    path = tmp / f"{cls.__name__}.json"
    path.write_text(json.dumps({**base, **kw}))
    return load_config(path, cls=cls)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory: pytest.TempPathFactory, data: dict[str, str]) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("teachers")
    rec = make_config(RecognitionTrainConfig, tmp, data, out_dir=str(tmp / "rec"), steps=20, holdout=0.25,
                      eval_crops=8, model=TINY_RECOGNITION)
    con = make_config(ReconstructionTrainConfig, tmp, data, out_dir=str(tmp / "con"), steps=20,
                      model=TINY_RECONSTRUCTION)
    return {"recognition": str(train_recognition(rec)), "reconstruction": str(train_reconstruction(con))}


def test_recognition_learns_resumes_and_reports(tmp_path, data):
    kw = {"out_dir": str(tmp_path / "rec"), "steps": 80, "holdout": 0.25, "eval_crops": 8,
          "model": TINY_RECOGNITION}
    cfg = make_config(RecognitionTrainConfig, tmp_path, data, stop_at=10, **kw)
    rainy = [load_capped(d, 720, 32) for d in data["rainy_dirs"]]
    clean = [load_capped(d, 720, 32) for d in data["clean_dirs"]]
    x, y = (torch.from_numpy(a) for a in recognition_batch(rainy, clean, 32, 32, np.random.default_rng(5)))

    def loss_of(path: Path) -> float:
        model = load_frozen(path, RECOGNITION_ARCH)
        with torch.no_grad():
            return float(F.binary_cross_entropy_with_logits(model(x), y))

    early = loss_of(train_recognition(cfg))
    assert read_checkpoint(Path(cfg.out_dir) / "last.pt")["step"] == 10
    last = train_recognition(make_config(RecognitionTrainConfig, tmp_path, data, **kw))
    ckpt = read_checkpoint(last)
    assert ckpt["step"] == 80 and loss_of(last) < early
    assert set(ckpt["extra"]["holdout"]) == {"real_rainy", "real_clean", "synthetic_rain_on_clean",
                                             "same_crops_no_rain"}
    assert ckpt["extra"]["train_seconds"] > 0


def test_reconstruction_loss_falls(tmp_path, data):
    degraded, target = (torch.from_numpy(a) for a in degraded_batch(
        [load_capped(data["clean_dirs"][0], 720, 32)], 16, 32, np.random.default_rng(5)))

    losses = []
    for steps in (10, 80):  # the second call resumes the first run
        cfg = make_config(ReconstructionTrainConfig, tmp_path, data, out_dir=str(tmp_path / "con"),
                          steps=steps, model=TINY_RECONSTRUCTION)
        model = load_frozen(train_reconstruction(cfg), RECONSTRUCTION_ARCH)
        with torch.no_grad():
            losses.append(float(F.l1_loss(model(degraded), target)))
    assert losses[1] < losses[0]


def student_loss(path: Path, rainy: torch.Tensor, clean: torch.Tensor) -> float:
    model = build_student(**SMALL)
    load_weights(read_checkpoint(path), model, ARCH, student_config_dict(model), path)
    with torch.no_grad():
        return float(F.l1_loss(model(rainy), clean))


def distill_objective(cfg: DistillConfig, path: Path, data: dict[str, str]) -> float:
    """The distillation loss of a checkpoint (student + adapters) on one fixed batch."""
    ckpt = read_checkpoint(path)
    student = build_student(**SMALL)
    load_weights(ckpt, student, ARCH, student_config_dict(student), path)
    teachers = make_teachers(cfg, student)
    for name, adapter in teachers.adapters.items():
        adapter.load_state_dict(ckpt["extra"]["modules"][name])
    rng = np.random.default_rng(5)
    real = real_batch([load_capped(data["rainy_dirs"][0], 720, 32)], 16, 32, rng)
    degraded, target = degraded_batch([load_capped(data["clean_dirs"][0], 720, 32)], 16, 32, rng)
    with torch.no_grad():
        batch = (torch.from_numpy(a) for a in (real, degraded, target))
        loss, _ = distill_losses(cfg, student, teachers, *batch)
    return float(loss)


def test_distill_loss_falls_and_keeps_student_architecture(tmp_path, data, teachers):
    losses = {}
    for steps in (10, 60):  # the second call resumes the first run
        cfg = make_config(DistillConfig, tmp_path, data, out_dir=str(tmp_path / "distill"), steps=steps,
                          holdout=0.25, student=SMALL, **teachers)
        losses[steps] = distill_objective(cfg, train_distill(cfg), data)
    assert losses[60] < 0.9 * losses[10]
    ckpt = read_checkpoint(tmp_path / "distill" / "last.pt")
    assert ckpt["arch"] == ARCH and set(ckpt["extra"]["modules"]) == {"recognition", "reconstruction"}
    assert count_macs_per_pixel(build_student()) <= 20_000


def finetune_config(tmp: Path, data: dict[str, str], teachers: dict[str, str],
                    **kw: object) -> FinetuneConfig:
    terms = {"contrastive_weight": 0.05, "semi_weight": 0.02, **kw}
    return make_config(FinetuneConfig, tmp, data, recognition=teachers["recognition"], pairs=16, pair_size=48,
                       semi_batch=2, semi_crop=32, holdout=0.25, student=SMALL, **terms)


def test_finetune_with_all_terms_learns_and_resumes_exactly(tmp_path, data, teachers):
    pairs = fixed_pairs(load_capped(data["clean_dirs"][0], 720, 48), 16, 48, 0.5, 1234)
    rainy, clean = (torch.from_numpy(a) for a in pairs)

    def run(sub: str, **kw: object) -> Path:
        (tmp_path / sub).mkdir(exist_ok=True)
        cfg = finetune_config(tmp_path / sub, data, teachers, out_dir=str(tmp_path / sub / "run"), **kw)
        return train_finetune(cfg)

    early = student_loss(run("b", steps=60, stop_at=10), rainy, clean)
    straight = run("a", steps=60)
    resumed = run("b", steps=60)
    assert student_loss(resumed, rainy, clean) < early
    a, b = read_checkpoint(straight)["model"], read_checkpoint(resumed)["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_contrastive_prefers_clean_output():
    torch.manual_seed(0)
    f = build_recognition(widths=[8, 8, 8]).eval().requires_grad_(False).features
    rng = np.random.default_rng(1)
    clean_np = smooth_image(rng, 32)
    rainy_np = synth.add_rain(clean_np, rng, synth.sample_params(rng, 1.0))
    clean, rainy = (torch.from_numpy(a.transpose(2, 0, 1)[None].copy()) for a in (clean_np, rainy_np))
    good = dual_contrast(f, clean, rainy - clean, rainy, clean)
    bad = dual_contrast(f, rainy, clean, rainy, clean)  # output == input, rain layer == background
    assert float(good) < float(bad)


def test_contrastive_push_stops_at_the_positives_distance():
    ident = lambda x: x  # noqa: E731  (feature space = pixels, to read the numbers)
    pos, neg = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    # halfway between: pulled by 0.5 and pushed by relu(1 - 0.5)
    assert float(hinged_contrast(ident, torch.full_like(pos, 0.5), pos, neg)) == pytest.approx(1.0)
    # further from the negative than the positive is: no push left, only the pull
    far = torch.full_like(pos, -2.0).requires_grad_()
    value = hinged_contrast(ident, far, pos, neg)
    value.backward()
    assert value.item() == pytest.approx(2.0) and torch.allclose(far.grad, torch.full_like(pos, -0.25))


def test_no_new_detail_allows_flattening_and_penalises_invented_texture():
    rng = np.random.default_rng(2)
    streaks = synth.RainParams(layers=1, density=0.004, length=12, width=1.0, brightness=0.5)
    rainy_np = synth.add_rain(smooth_image(rng, 32), rng, streaks)
    rainy = torch.from_numpy(rainy_np.transpose(2, 0, 1)[None].copy())
    flattened = F.avg_pool2d(rainy, 3, stride=1, padding=1, count_include_pad=False)
    grid = torch.zeros_like(rainy)
    grid[..., ::4, :] = 0.1
    assert float(no_new_detail(rainy, rainy)) == 0.0
    # a blur only moves some edges by a pixel (0.32 of the grid's excess on this image)
    assert float(no_new_detail(flattened, rainy)) < 0.5 * float(no_new_detail(rainy + grid, rainy))


def test_missing_and_empty_folders_are_config_errors(tmp_path, data):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "nope", tmp_path / "empty"):
        cfg = make_config(RecognitionTrainConfig, tmp_path, data, out_dir=str(tmp_path / "rec"), steps=2,
                          rainy_dirs=[str(folder)], model=TINY_RECOGNITION)
        with pytest.raises(ConfigError, match="not found|no images"):
            train_recognition(cfg)
    with pytest.raises(ConfigError, match="stepz"):
        make_config(FinetuneConfig, tmp_path, data, stepz=3)


def test_undecodable_images_are_skipped_and_counted(tmp_path, data, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for src in Path(data["clean_dirs"][0]).iterdir():
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING):
        images = load_capped(folder, 720, 32)
    assert len(images) == 4 and "skipped 1 undecodable" in caplog.text


def test_checkpoint_of_another_architecture_is_named(tmp_path, data, teachers):
    cfg = make_config(DistillConfig, tmp_path, data, out_dir=str(tmp_path / "d"), steps=2, student=SMALL,
                      recognition=teachers["reconstruction"], reconstruction=teachers["reconstruction"])
    expected = "holds a 'ReconstructionTeacher' model, expected 'RecognitionTeacher'"
    with pytest.raises(ModelError, match=expected):
        train_distill(cfg)
    cfg = finetune_config(tmp_path, data, teachers, out_dir=str(tmp_path / "f"), steps=2,
                          init=teachers["recognition"])
    with pytest.raises(ModelError, match="holds a 'RecognitionTeacher' model, expected 'DerainStudent'"):
        train_finetune(cfg)


def test_ablation_scores_rows_on_pairs_and_held_out_frames(tmp_path, data, teachers):
    from stream_derain.train.ablation import AblationConfig, run_ablation, side_by_side, write_reports

    pairs = tmp_path / "pairs" / "tiny"
    for sub in ("rain", "clean"):
        (pairs / sub).mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(3):
        clean = np.clip(smooth_image(rng, 48), 0, 1)
        rainy = synth.add_rain(clean, rng, synth.sample_params(rng, 1.0))
        for sub, img in (("clean", clean), ("rain", rainy)):
            cv2.imwrite(str(pairs / sub / f"{i}.png"), (img[..., ::-1] * 255 + 0.5).astype(np.uint8))
    row = train_finetune(finetune_config(tmp_path, data, teachers, out_dir=str(tmp_path / "ft"), steps=3,
                                         contrastive_weight=0.0, semi_weight=0.0))
    cfg = AblationConfig(rows=(("tiny", str(row)),), recognition=teachers["recognition"], sets=(str(pairs),),
                         real_dirs=tuple(data["rainy_dirs"]), holdout=0.5, judge=teachers["recognition"])
    rows = run_ablation(cfg)
    assert [r["row"] for r in rows] == ["input", "tiny"]
    inp, out = rows
    assert inp["tiny"]["psnr_y"] > 0 and out["tiny"]["psnr_y"] > 0 and out["tiny"] != inp["tiny"]
    assert 0.0 <= out["rain_rainy"] <= 1.0 and len(out["outputs"]["rainy"]) == 2  # half of 4 frames held out
    assert out["judge_rainy"] == out["rain_rainy"]  # the judge here is the same model: same score
    assert out["macs_per_pixel"] > 0 and out["steps"] == 3 and out["train_seconds"] is not None
    table = write_reports(rows, cfg, tmp_path / "a.json", tmp_path / "a.md")
    assert table.count("\n") == 4 and "| tiny |" in table and "judge rainy" in table
    assert json.loads((tmp_path / "a.json").read_text())
    side_by_side(rows, ["input", "tiny"], tmp_path / "sbs.png", per_folder=1)
    assert cv2.imread(str(tmp_path / "sbs.png")).shape == (300, 960, 3)
