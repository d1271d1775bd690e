"""What a benchmark run measures: :class:`BenchConfig` and its small parsers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..backends.options import parse_size
from ..engine_spec import EngineSpec
from ..errors import ConfigError

MODES = ("engine", "e2e", "all")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DEFAULT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((640, 360), (1280, 720), (1920, 1080))
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"  # a source checkout
PACKAGED_SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"  # inside the wheel (pyproject.toml)
DEFAULT_SAMPLE = "rainy_cafe_table_360p.mp4"
EFFICIENCY_TARGET = 0.9
BACKEND_NAMES = ("auto", "onnxruntime", "openvino", "torch", "tensorrt")


@dataclass(frozen=True)
class Variant:
    """One measured variant: a backend and precision, optionally with its own model and
    e2e encoder preset (None: the run's ``model`` / ``preset``). ``backend`` ``auto`` is
    what ``derain`` picks here. From ``--variant NAME=BACKEND/PRECISION[,preset=P][,model=M]``
    (:func:`parse_variant`), e.g. ``v1=onnxruntime/fp32,preset=medium,model=v1.onnx`` beside
    ``default=auto/auto``: a past release's settings against today's defaults in one run."""

    name: str
    backend: str
    precision: str
    preset: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:  # an unknown backend is a failed row, as with --backend
        if self.precision not in PRECISIONS:
            raise ConfigError(f"variant {self.name!r}: unknown precision {self.precision!r}; choose from "
                              f"{', '.join(PRECISIONS)}")

    @property
    def named(self) -> bool:
        """Set apart from the plain backend x precision grid (its own name, model or preset)."""
        return self.name != f"{self.backend}/{self.precision}" or bool(self.preset or self.model)


def parse_variant(text: str) -> Variant:
    """``'v1=onnxruntime/fp32,preset=medium,model=runs/v1.onnx'`` -> :class:`Variant`."""
    name, sep, spec = text.partition("=")
    parts = [p.strip() for p in spec.split(",")]
    backend, slash, precision = parts[0].partition("/")
    if not sep or not name.strip() or not backend:
        raise ConfigError(f"bad variant {text!r}: expected NAME=BACKEND/PRECISION[,preset=P][,model=M]")
    extra: dict[str, str] = {}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq or key not in ("preset", "model") or not value or key in extra:
            raise ConfigError(f"bad variant {text!r}: {part!r} is not preset=P or model=M (once each)")
        extra[key] = value
    if backend.strip() not in BACKEND_NAMES:
        raise ConfigError(f"bad variant {text!r}: unknown backend {backend.strip()!r}; choose from "
                          f"{', '.join(BACKEND_NAMES)}")
    return Variant(name.strip(), backend.strip(), precision.strip() if slash else "auto", **extra)


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run.

    ``engine`` (:class:`~stream_derain.engine_spec.EngineSpec`) holds what ``derain``
    would run: model, threads, smoother, device frames, typed backend options. The grid
    varies it: each of ``backends`` x ``precisions`` (or each of ``variants``) replaces
    the spec's backend and precision, and the engine mode measures each of ``batches``
    (e2e takes the first). Empty ``precisions`` and ``batches`` take the spec's (auto,
    1); empty ``backends`` take the spec's backend unless it is ``auto``, then every
    installed backend (GPU-only ones are reported as skipped where no GPU is visible).
    ``iters`` 0 means adaptive: as many timed iterations as fit in ``budget_s`` seconds
    per case, at least ``min_iters``. ``frames`` caps the frames of the end-to-end input
    (None: the whole file). ``preset``: the end-to-end encoder preset (None: derain's
    default, x264/x265 veryfast). ``variants`` (:class:`Variant`), when given, are
    measured instead of ``backends`` x ``precisions``.
    """

    mode: str = "all"
    engine: EngineSpec = field(default_factory=EngineSpec)
    resolutions: tuple[tuple[int, int], ...] = DEFAULT_RESOLUTIONS
    batches: tuple[int, ...] = ()
    backends: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    warmup: int = 2
    iters: int = 0
    budget_s: float = 3.0
    min_iters: int = 5
    max_iters: int = 2000
    input: Path | None = None
    frames: int | None = 125  # the whole bundled sample
    seed: int = 0
    preset: str | None = None  # e2e encoder preset (None: derain's default, x264 veryfast)
    rounds: int = 1  # > 1: variants active together, cases taken in turn (bench/interleave.py)
    variants: tuple[Variant, ...] = ()

    def __post_init__(self) -> None:
        if not self.precisions:
            object.__setattr__(self, "precisions", (self.engine.precision,))
        if not self.batches:
            object.__setattr__(self, "batches", (self.engine.batch,))
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose from {', '.join(MODES)}")
        for p in self.precisions:
            if p not in PRECISIONS:
                raise ConfigError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
        if any(b < 1 for b in self.batches):
            raise ConfigError("batch sizes must be >= 1")
        if any(w < 1 or h < 1 for w, h in self.resolutions):
            raise ConfigError("resolutions must be positive")
        if self.warmup < 0 or self.iters < 0 or self.budget_s <= 0 or self.min_iters < 1:
            raise ConfigError("warmup/iters must be >= 0, budget > 0, min_iters >= 1")
        if self.rounds < 1:
            raise ConfigError("rounds must be >= 1")
        if self.frames is not None and self.frames < 1:
            raise ConfigError("frames must be >= 1")
        names = [v.name for v in self.variants]
        if len(set(names)) < len(names):
            raise ConfigError(f"variant names must differ: {', '.join(names)}")

    @property
    def run_engine(self) -> bool:
        return self.mode in ("engine", "all")

    @property
    def run_e2e(self) -> bool:
        return self.mode in ("e2e", "all")

    def e2e_input(self) -> Path:
        """The end-to-end input file: ``input`` or the bundled 640x360 sample."""
        return self.input if self.input is not None else default_sample()


def default_sample() -> Path:
    """The 640x360 sample: the checkout's ``samples/`` copy, else the one in the wheel."""
    for folder in (SAMPLES_DIR, PACKAGED_SAMPLES_DIR):
        if (folder / DEFAULT_SAMPLE).is_file():
            return folder / DEFAULT_SAMPLE
    return SAMPLES_DIR / DEFAULT_SAMPLE


def parse_resolution(text: str) -> tuple[int, int]:
    """``'640x360'`` -> ``(640, 360)`` (width x height); also accepts ``360p``/``720p``/``1080p``."""
    named = {"360p": (640, 360), "480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080),
             "1440p": (2560, 1440), "2160p": (3840, 2160), "4k": (3840, 2160)}
    key = text.strip().lower()
    if key in named:
        return named[key]
    h, w = parse_size(text)
    return w, h
