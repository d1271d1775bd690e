"""Training configuration: frozen dataclasses that reject unknown keys.

:class:`StageConfig` holds what every training stage has (run folder, data folders,
steps, batch, LR schedule, seed, cadences, threads, device: what :mod:`.loop` reads);
:class:`TrainConfig` (supervised) and the transfer stages' configs add their own.
A config file is JSON (or TOML) with the fields of the stage's class; anything else
is an error naming the key, so a typo never trains silently with a default.

A file may name ``"base": "other.json"`` (relative to the file): the base is loaded
first (recursively, a cycle is an error) and the file's keys override it, nested
objects (``student``, ``teacher_sources``) key by key, lists whole. A recipe then
says only what differs from the one it continues (``configs/shipped/``), and the
chain reads as the history of the model.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..devsets import DATA_ROOT  # noqa: F401  (re-exported: the training stages' data root)
from ..errors import ConfigError

CLEAN_DIRS = tuple(str(DATA_ROOT / "clean" / d) for d in ("cbsd68", "kodak24", "mcmaster"))
RAINY_DIRS = tuple(str(DATA_ROOT / d) for d in ("real_rain", "real_video/ra1", "real_video/rb2"))  # real rain
BASE_KEY = "base"  # a config file's parent recipe (module docstring)
DEV_CLEAN = tuple(str(DATA_ROOT / "pairs" / s / "clean") for s in ("sirr20", "heavy25"))


@dataclass(frozen=True)
class StageConfig:
    """Fields every training stage has; each stage's dataclass adds its own."""

    out_dir: str = "runs/stage"  # the run folder: last.pt is written and resumed here
    clean_dirs: tuple[str, ...] = CLEAN_DIRS
    exclude_like: tuple[str, ...] = DEV_CLEAN  # dev-set backgrounds, never trained on (by thumbnail)
    steps: int = 1500
    batch_size: int = 16
    crop: int = 96
    lr: float = 1e-3
    min_lr: float = 2e-5
    warmup: int = 100
    weight_decay: float = 0.0  # AdamW's
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: none); see loop
    seed: int = 0
    stop_at: int = 0  # end this invocation after this step (checkpointed); 0 runs to ``steps``
    log_every: int = 50
    ckpt_every: int = 250
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    device: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")


@dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Supervised training on synthetic rain rendered over clean photos."""

    out_dir: str = "runs/baseline"
    init: str = ""  # student checkpoint to start from (e.g. the distilled one); "" = fresh student
    clean_dirs: tuple[str, ...] = (
        str(DATA_ROOT / "clean" / "kodak24"),
        str(DATA_ROOT / "clean" / "mcmaster"),
        str(DATA_ROOT / "clean" / "bsds500_test"),
        str(DATA_ROOT / "clean" / "camvid"),
    )
    # file-name patterns never trained on: CamVid's drive 0006R0 is the camvid dev sets' drive
    exclude_names: tuple[str, ...] = ("0006R0_*",)
    # Garg-Nayar streak layers composited beside the procedural streaks ("" = procedural only)
    # e.g. DATA_ROOT / "rain_layers" / "garg06"; relative paths are taken from DATA_ROOT
    rain_layers: str = ""
    steps: int = 6000
    warmup: int = 200
    rain_loss_weight: float = 0.5
    heavy_fraction: float = 0.5  # share of heavy-rain samples (severity drawn in [0.5, 1])
    rain_free_fraction: float = 0.0  # share of every batch left rain-free (target = input)
    compress_fraction: float = 0.0  # share JPEG-compressed after the rain (input and target alike)
    faint_fraction: float = 0.0  # share of faint, fine rain (synth.PairRecipe.faint_fraction)
    dense_share: float = 0.0  # share of rainy samples with a dense fine-streak sheet (synth.dense_sheet)
    dense_haze: float = 0.0  # half of those sheets defocused into a haze up to this brighter (synth)
    strong_veil: float = 0.0  # share of heavy samples under a strong veil (synth.PairRecipe.strong_veil)
    coarse_share: float = 0.0  # share of heavy samples with long, thick streaks (synth.coarse_sheet)
    detail_loss_weight: float = 0.0  # weight of the L1 of image gradients (lost or invented detail)
    lowpass_loss_weight: float = 0.0  # weight of the L1 of 8x8 means (left-over brightness, a bias)
    bf16: bool = False  # bf16 autocast on the CPU (where it has bf16 units)
    grown_lr_mult: float = 1.0  # learning-rate multiplier of the student's optional parts (grown_parameters)
    student: dict[str, int] = field(default_factory=dict)  # overrides of StudentConfig
    # "student", or "grown_teacher": the student (started from ``init``) grown by a refiner
    # (model.grown_teacher) with ``refiner``'s overrides of RefinerConfig: distillation's teacher
    model: str = "student"
    refiner: dict[str, int] = field(default_factory=dict)
    freeze_student: bool = False  # grown_teacher: train the refiner only (the student stays as ``init``)
    # distillation (train.teacher_targets): a grown teacher's checkpoint ("" = none); its
    # outputs on the real rainy frames of ``real_dirs`` take ``real_share`` of the batches
    teacher: str = ""
    real_dirs: tuple[str, ...] = RAINY_DIRS
    real_share: float = 0.25
    real_holdout: float = 0.2  # the last share of every real folder is never trained on
    real_max_side: int = 640  # real frames are box-resized to at most this long side

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model not in ("student", "grown_teacher"):
            raise ConfigError(f"model must be 'student' or 'grown_teacher', got {self.model!r}")
        if (self.refiner or self.freeze_student) and self.model != "grown_teacher":
            raise ConfigError("refiner and freeze_student are for model 'grown_teacher'")


def _coerce(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) in {cls.__name__}: {', '.join(unknown)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


def read_config_file(path: Path) -> dict[str, Any]:
    """One file's own keys (``base`` included), parsed as TOML or JSON by its suffix."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot parse config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold an object of keys, not {type(data).__name__}")
    return data


def config_chain(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The files of a config's ``base`` chain, root first, each with its own keys (``base``
    removed). A file met twice is a cycle: an error naming the loop."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    seen: list[Path] = []
    current: Path | None = path
    while current is not None:
        here = current.resolve()
        if here in seen:
            loop = " -> ".join(str(p) for p in [*seen[seen.index(here):], here])
            raise ConfigError(f"config base cycle: {loop}")
        seen.append(here)
        data = dict(read_config_file(current))
        base = data.pop(BASE_KEY, None)
        if base is not None and (not isinstance(base, str) or not base):
            raise ConfigError(f"{current}: base must be a file name, got {base!r}")
        chain.append((current, data))
        current = current.parent / base if base else None
    return chain[::-1]


def merge_config(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on ``base``: objects merge key by key (recursively), anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        out[key] = merge_config(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


def read_config(path: Path, cls: type = TrainConfig) -> dict[str, Any]:
    """The merged keys of ``path`` and its bases; a key that ``cls`` lacks is an error
    naming the file that holds it."""
    names = {f.name for f in fields(cls)}
    data: dict[str, Any] = {}
    for file, own in config_chain(path):
        unknown = sorted(set(own) - names)
        if unknown:
            raise ConfigError(f"unknown key(s) in {cls.__name__} ({file}): {', '.join(unknown)}")
        data = merge_config(data, own)
    return data


def load_config(path: Path | None, overrides: dict[str, Any] | None = None, cls: type = TrainConfig) -> Any:
    """Defaults, then the file's keys (after its bases'), then ``overrides`` (e.g. from the CLI)."""
    data = read_config(path, cls) if path is not None else {}
    cfg = _coerce(cls, data)
    clean = {k: v for k, v in (overrides or {}).items() if v is not None}
    if clean:
        cfg = replace(cfg, **_coerce(cls, {**asdict(cfg), **clean}).__dict__)
    return cfg


def config_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg)
