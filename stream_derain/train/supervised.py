"""Supervised training: the student on synthetic rain over clean photos.

Loss = L1(O, B) + w_r * L1(R, I - B) + w_d * L1(grad O, grad B) + w_l * L1(pool8 O,
pool8 B): the output is pulled to the clean background B, the rain branch to the true
rain layer (rainy minus clean, veil included), the output's horizontal and vertical
differences to the background's, so that smearing texture (or inventing it) costs as
much as a wrong grey level ("detail loss", v2; w_d = 0 is v1's loss), and (v4's
"low-pass loss") its 8x8 means to the background's: brightness left over. Pairs come from
:func:`~stream_derain.synth.rain_pair`: procedural and (v2) photometric streaks, a
share JPEG-compressed, and a share of every batch rain-free (target = input). With a
``teacher`` (distillation, :mod:`.teacher_targets`), a share of the pairs are real
rainy crops with the teacher's output as the target; ``model = "grown_teacher"``
trains that teacher instead of a student (:mod:`stream_derain.model.grown_teacher`).
Runs :func:`.loop.run_loop` (resumes from ``out_dir/last.pt`` when it exists);
channels-last and optional bf16 autocast on the CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import synth
from ..devices import cpu_info
from ..model.grown_teacher import Derainer, GrownTeacher, build_teacher, teacher_config_dict
from ..model.student import DerainStudent, build_student, student_config_dict
from . import loop
from .checkpoint import load_weights, read_checkpoint, weights_to_use
from .config import DATA_ROOT, TrainConfig
from .data import batch_arrays, drop_overlaps, load_folders, rain_free_every, synthetic_pairs
from .losses import gradients
from .teacher_targets import mixed, real_crops, teacher_pairs

log = logging.getLogger(__name__)
ARCH = "DerainStudent"
TEACHER_ARCH = "GrownTeacher"


def load_student(path: Path) -> tuple[DerainStudent, dict]:
    """The student a checkpoint holds (its own hyperparameters; its averaged weights when
    it has them), and the checkpoint."""
    return _student_from(weights_to_use(read_checkpoint(path)), path)


def _student_from(ckpt: dict, path: Path) -> tuple[DerainStudent, dict]:
    model = build_student(**ckpt["model_cfg"])
    load_weights(ckpt, model, ARCH, student_config_dict(model), path)
    return model, ckpt


def load_derainer(path: Path) -> tuple[Derainer, dict]:
    """The student or grown teacher a checkpoint holds (averaged weights when it has
    them), and the checkpoint."""
    ckpt = weights_to_use(read_checkpoint(path))
    if ckpt.get("arch") != TEACHER_ARCH:
        return _student_from(ckpt, path)
    model = build_teacher(ckpt["model_cfg"]["student"], ckpt["model_cfg"]["refiner"])
    load_weights(ckpt, model, TEACHER_ARCH, teacher_config_dict(model), path)
    return model, ckpt


def build_model(cfg: TrainConfig) -> tuple[Derainer, str, dict]:
    """The model ``cfg`` trains, its arch name and its hyperparameters (for checkpoints)."""
    if cfg.model == "grown_teacher":
        teacher = build_teacher(cfg.student, cfg.refiner)
        return teacher, TEACHER_ARCH, teacher_config_dict(teacher)
    student = build_student(**cfg.student)
    return student, ARCH, student_config_dict(student)


def init_from(model: DerainStudent, path: Path) -> None:
    """Start ``model`` from the weights of another student (not its optimiser): a
    checkpoint, or an exported ONNX file (its initialisers carry the parameter names).
    Parameters the source lacks (e.g. a new refinement path) keep their initialisation."""
    if path.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
                   for t in onnx.load(str(path)).graph.initializer}
        state = model.state_dict()
        found = {k: v for k, v in weights.items() if k in state and v.shape == state[k].shape}
        missing = sorted(set(state) - set(found))
        model.load_state_dict({**state, **found})
        log.info("student initialised from %s (%d tensors; kept fresh: %s)", path, len(found),
                 ", ".join(missing) or "none")
        return
    load_weights(weights_to_use(read_checkpoint(path)), model, ARCH, student_config_dict(model), path)
    log.info("student initialised from %s", path)


def detail_loss(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """L1 between the image gradients of output and background (lost or invented detail)."""
    (ox, oy), (cx, cy) = gradients(out), gradients(clean)
    return F.l1_loss(ox, cx) + F.l1_loss(oy, cy)


def lowpass_loss(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """L1 between the 8x8 means of output and background: brightness left over (or taken
    away) in a region costs the same whether or not it follows the streaks."""
    return F.l1_loss(F.avg_pool2d(out, 8), F.avg_pool2d(clean, 8))


def supervised_loss(model: Derainer, rainy: torch.Tensor, clean: torch.Tensor, rain_weight: float,
                    detail_weight: float = 0.0, lowpass_weight: float = 0.0) -> torch.Tensor:
    out, rain, _ = model.forward_all(rainy)
    out, rain = out.float(), rain.float()
    loss = F.l1_loss(out, clean) + rain_weight * F.l1_loss(rain, rainy - clean)
    if detail_weight:
        loss = loss + detail_weight * detail_loss(out, clean)
    if lowpass_weight:
        loss = loss + lowpass_weight * lowpass_loss(out, clean)
    return loss


def _pair_stream(cfg: TrainConfig, rng: np.random.Generator):
    """The endless (input, target) stream of ``cfg``: backgrounds, streak bank, recipe."""
    backgrounds = drop_overlaps(load_folders(cfg.clean_dirs, min_side=cfg.crop,
                                             exclude_names=cfg.exclude_names), cfg.exclude_like)
    bank = synth.StreakBank(DATA_ROOT / cfg.rain_layers) if cfg.rain_layers else None
    log.info("training on %d backgrounds, %d streak layers", len(backgrounds), len(bank) if bank else 0)
    recipe = synth.PairRecipe(heavy_fraction=cfg.heavy_fraction, compress_fraction=cfg.compress_fraction,
                              faint_fraction=cfg.faint_fraction, dense_share=cfg.dense_share,
                              dense_haze=cfg.dense_haze, strong_veil=cfg.strong_veil,
                              coarse_share=cfg.coarse_share)
    pairs = synthetic_pairs(backgrounds, cfg.crop, rng, recipe, bank,
                            rain_free_every(cfg.rain_free_fraction, cfg.batch_size))
    if not cfg.teacher:
        return pairs
    teacher, _ = load_derainer(Path(cfg.teacher))
    real = teacher_pairs(teacher, cfg.real_dirs, cfg.real_holdout, cfg.real_max_side, cfg.crop)
    return mixed(pairs, real_crops(real, cfg.crop, rng), cfg.real_share, rng)


def use_bf16(asked: bool, device: torch.device) -> bool:
    """bf16 autocast where asked for and the CPU computes bf16 in hardware. Without
    bf16 units it is emulated: measured 6.1 s/step against 0.59 in fp32 (AVX2 EPYC),
    so it is turned off with a warning rather than run ten times slower."""
    if not asked or device.type != "cpu":
        return asked
    cpu = cpu_info()
    if "bf16" in cpu.native_precisions():
        return True
    log.warning("bf16 autocast off: %s (%s); training in fp32", cpu.precision_reason("bf16"), cpu.describe())
    return False


def train_supervised(cfg: TrainConfig) -> Path:
    """Train (or resume) and return the path of the final checkpoint."""
    loop.seed(cfg)
    device = loop.pick_device(cfg.device)
    bf16 = use_bf16(cfg.bf16, device)
    log.info("device %s, bf16 autocast %s", device, bf16)
    model, arch, model_cfg = build_model(cfg)
    model = model.to(device).to(memory_format=torch.channels_last)
    if cfg.init and not loop.resumes(cfg):  # a grown teacher starts from its student's weights
        init_from(model.student if isinstance(model, GrownTeacher) else model, Path(cfg.init))
    if cfg.freeze_student:  # AdamW skips parameters that get no gradient
        model.student.requires_grad_(False)
    grown = model.grown_parameters() if isinstance(model, DerainStudent) else []
    run = loop.open_run(cfg, arch, model, model_cfg, boosted=grown, boost=cfg.grown_lr_mult)
    pairs = _pair_stream(cfg, run.rng)

    def batch() -> list[torch.Tensor]:
        return [torch.from_numpy(a).to(device).contiguous(memory_format=torch.channels_last)
                for a in batch_arrays(pairs, cfg.batch_size)]

    def loss_fn(b: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        rainy, clean = b
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = supervised_loss(model, rainy, clean, cfg.rain_loss_weight, cfg.detail_loss_weight,
                                   cfg.lowpass_loss_weight)
        return loss, {}

    return loop.run_loop(run, batch, loss_fn)
