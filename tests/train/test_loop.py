"""The one training loop (train/loop.py): LR schedule, checkpoint cadence and stop_at,
exact resume (step, LR, RNG), old checkpoints, and that every stage runs it."""

from __future__ import annotations

import ast
import inspect
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stream_derain.train import loop  # noqa: E402
from stream_derain.train.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from stream_derain.train.config import StageConfig, TrainConfig  # noqa: E402

TRAIN = Path(loop.__file__).parent


def cfg(tmp_path: Path, **kw: object) -> StageConfig:
    base = {"out_dir": str(tmp_path / "run"), "steps": 10, "warmup": 3, "lr": 0.1, "min_lr": 0.01,
            "log_every": 2, "ckpt_every": 3, "device": "cpu"}
    return StageConfig(**{**base, **kw})


def train(c: StageConfig, trace: list[tuple[int, float, float, float, float]]) -> loop.Run:
    """A tiny linear model; every step records (step, LR, data-RNG, torch-RNG and
    Python-RNG draws), so a resumed run can be compared with a straight one."""
    loop.seed(c)
    model = torch.nn.Linear(4, 1)
    run = loop.open_run(c, "Tiny", model, {"in": 4})

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        x = run.tensor(run.rng.standard_normal((8, 4)).astype(np.float32))
        noise = torch.randn(8, 1)
        trace.append((run.step, run.opt.param_groups[0]["lr"], float(x[0, 0]), float(noise[0, 0]),
                      random.random()))
        return x, x.sum(1, keepdim=True) + 0.1 * noise

    def loss_fn(b: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = b
        return torch.nn.functional.mse_loss(model(x), y), {"y": float(y.mean())}

    loop.run_loop(run, batch, loss_fn)
    return run


def test_lr_warms_up_then_decays_to_min_lr(tmp_path):
    c = cfg(tmp_path)
    lrs = [loop.lr_at(s, c) for s in range(c.steps + 1)]
    assert lrs[:3] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1])
    assert lrs[3] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))


def test_resume_continues_at_the_right_step_with_the_same_lr_and_rng(tmp_path):
    straight, first, second = [], [], []
    a = train(cfg(tmp_path / "a"), straight)
    b = train(cfg(tmp_path / "b", stop_at=4), first)
    assert [t[0] for t in first] == [0, 1, 2, 3] and read_checkpoint(b.last)["step"] == 4
    b = train(cfg(tmp_path / "b"), second)
    assert second[0][0] == 4 and second[0][1] == pytest.approx(loop.lr_at(4, b.cfg))
    assert first + second == straight  # steps, LRs and every RNG's draws
    assert b.step == a.step == 10
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert read_checkpoint(b.last)["optimizer"]["state"][0]["step"] == 10


def test_checkpoints_every_ckpt_every_and_at_stop_at(tmp_path, monkeypatch):
    saved = []

    def spy(path: Path, **kw: object) -> None:
        saved.append(kw["step"])
        save_checkpoint(path, **kw)

    monkeypatch.setattr(loop, "save_checkpoint", spy)
    train(cfg(tmp_path, stop_at=7), [])
    assert saved == [3, 6, 7]
    again = []
    train(cfg(tmp_path, stop_at=7), again)  # already at stop_at: nothing to do
    assert again == [] and saved == [3, 6, 7]
    train(cfg(tmp_path), [])
    assert saved == [3, 6, 7, 9, 10]
    ckpt = read_checkpoint(Path(cfg(tmp_path).out_dir) / "last.pt")
    assert sorted(ckpt) == ["arch", "extra", "model", "model_cfg", "optimizer", "rng", "step", "train_cfg"]
    assert ckpt["train_cfg"]["stop_at"] == 0 and ckpt["extra"]["modules"] == {}


def test_a_checkpoint_without_modules_resumes_with_its_step_and_seconds(tmp_path):
    """The layout supervised.py wrote before the loop existed: extra = {train_seconds}."""
    c = cfg(tmp_path)
    loop.seed(c)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=0.0)
    save_checkpoint(loop.last_checkpoint(c), arch="Tiny", model_cfg={"in": 4}, model=model, optimizer=opt,
                    step=5, train_cfg={}, data_rng=np.random.default_rng(0), extra={"train_seconds": 12.5})
    trace = []
    run = train(c, trace)
    assert trace[0][0] == 5 and run.step == 10
    assert read_checkpoint(run.last)["extra"]["train_seconds"] >= 12.5


def test_modules_beside_the_model_are_trained_saved_and_resumed(tmp_path):
    c = cfg(tmp_path, stop_at=2)
    for _ in range(2):
        loop.seed(c)
        model, adapter = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
        run = loop.open_run(c, "Tiny", model, {}, {"adapter": adapter})
        start = adapter.weight.detach().clone()
        x = torch.ones(2, 4)
        loop.run_loop(run, lambda: x, lambda b: (adapter(model(b)).pow(2).mean(), {}))
        assert not torch.equal(start, adapter.weight)
        saved = read_checkpoint(run.last)["extra"]["modules"]["adapter"]
        assert torch.equal(saved["weight"], adapter.weight)
        c = replace(c, stop_at=4)
    assert read_checkpoint(run.last)["step"] == 4


def test_train_config_is_a_stage_config():
    assert issubclass(TrainConfig, StageConfig)
    from stream_derain.train.transfer.distill import DistillConfig
    from stream_derain.train.transfer.finetune import FinetuneConfig
    from stream_derain.train.transfer.teachers import RecognitionTrainConfig, ReconstructionTrainConfig

    for cls in (RecognitionTrainConfig, ReconstructionTrainConfig, DistillConfig, FinetuneConfig):
        assert issubclass(cls, StageConfig)


def test_only_the_loop_steps_optimisers_and_writes_checkpoints():
    """Every stage's train function runs loop.run_loop; no stage module has a loop of
    its own (optimiser steps, LR setting, checkpoint writing, RNG restoring)."""
    from stream_derain.train import supervised
    from stream_derain.train.transfer import distill, finetune, teachers

    stages = [supervised.train_supervised, teachers.train_recognition, teachers.train_reconstruction,
              distill.train_distill, finetune.train_finetune]
    for fn in stages:
        assert "loop.run_loop(" in inspect.getsource(fn), fn.__name__
    banned = {"backward", "zero_grad", "save_checkpoint", "set_rng_state", "lr_at", "param_groups"}
    for path in sorted(TRAIN.rglob("*.py")):
        if path.name in ("loop.py", "checkpoint.py"):
            continue
        tree = ast.parse(path.read_text())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert not banned & names, (path.name, banned & names)


def test_supervised_runs_the_loop(tmp_path, monkeypatch):
    import cv2

    from stream_derain.train import supervised

    folder = tmp_path / "clean"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 40, 3), 60 * i + 40, np.uint8))
    calls = []
    real = loop.run_loop
    monkeypatch.setattr(loop, "run_loop", lambda run, *a: calls.append(run.step) or real(run, *a))
    c = TrainConfig(out_dir=str(tmp_path / "run"), clean_dirs=(str(folder),), exclude_like=(), steps=2,
                    batch_size=2, crop=32, warmup=1, device="cpu",
                    student={"channels": 8, "se_blocks": 1, "ca_blocks": 1})
    assert read_checkpoint(supervised.train_supervised(c))["step"] == 2 and calls == [0]


def test_transfer_commands_share_their_options(monkeypatch):
    from typer.testing import CliRunner

    from stream_derain.cli import app, transfer_cmd

    seen = {}
    monkeypatch.setattr(transfer_cmd, "_run", lambda stage, config, overrides: seen.update(
        {stage: (config, overrides)}))
    common = ["--config", "c.json", "--out-dir", "o", "--steps", "5", "--stop-at", "2", "--threads", "1",
              "--device", "cpu"]
    own = {"recognition": [], "reconstruction": [],
           "distill": ["--recognition", "r.pt", "--reconstruction", "c.pt"],
           "finetune": ["--init", "i.pt", "--contrastive-weight", "0.1", "--semi-weight", "0.2"]}
    for stage, flags in own.items():
        result = CliRunner().invoke(app, ["train", stage, *common, *flags])
        assert result.exit_code == 0, result.output
    shared = {"out_dir": "o", "steps": 5, "stop_at": 2, "threads": 1, "device": "cpu"}
    assert seen["recognition"] == seen["reconstruction"] == (Path("c.json"), shared)
    assert seen["distill"][1] == {**shared, "recognition": "r.pt", "reconstruction": "c.pt"}
    assert seen["finetune"][1] == {**shared, "init": "i.pt", "contrastive_weight": 0.1, "semi_weight": 0.2}


def test_weight_average_is_kept_saved_resumed_and_delivered(tmp_path):
    from stream_derain.train.checkpoint import weights_to_use

    straight = train(cfg(tmp_path / "a", ema=0.9), [])
    ckpt = read_checkpoint(straight.last)
    average = weights_to_use(ckpt)["model"]
    assert set(average) == set(ckpt["model"])
    # the average lags the walk: it is not the last weights
    assert not torch.equal(average["weight"], ckpt["model"]["weight"])
    train(cfg(tmp_path / "b", ema=0.9, stop_at=4), [])
    resumed = read_checkpoint(train(cfg(tmp_path / "b", ema=0.9), []).last)
    for k, v in average.items():
        assert torch.allclose(weights_to_use(resumed)["model"][k], v), k
    plain = read_checkpoint(train(cfg(tmp_path / "c"), []).last)  # no average: the weights as trained
    assert "ema" not in plain and weights_to_use(plain)["model"] is plain["model"]


def test_a_weight_average_cannot_resume_a_run_that_had_none(tmp_path):
    from stream_derain.errors import ConfigError, ModelError

    train(cfg(tmp_path, stop_at=4), [])
    with pytest.raises(ModelError, match="weight average"):
        train(cfg(tmp_path, ema=0.9), [])
    with pytest.raises(ConfigError, match="ema"):
        cfg(tmp_path, ema=1.0)


def test_boosted_parameters_train_at_a_multiple_of_the_lr_and_resume_so(tmp_path):
    c = cfg(tmp_path, steps=4)
    loop.seed(c)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    run = loop.open_run(c, "Tiny", model, {}, boosted=list(model[1].parameters()), boost=10.0)

    def batch() -> torch.Tensor:
        return run.tensor(run.rng.standard_normal((8, 4)).astype(np.float32))

    loop.run_loop(run, batch, lambda x: (model(x).pow(2).mean(), {}))
    base, boosted = run.opt.param_groups
    assert base["lr"] == pytest.approx(loop.lr_at(3, c))  # the LR of the last step taken
    assert boosted["lr"] == pytest.approx(10 * loop.lr_at(3, c))
    assert {id(p) for p in boosted["params"]} == {id(p) for p in model[1].parameters()}
    resumed = loop.open_run(replace(c, steps=5), "Tiny", model, {}, boosted=list(model[1].parameters()),
                            boost=10.0)
    assert resumed.step == 4 and resumed.opt.param_groups[1]["lr_mult"] == 10.0


def test_supervised_command_takes_stop_at_like_the_transfer_commands(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from stream_derain.cli import app
    from stream_derain.train import supervised

    seen = []
    monkeypatch.setattr(supervised, "train_supervised", lambda c: seen.append(c) or tmp_path / "last.pt")
    result = CliRunner().invoke(app, ["train", "supervised", "--out-dir", str(tmp_path), "--steps", "8",
                                      "--stop-at", "3"])
    assert result.exit_code == 0, result.output
    assert (seen[0].steps, seen[0].stop_at) == (8, 3)


def test_a_run_of_no_steps_saves_its_model_as_initialised(tmp_path):
    """steps = 0: a composition of its parents (``init`` and ``base_init``) still gets
    its checkpoint, with the step and the config that made it."""
    run = train(cfg(tmp_path, steps=0), trace := [])
    ckpt = read_checkpoint(run.last)
    assert trace == [] and ckpt["step"] == 0 and ckpt["train_cfg"]["steps"] == 0
    for k, v in run.model.state_dict().items():
        assert torch.equal(v, ckpt["model"][k]), k
