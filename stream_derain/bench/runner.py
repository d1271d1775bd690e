"""``run_bench``: every requested backend x precision, engine and/or end-to-end mode,
one JSON-ready dict. A backend that cannot run is a row with its reason, never a gap."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from ..backends import MODULES, PRECISIONS, installed
from ..backends.base import Backend
from ..catalog import ModelInfo, int8_record, resolve_model
from ..devices import gpu_visible
from ..engine_spec import BackendFactory, EngineSpec, open_engine
from ..errors import InputError
from ..io.video import EncodeOptions
from ..stages import make_smoother
from .config import BenchConfig, Variant
from .e2e import run_e2e
from .engine import error_reason, failed_case, run_engine
from .interleave import run_e2e_rounds, run_engine_rounds
from .machine import git_revision, load_average, machine_info
from .timing import LoopPlan, run_in_worker

log = logging.getLogger(__name__)
SCHEMA_VERSION = "stream-derain-bench/1"
NOTES = [
    "engine latency = one backend.infer call (uint8 frames in and out: pre/post-processing and copies "
    "included)",
    "timed calls run in a worker thread, as in the pipeline; activation and warm-up calls are not timed",
    "e2e stage fps are wall-clock throughputs of each stage alone on frames held in memory",
    "efficiency = pipeline fps / fps of the slowest isolated stage; stages share the CPU in the pipeline",
    ("cpu_bound_fps = usable cores / sum of the isolated stages' CPU seconds per frame; "
     "overlap = pipeline fps / min(slowest stage fps, cpu_bound_fps)"),
    ("steady-state: frames between the first and the last arrival at the encoder, without the start-up "
     "and the encoder's drain"),
]
# backend -> modules that make it installed (baseline first: the first variant that runs)
INSTALLED_BY = {name: MODULES[name] for name in ("onnxruntime", "openvino", "torch", "tensorrt")}
__all__ = ["gpu_visible", "run_bench"]


def default_backends() -> tuple[str, ...]:
    """Every backend whose library is installed (GPU-only ones are skipped later if no GPU)."""
    found = tuple(name for name in INSTALLED_BY if installed(name))
    return found or ("onnxruntime",)


def unsupported(backend: str, precision: str) -> str | None:
    """Why ``backend`` cannot run ``precision`` at all (on any device), or None."""
    allowed = PRECISIONS.get(backend)
    if precision == "auto" or allowed is None or precision in allowed:
        return None
    return f"{backend} runs {' or '.join(allowed)}, not {precision}"


def gpu_required(backend: str, precision: str) -> str | None:
    """Why this variant needs a GPU, or None if it can run on the CPU."""
    if backend == "tensorrt":
        return "TensorRT runs engines on an NVIDIA GPU only"
    if backend == "torch" and precision == "fp16":
        return "fp16 with the torch backend needs a CUDA device"
    return None


def model_section(model: ModelInfo) -> dict[str, Any]:
    meta = model.meta or {}
    return {"name": model.name, "version": model.version, "macs_per_pixel": meta.get("macs_per_pixel"),
            "parameters": meta.get("parameters"), "manifest": meta}


def variant_list(cfg: BenchConfig) -> list[Variant]:
    """What the run measures: ``cfg.variants``, else every backend x precision (no
    backends given: the spec's, or every installed one when it is ``auto``)."""
    if cfg.variants:
        return list(cfg.variants)
    return [Variant(f"{b}/{p}", b, p) for b in backend_list(cfg) for p in cfg.precisions]


def backend_list(cfg: BenchConfig) -> tuple[str, ...]:
    """The backends of the grid: ``cfg.backends``, else the spec's, else every installed one."""
    if cfg.backends:
        return cfg.backends
    return default_backends() if cfg.engine.backend == "auto" else (cfg.engine.backend_name,)


def variant_spec(spec: Variant, engine: EngineSpec) -> EngineSpec:
    """The run's engine with a variant's backend and precision (typed options the run's
    ``backend`` carried stay among its ``backend_options``)."""
    typed = () if isinstance(engine.backend, str) else (engine.backend,)
    return dataclasses.replace(engine, backend=spec.backend, precision=spec.precision,
                               backend_options=(*typed, *engine.backend_options))


def _e2e_row(backend: Backend, variant: dict[str, Any], cfg: BenchConfig) -> dict[str, Any]:
    try:
        preset = variant.get("preset") or cfg.preset
        opts = EncodeOptions(preset=preset) if preset else None
        eng = cfg.engine
        res = run_e2e(backend, cfg.e2e_input(), cfg.frames, cfg.batches[0], eng.smooth, eng.smooth_strength,
                      make_smoother, opts=opts, warmup=cfg.warmup, device_frames=eng.device_frames)
        return {**variant, "status": "ok", "reason": None, **res}
    except Exception as exc:  # noqa: BLE001 - reported, never dropped
        log.warning("e2e %s failed: %s", variant["variant"], exc)
        return {**variant, "status": "failed", "reason": error_reason(exc), "input": str(cfg.e2e_input())}


def _not_run(variant: dict[str, Any], cfg: BenchConfig, status: str, reason: str) -> tuple[list, list]:
    engine = [failed_case(variant, w, h, b, status, reason)
              for w, h in cfg.resolutions for b in cfg.batches] if cfg.run_engine else []
    e2e = [{**variant, "status": status, "reason": reason, "input": str(cfg.e2e_input())}] \
        if cfg.run_e2e else []
    return engine, e2e


def start_variant(spec: Variant, model: ModelInfo, cfg: BenchConfig, factory: BackendFactory,
                  has_gpu: bool, stack: ExitStack) -> tuple[dict[str, Any], Backend | None, list, list]:
    """(variant summary, the activated backend or None, engine and e2e rows if it did not
    start); the backend stays active until ``stack`` closes."""
    name, precision = spec.backend, spec.precision
    variant: dict[str, Any] = {"variant": spec.name, "backend": name, "precision": precision, "device": None}
    if spec.named:  # its own model or preset: recorded on every row
        variant.update(model=model.name if spec.model else None, model_path=spec.model, preset=spec.preset)
    need = gpu_required(name, precision)
    reason = unsupported(name, precision) or (f"no GPU visible ({need})" if need and not has_gpu else None)
    if reason:
        log.warning("%s %s", variant["variant"], reason)
        summary = {**variant, "status": "skipped", "reason": reason}
        return summary, None, *_not_run(variant, cfg, "skipped", reason)
    t0 = time.perf_counter()
    try:
        backend = stack.enter_context(open_engine(variant_spec(spec, cfg.engine), model, factory))
    except Exception as exc:  # noqa: BLE001 - not installed, no GPU, bad model: all reported
        reason = error_reason(exc)
        log.warning("%s failed to start: %s", variant["variant"], reason)
        summary = {**variant, "status": "failed", "reason": reason}
        return summary, None, *_not_run(variant, cfg, "failed", reason)
    activate_s = round(time.perf_counter() - t0, 3)
    if name == "auto":  # what derain's --backend auto chose here
        variant.update(backend=backend.name, backend_requested="auto")
    variant.update(device=str(backend.device), **precision_used(backend))
    log.info("benchmarking %s (activated in %.2fs)", backend.describe(), activate_s)
    return {**variant, "status": "ok", "reason": None, "describe": backend.describe(),
            "activate_s": activate_s}, backend, [], []


def _variant_dict(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("variant", "backend", "precision", "device", "precision_used", "precision_psnr_db",
            "loaded_from_cache")
    keys += tuple(k for k in ("precision_dev_psnr_db", "precision_gate") if k in summary)  # int8 only
    extra = ("backend_requested", "model", "model_path", "preset")  # named variants only
    return {k: summary.get(k) for k in keys} | {k: summary[k] for k in extra if k in summary}


def _plan(cfg: BenchConfig) -> LoopPlan:
    return LoopPlan(cfg.warmup, cfg.iters, cfg.budget_s, cfg.min_iters, cfg.max_iters)


def bench_variant(spec: Variant, model: ModelInfo, cfg: BenchConfig, factory: BackendFactory,
                  has_gpu: bool) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(variant summary, engine rows, e2e rows) for one variant."""
    with ExitStack() as stack:
        summary, backend, engine, e2e = start_variant(spec, model, cfg, factory, has_gpu, stack)
        if backend is None:
            return summary, engine, e2e
        variant = _variant_dict(summary)
        engine = run_engine(backend, variant, cfg.resolutions, cfg.batches, _plan(cfg), cfg.seed) \
            if cfg.run_engine else []
        e2e = [_e2e_row(backend, variant, cfg)] if cfg.run_e2e else []
    return summary, engine, e2e


def bench_rounds(models: Callable[[Variant], ModelInfo], cfg: BenchConfig, factory: BackendFactory,
                 has_gpu: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(variants, engine rows, e2e rows) with every variant active at once and its cases
    taken in turn, ``cfg.rounds`` times (:mod:`.interleave`)."""
    variants, engine, e2e, active = [], [], [], []
    with ExitStack() as stack:
        for spec in variant_list(cfg):
            summary, backend, rows, runs = start_variant(spec, models(spec), cfg, factory, has_gpu, stack)
            variants.append(summary)
            engine, e2e = engine + rows, e2e + runs
            if backend is not None:
                active.append((backend, _variant_dict(summary)))
        if cfg.run_engine:
            engine += run_engine_rounds(active, cfg.resolutions, cfg.batches, _plan(cfg), cfg.rounds,
                                        cfg.seed)
        if cfg.run_e2e:
            e2e += run_e2e_rounds(active, cfg.rounds, lambda be, variant: _e2e_row(be, variant, cfg))
    order = [v["variant"] for v in variants]
    return variants, sorted(engine, key=lambda r: order.index(r["variant"])), \
        sorted(e2e, key=lambda r: order.index(r["variant"]))


def precision_used(backend: Backend) -> dict[str, Any]:
    """The precision the backend actually runs and its check against FP32 at activation
    (OpenVINO's reduced precisions, int8 on ONNX Runtime: a synthetic frame), for every row
    of the variant; int8 also carries its quality gate on the dev frames from the manifest
    (``precision_dev_psnr_db``: the worst dev set's PSNR-Y against FP32, ``precision_gate``)."""
    check = getattr(backend, "precision_check", None) or {}
    out = {"precision_used": backend.precision, "precision_psnr_db": check.get("psnr_db"),
           "loaded_from_cache": getattr(backend, "loaded_from_cache", None)}
    if backend.precision == "int8":
        gate = ((int8_record(backend.model) or {}).get("checks") or {}).get(backend.name) or {}
        out.update(precision_dev_psnr_db=gate.get("min_agreement_db"),
                   precision_gate=None if not gate else ("passed" if gate.get("passed") else "failed"))
    return out


def add_ratios(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any], fps: Callable[[dict], Any],
               baseline: str | None) -> None:
    """``ratio_vs_baseline`` on each ok row: its fps / the baseline variant's fps for the same key."""
    base = {key(r): fps(r) for r in rows if r["variant"] == baseline and r["status"] == "ok"}
    for r in rows:
        ref = base.get(key(r))
        value = fps(r) if r["status"] == "ok" else None
        r["ratio_vs_baseline"] = round(value / ref, 3) if value and ref else None


def run_bench(cfg: BenchConfig, backend_factory: BackendFactory | None = None) -> dict[str, Any]:
    """Run the benchmark described by ``cfg``; returns the report (see :mod:`.report`).

    Everything (activation included) runs in one worker thread, the way the pipeline
    calls backends; ``backend_factory`` replaces :func:`~stream_derain.backends.create_backend`
    (tests; None: the real one)."""
    return run_in_worker(lambda: _run_bench(cfg, backend_factory))


def _run_bench(cfg: BenchConfig, factory: BackendFactory | None) -> dict[str, Any]:
    if cfg.run_e2e and not cfg.e2e_input().is_file():
        raise InputError(f"end-to-end input not found: {cfg.e2e_input()} "
                         "(pass --input FILE, or --mode engine)")
    started = dt.datetime.now(dt.timezone.utc)
    machine = machine_info()
    model = resolve_model(cfg.engine.model)
    has_gpu = gpu_visible()

    def models(spec: Variant) -> ModelInfo:
        return resolve_model(spec.model) if spec.model else model

    variants, engine, e2e = [], [], []
    if cfg.rounds > 1:
        variants, engine, e2e = bench_rounds(models, cfg, factory, has_gpu)
    for spec in variant_list(cfg) if cfg.rounds == 1 else ():
        summary, rows, runs = bench_variant(spec, models(spec), cfg, factory, has_gpu)
        variants.append(summary)
        engine += rows
        e2e += runs
    baseline = next((v["variant"] for v in variants if v["status"] == "ok"), None)
    add_ratios(engine, lambda r: (r["width"], r["height"], r["batch"]), lambda r: r.get("fps"), baseline)
    add_ratios(e2e, lambda r: 0, lambda r: (r.get("pipeline") or {}).get("fps"), baseline)
    machine["load_average_end"] = load_average()
    return {
        "schema": SCHEMA_VERSION, "created": started.isoformat(timespec="seconds"),
        "duration_s": round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1),
        "config": _config_dict(cfg, has_gpu), "machine": machine, "model": model_section(model),
        "git_revision": git_revision(), "baseline": baseline, "variants": variants, "engine": engine,
        "e2e": e2e, "notes": NOTES,
    }


def _config_dict(cfg: BenchConfig, has_gpu: bool) -> dict[str, Any]:
    eng = cfg.engine
    return {"mode": cfg.mode, "resolutions": [f"{w}x{h}" for w, h in cfg.resolutions],
            "batches": list(cfg.batches), "backends": list(backend_list(cfg)),
            "precisions": list(cfg.precisions), "model": eng.model, "warmup": cfg.warmup, "iters": cfg.iters,
            "budget_s": cfg.budget_s, "min_iters": cfg.min_iters,
            "input": str(cfg.e2e_input()) if cfg.run_e2e else None, "frames": cfg.frames,
            "smooth": eng.smooth, "smooth_strength": eng.smooth_strength, "device_frames": eng.device_frames,
            "threads": eng.threads, "preset": cfg.preset, "rounds": cfg.rounds,
            "variants": [dataclasses.asdict(v) for v in cfg.variants], "gpu_visible": has_gpu}
