"""Training the multi-frame student (v4) on video windows.

The student (:class:`~stream_derain.model.temporal.TemporalStudent`) starts from a
single-frame student's weights (``init``: v3's ONNX file under checkpoints/ or a checkpoint)
with its temporal evidence convolution at zero, so step 0 is v3. Windows come from
:mod:`.video_data`. Loss, as v3's: L1(O, B) + w_r L1(R, I_0 - B) + w_d L1(grad O,
grad B), the output pulled to the clean target frame B, the rain branch to the
target's true rain layer, the output's gradients to the background's. With the
replacement head (``head`` > 0) only the head trains (v3's network stays frozen) and
the loss adds w_g BCE(gate, open): *open* where the temporal background T is nearer
the clean frame than v3's output (summed over colour), weighted by that difference
(full weight at 4 grey levels; none where replacing changes nothing). Runs the one
loop (:func:`.loop.run_loop`), resumable from ``out_dir/last.pt``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import synth
from ..align import FLOWS
from ..devvideo import REAL_TRAIN_SHARE
from ..errors import ConfigError
from ..model.temporal import OFFSETS, TemporalConfig, TemporalStudent, build_temporal, temporal_config_dict
from . import loop
from .checkpoint import load_weights, read_checkpoint, weights_to_use
from .config import DATA_ROOT, StageConfig
from .data import drop_overlaps, load_folders
from .supervised import detail_loss, init_from, use_bf16
from .video_data import (
    WindowRecipe,
    batch_windows,
    load_clips,
    load_mined_rain,
    load_real_clips,
    load_teacher_clips,
    windows,
)

log = logging.getLogger(__name__)
ARCH = "TemporalStudent"
TRAIN_CLIPS = (
    "clean_video/davis_extra/camel", "clean_video/davis_extra/parkour",
    *(f"clean_video/cityscapes/seq000{i}" for i in range(4)),
    "clean_video/udacity/solidWhiteRight.mp4[0:170]",
)
TEACHER_SOURCES = {"ra1": "real_video/ra1", "rb2": "real_video/rb2",
                   "pexels-262": "real_video/realrain_pexels/262.mp4",
                   "pexels-367": "real_video/realrain_pexels/367.mp4"}
MINED_SOURCES = tuple(TEACHER_SOURCES.values())  # the same clips' trainable part
STILLS = tuple(str(DATA_ROOT / "clean" / d) for d in ("kodak24", "mcmaster", "bsds500_test", "camvid"))


@dataclass(frozen=True)
class TemporalTrainConfig(StageConfig):
    """The multi-frame student on rainy video windows (see :mod:`.video_data`)."""

    out_dir: str = "runs/v4"
    # the single-frame student it grows from: v3's weights, kept under checkpoints/ (an
    # experiment never starts from engines/, which shipping may replace)
    init: str = "checkpoints/v3/derain-student-v3.onnx"
    frames: int = 5
    kernel: int = 1  # of the evidence convolution
    gate: bool = False  # the temporal gate (model.temporal)
    head: int = 0  # hidden channels of the replacement head (model.temporal; v3 frozen)
    floor: float = 0.0  # grey levels the head's replacement ignores (model.temporal)
    every: bool = False  # the head replaces only light every neighbour lacks (model.temporal)
    context: int = 0  # more dilated layers in the head (model.temporal.ReplaceHead)
    rain_input: bool = False  # the head also reads v3's rain layer (model.temporal)
    shared: int = 0  # with ``every``: neighbours that may share the light (model.temporal)
    base_evidence: bool = False  # the head over v4's network, evidence convolution kept (model.temporal)
    base_init: str = ""  # a temporal checkpoint whose weights outside the head replace init's (v4's)
    head_scale: int = 2  # the head's resolution inside: 1/2 or 1/4 (model.temporal.ReplaceHead)
    head_teacher: str = ""  # a temporal checkpoint whose head this head learns (distil_loss)
    gate_loss_weight: float = 1.0  # of the head's direct supervision
    student: dict[str, int] = field(default_factory=dict)
    video_clips: tuple[str, ...] = TRAIN_CLIPS  # relative to the data root
    clean_dirs: tuple[str, ...] = STILLS
    exclude_names: tuple[str, ...] = ("0006R0_*", "0016E5_*")  # CamVid drives of the dev sets
    rain_layers: str = "rain_layers/garg06"
    steps: int = 6000
    crop: int = 128
    lr: float = 2e-4
    min_lr: float = 1e-5
    warmup: int = 50
    temporal_lr_mult: float = 10.0  # the new evidence convolution learns faster
    causal_share: float = 0.5
    still_share: float = 0.4
    static_share: float = 0.0  # of the still windows, a fixed camera (video_data.still_window)
    rain_free_share: float = 0.2
    compress_share: float = 0.3
    heavy_share: float = 0.35
    faint_share: float = 0.35
    dense_share: float = 0.3
    max_stride: int = 3
    align: str = "none"  # "none": implicit; "flow"/"flow-medium": neighbours warped by DIS flow
    # real rain through the teacher (SPANet outputs cached by scripts/teacher_cache.py);
    # with no cache ("") real windows come without targets: for head distillation only
    teacher_share: float = 0.0
    teacher_cache: str = "runs/teacher/spanet"
    teacher_sources: dict[str, str] = field(default_factory=lambda: dict(TEACHER_SOURCES))
    fall_speed: tuple[float, float] = (0.6, 1.6)
    # rain mined from the trainable part of real clips (synth.mined) for this share of the
    # rainy windows; the dev clips 42 and 5 are never mined (a check on unseen rain)
    mined_share: float = 0.0
    mined_sources: tuple[str, ...] = MINED_SOURCES
    rain_loss_weight: float = 0.5
    detail_loss_weight: float = 0.5
    bf16: bool = True
    threads: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frames not in OFFSETS:
            raise ConfigError(f"frames must be one of {sorted(OFFSETS)}, got {self.frames}")
        if self.teacher_share > 0 and not self.teacher_cache and not self.head_teacher:
            raise ConfigError("real windows without a teacher cache have no target: only head "
                              "distillation (head_teacher) trains on them")
        if self.align != "none" and self.align not in FLOWS:
            raise ConfigError(f"align must be 'none' or one of {', '.join(FLOWS)}, got {self.align!r}")

    def recipe(self) -> WindowRecipe:
        """The window fields of this config (same names)."""
        return WindowRecipe(**{f.name: getattr(self, f.name) for f in fields(WindowRecipe)})

    def model_config(self) -> TemporalConfig:
        """The student's fields of this config (same names)."""
        return TemporalConfig(**{f.name: getattr(self, f.name) for f in fields(TemporalConfig)})


def load_temporal(path: Path) -> tuple[TemporalStudent, dict]:
    """The temporal student a checkpoint holds (averaged weights when it has them)."""
    ckpt = weights_to_use(read_checkpoint(path))
    # checkpoints from before a field existed have its default
    cfg = {**asdict(TemporalConfig()), **ckpt["model_cfg"]}
    ckpt = {**ckpt, "model_cfg": cfg}
    model = build_temporal(**cfg)
    load_weights(ckpt, model, ARCH, temporal_config_dict(model), path)
    return model, ckpt


def init_temporal(model: TemporalStudent, path: Path) -> None:
    """Start from a single-frame student (ONNX file or checkpoint: its weights, the temporal
    parts at zero) or from another temporal student's checkpoint (its weights; parts it
    lacks, such as the gate, keep their initialisation)."""
    if path.suffix == ".onnx" or read_checkpoint(path).get("arch") != ARCH:
        init_from(model, path)
        return
    state = _grown_inputs(weights_to_use(read_checkpoint(path))["model"], model.state_dict())
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ConfigError(f"{path} does not fit this temporal student: {', '.join(unexpected)}")
    log.info("temporal student initialised from %s (kept fresh: %s)", path, ", ".join(missing) or "none")


def init_base(model: TemporalStudent, path: Path) -> None:
    """The network under the head from another temporal checkpoint (``base_init``): every
    weight outside ``head.`` (v4's, for a head over v4), the head kept as ``init`` left it."""
    ckpt = read_checkpoint(path)
    if ckpt.get("arch") != ARCH:
        raise ConfigError(f"base_init {path} is not a temporal student's checkpoint")
    base = {k: v for k, v in weights_to_use(ckpt)["model"].items() if not k.startswith("head.")}
    try:
        missing, unexpected = model.load_state_dict(base, strict=False)
    except RuntimeError as exc:  # shapes that differ (another width, another K)
        reason = str(exc).strip().splitlines()[-1].strip()
        raise ConfigError(f"{path} does not fit the network under the head: {reason}") from None
    stray = [*unexpected, *(k for k in missing if not k.startswith("head."))]
    if stray:
        raise ConfigError(f"{path} does not fit the network under the head: {', '.join(stray)}")
    log.info("the network under the head from %s", path)


def _grown_inputs(state: dict, own: dict) -> dict:
    """A convolution that now reads more input channels (a head given more inputs) keeps
    its trained weights for the old ones and zeros for the new: step 0 is the old model."""
    grown = dict(state)
    for key, w in state.items():
        mine = own.get(key)
        if (mine is not None and w.dim() == 4 and w.shape[1] < mine.shape[1]
                and w.shape[0] == mine.shape[0] and w.shape[2:] == mine.shape[2:]):
            grown[key] = torch.cat([w, w.new_zeros(w.shape[0], mine.shape[1] - w.shape[1], *w.shape[2:])], 1)
            log.info("%s: %d new input channel(s) at zero", key, mine.shape[1] - w.shape[1])
    return grown


def temporal_loss(model: TemporalStudent, x: torch.Tensor, clean: torch.Tensor, rain_weight: float,
                  detail_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    out, rain, _ = model.forward_all(x)
    out, rain = out.float(), rain.float()
    l1 = F.l1_loss(out, clean)
    loss = l1 + rain_weight * F.l1_loss(rain, x[:, :3].float() - clean)
    if detail_weight:
        loss = loss + detail_weight * detail_loss(out, clean)
    return loss, {"l1": l1.detach()}


def replace_loss(model: TemporalStudent, x: torch.Tensor, clean: torch.Tensor, detail_weight: float,
                 gate_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The replacement head's loss (module docstring): L1 + detail on the output, and
    the gate supervised by where replacing helps."""
    single, removal, logits, _ = model.replace_terms(x)
    single, removal, logits = single.float(), removal.float(), logits.float()
    out = single - torch.sigmoid(logits) * removal
    l1 = F.l1_loss(out, clean)
    loss = l1 + detail_weight * detail_loss(out, clean)
    with torch.no_grad():
        gain = ((single - clean).abs() - (single - removal - clean).abs()).sum(dim=1, keepdim=True)
        label = (gain > 0).float()
        weight = (gain.abs() * (255.0 / 4.0)).clamp(max=1.0)
    bce = F.binary_cross_entropy_with_logits(logits, label, weight=weight, reduction="sum")
    bce = bce / weight.sum().clamp(min=1.0)
    opened = (torch.sigmoid(logits.detach()) > 0.5).float().mean()
    return loss + gate_weight * bce, {"l1": l1.detach(), "bce": bce.detach(), "open": opened}


# the teacher's logits are learnt within this range: beyond it the gate is shut or open
# for any operating point offset in use (sigmoid(-8 + 1) < 0.001)
DISTIL_LOGIT = 8.0


def distil_loss(model: TemporalStudent, teacher: nn.Module, x: torch.Tensor, clean: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The head learns another head's gate logits (``teacher``, over the same network and
    temporal picture; ``head_teacher``): a smooth L1 between the logits, clamped to
    +-DISTIL_LOGIT, where the replacement would remove anything (elsewhere the gate
    changes nothing). Offsets shift both heads' logits alike, so the operating points
    carry over. Reports the output's L1 against the clean frame."""
    with torch.no_grad():
        out, removal, picture, _ = model.head_input(x)
        wanted = teacher(picture).float().clamp(-DISTIL_LOGIT, DISTIL_LOGIT)
        where = (removal.amax(dim=1, keepdim=True) > 0).float()
    logits = model.head(picture).float()
    err = F.smooth_l1_loss(logits, wanted, reduction="none")
    loss = (err * where).sum() / where.sum().clamp(min=1.0)
    with torch.no_grad():
        l1 = F.l1_loss(out.float() - torch.sigmoid(logits) * removal.float(), clean.float())
    return loss, {"l1": l1, "distil": loss.detach(), "open": (logits.detach() > 0).float().mean()}


def teacher_head(cfg: TemporalTrainConfig, model: TemporalStudent) -> nn.Module:
    """The head that ``head_teacher`` holds, frozen; ConfigError unless it reads the
    picture this model builds."""
    teacher, _ = load_temporal(Path(cfg.head_teacher))
    picture = ("frames", "floor", "every", "shared", "rain_input", "base_evidence")
    differ = [k for k in picture if getattr(teacher.tcfg, k) != getattr(model.tcfg, k)]
    if teacher.head is None or differ:
        raise ConfigError(f"head_teacher {cfg.head_teacher} has no head over this temporal picture"
                          + (f" (differs in {', '.join(differ)})" if differ else ""))
    return teacher.head.eval().requires_grad_(False)


def _window_stream(cfg: TemporalTrainConfig, rng):
    clips = load_clips(cfg.video_clips, DATA_ROOT)
    stills = drop_overlaps(load_folders(cfg.clean_dirs, min_side=cfg.crop, exclude_names=cfg.exclude_names),
                           cfg.exclude_like)
    bank = synth.StreakBank(DATA_ROOT / cfg.rain_layers) if cfg.rain_layers else None
    log.info("training on %d clips, %d stills, %d streak layers", len(clips), len(stills),
             len(bank) if bank else 0)
    teacher = []
    if cfg.teacher_share > 0:  # real windows: SPANet's outputs as targets, or none for head distillation
        sources, share = cfg.teacher_sources, REAL_TRAIN_SHARE
        teacher = (load_teacher_clips(Path(cfg.teacher_cache), sources, DATA_ROOT, share) if cfg.teacher_cache
                   else load_real_clips(sources, DATA_ROOT, share))
    mined = load_mined_rain(cfg.mined_sources, DATA_ROOT, REAL_TRAIN_SHARE) if cfg.mined_share > 0 else []
    if cfg.mined_share > 0 and not mined:
        raise ConfigError(f"mined_share {cfg.mined_share}: no rain mined from {', '.join(cfg.mined_sources)}")
    return windows(clips, stills, cfg.recipe(), bank, rng, teacher, mined)


def train_temporal(cfg: TemporalTrainConfig) -> Path:
    """Train (or resume) and return the path of the final checkpoint."""
    loop.seed(cfg)
    device = loop.pick_device(cfg.device)
    bf16 = use_bf16(cfg.bf16, device)
    model = TemporalStudent(cfg.model_config())
    if cfg.init and not loop.resumes(cfg):
        init_temporal(model, Path(cfg.init))
        if cfg.base_init:
            init_base(model, Path(cfg.base_init))
    if model.head is not None:  # v3 frozen: only the head learns
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("head."))
    model = model.to(device).to(memory_format=torch.channels_last)
    teacher = teacher_head(cfg, model).to(device) if cfg.head_teacher else None
    boosted = [] if model.head is not None else model.grown_parameters()
    run = loop.open_run(cfg, ARCH, model, temporal_config_dict(model), boosted=boosted,
                        boost=cfg.temporal_lr_mult)
    stream = _window_stream(cfg, run.rng)

    def batch() -> list[torch.Tensor]:
        return [torch.from_numpy(a).to(device).contiguous(memory_format=torch.channels_last)
                for a in batch_windows(stream, cfg.batch_size)]

    def loss_fn(b: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if teacher is not None:
                return distil_loss(model, teacher, b[0], b[1])
            if model.head is not None:
                return replace_loss(model, b[0], b[1], cfg.detail_loss_weight, cfg.gate_loss_weight)
            return temporal_loss(model, b[0], b[1], cfg.rain_loss_weight, cfg.detail_loss_weight)

    return loop.run_loop(run, batch, loss_fn)
