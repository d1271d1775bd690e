"""The INT8 file against FP32 on the dev frames, and the verdict of :data:`GATE`
(see the package docstring for the rules)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import Window, aligned, window_at
from ..catalog import ModelInfo
from ..devsets import DATA_ROOT
from ..errors import ConfigError

log = logging.getLogger(__name__)

GATE = {"min_agreement_db": 45.0, "max_delta_db": 0.1, "max_bias_delta": 0.05, "max_detail_delta": 0.005,
        "harmless_db": 60.0}
DEV_VIDEO_ROOT = Path("runs/devvideo")
DEV_VIDEO_STEP = 2  # every 2nd frame of each dev clip is a target (its window reads the others)


@dataclass
class DevSet:
    """Dev frames: (window, ground truth) pairs; ``rain_free``: the ground truth is the
    input (do no harm). ``load`` reads them when the set is checked (memory: one set at a time)."""

    name: str
    load: Callable[[], list[tuple[Window, np.ndarray]]]
    rain_free: bool = False


def _paired(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from ..evaluate import PairSet
    from ..io import images

    return [(images.read_rgb(r), images.read_rgb(c)) for r, c in PairSet.from_dir(folder).pairs()]


def still_sets(model: ModelInfo, data_root: Path = DATA_ROOT, out_root: Path = Path("runs/devsets")
               ) -> list[DevSet]:
    """The single-image dev sets (:func:`stream_derain.devsets.dev_sets`), each image in
    every slot of the window (as ``stream-derain eval`` runs them)."""
    from ..devsets import dev_sets

    def loader(folder: Path) -> Callable[[], list[tuple[Window, np.ndarray]]]:
        return lambda: [(Window((r,) * model.frames), c) for r, c in _paired(folder)]

    return [DevSet(f.name, loader(f), f.name.endswith("_clean")) for f in dev_sets(data_root, out_root)]


def video_sets(model: ModelInfo, data_root: Path = DATA_ROOT, root: Path = DEV_VIDEO_ROOT,
               step: int = DEV_VIDEO_STEP) -> list[DevSet]:
    """The dev video clips (:mod:`stream_derain.devvideo`, rendered when missing): every
    ``step``-th frame a target, its window the clip's frames at the centred offsets."""
    from ..devvideo import render_all

    folders = render_all(root, data_root)
    offsets = model.window("centred")

    def loader(folder: Path) -> Callable[[], list[tuple[Window, np.ndarray]]]:
        def load() -> list[tuple[Window, np.ndarray]]:
            pairs = _paired(folder)
            rainy = [r for r, _ in pairs]
            return [(aligned(window_at(rainy, i, offsets), model), pairs[i][1])
                    for i in range(0, len(pairs), step)]
        return load

    return [DevSet(f"video/{f.name}", loader(f), f.name.endswith("_clean")) for f in folders]


def _figures(out: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    from ..metrics import brightness_bias, detail_ratio, psnr, rgb_to_y

    return {"psnr_y": min(psnr(rgb_to_y(out), rgb_to_y(gt)), 100.0), "bias": brightness_bias(out, gt),
            "detail": detail_ratio(out, gt)}


def _means(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]}


def _infer(backend: Any, window: Window) -> np.ndarray:
    return backend.infer(np.concatenate(window.frames, axis=2)[None])[0]


def check_int8(model: ModelInfo, sets: Sequence[DevSet],
               backends: Sequence[str] = ("openvino", "onnxruntime"), gate: dict[str, float] | None = None,
               threads: int = 0) -> dict[str, Any]:
    """The INT8 file of ``model`` against its FP32 file (ONNX Runtime) on ``sets``, on each
    of ``backends`` that is installed: per set and backend the agreement (PSNR-Y of INT8's
    output against FP32's, mean and worst frame) and the figures against the ground truth
    (PSNR-Y, bias, detail) beside FP32's; per backend the verdict of ``gate`` (:data:`GATE`)."""
    from ..backends import installed
    from ..backends.onnxruntime import OnnxRuntimeBackend
    from ..metrics import psnr, rgb_to_y

    gate = {**GATE, **(gate or {})}
    names = [b for b in backends if installed(b)]
    if not names:
        raise ConfigError(f"none of {', '.join(backends)} is installed")
    runners = {"fp32": OnnxRuntimeBackend(model, "fp32", threads=threads)}
    for name in names:
        if name == "openvino":
            from ..backends.openvino import OpenVINOBackend

            runners[name] = OpenVINOBackend(model, "int8", threads=threads)
        elif name == "onnxruntime":
            runners[name] = OnnxRuntimeBackend(model, "int8", threads=threads)
        else:
            raise ConfigError(f"int8 runs on openvino or onnxruntime, not {name}")
    result: dict[str, Any] = {"sets": {}, "checks": {}}
    with ExitStack() as stack:
        for be in runners.values():
            stack.enter_context(be)
        for name in names:
            result.setdefault("runtime", {})[name] = runners[name].describe()
        for dev in sets:
            rows: dict[str, list[dict[str, float]]] = {k: [] for k in runners}
            agree: dict[str, list[float]] = {k: [] for k in names}
            for window, gt in dev.load():
                ref = _infer(runners["fp32"], window)
                rows["fp32"].append(_figures(ref, gt))
                for name in names:
                    out = _infer(runners[name], window)
                    rows[name].append(_figures(out, gt))
                    agree[name].append(min(psnr(rgb_to_y(out), rgb_to_y(ref)), 100.0))
            entry: dict[str, Any] = {"frames": len(rows["fp32"]), "rain_free": dev.rain_free,
                                     "fp32": _means(rows["fp32"])}
            for name in names:
                m = _means(rows[name])
                entry[name] = {**m, "agreement_db": round(float(np.mean(agree[name])), 2),
                               "agreement_min_db": round(float(np.min(agree[name])), 2),
                               "delta_db": round(m["psnr_y"] - entry["fp32"]["psnr_y"], 4)}
            result["sets"][dev.name] = entry
            log.info("%s: fp32 %.2f dB; %s", dev.name, entry["fp32"]["psnr_y"], "; ".join(
                f"{n} int8 {entry[n]['psnr_y']:.2f} dB ({entry[n]['delta_db']:+.3f}), "
                f"{entry[n]['agreement_db']:.1f} dB vs fp32" for n in names))
    for name in names:
        result["checks"][name] = verdict(result["sets"], name, gate)
    result["gate"] = gate
    return result


def verdict(sets: dict[str, Any], backend: str, gate: dict[str, float]) -> dict[str, Any]:
    """The gate's verdict for ``backend`` over the per-set figures of :func:`check_int8`."""
    failures = []
    for name, s in sets.items():
        b, f = s[backend], s["fp32"]
        if b["agreement_db"] < gate["min_agreement_db"]:
            failures.append(f"{name}: {b['agreement_db']:.2f} dB vs fp32 < {gate['min_agreement_db']}")
        harmless = s["rain_free"] and min(b["psnr_y"], f["psnr_y"]) >= gate["harmless_db"]
        if abs(b["delta_db"]) > gate["max_delta_db"] and not harmless:
            failures.append(f"{name}: PSNR-Y {b['delta_db']:+.3f} dB vs fp32's (> {gate['max_delta_db']})")
        if s["rain_free"]:
            if abs(b["bias"] - f["bias"]) > gate["max_bias_delta"]:
                failures.append(f"{name}: bias {b['bias']:+.3f} vs fp32's {f['bias']:+.3f} levels")
            if abs(b["detail"] - f["detail"]) > gate["max_detail_delta"]:
                failures.append(f"{name}: detail {b['detail']:.4f} vs fp32's {f['detail']:.4f}")
    agreements = [s[backend]["agreement_db"] for s in sets.values()]
    deltas = [abs(s[backend]["delta_db"]) for s in sets.values()]
    return {"passed": not failures, "failures": failures, "sets": len(sets),
            "min_agreement_db": round(min(agreements), 2) if agreements else None,
            "mean_agreement_db": round(float(np.mean(agreements)), 2) if agreements else None,
            "max_abs_delta_db": round(max(deltas), 4) if deltas else None}


# --- the manifest and the one call -----------------------------------------------------------
