"""The report's JSON schema (:func:`validate_report`) and its files (:func:`write_json`,
:func:`read_json`); rendering is :mod:`.report` (terminal), :mod:`.markdown` and :mod:`.chart`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NUM = (int, float)
NONE = type(None)
STATUSES = ("ok", "failed", "skipped")
TOP = {"schema": str, "created": str, "duration_s": NUM, "config": dict, "machine": dict, "model": dict,
       "git_revision": (str, NONE), "baseline": (str, NONE), "variants": list, "engine": list, "e2e": list}
MACHINE = {"cpu_model": (str, NONE), "cpu_count": (int, NONE), "gpus": list, "libraries": dict,
           "load_average": (list, NONE)}
MODEL = {"name": str, "version": str, "macs_per_pixel": (*NUM, NONE), "parameters": (int, NONE),
         "manifest": dict}
VARIANT = {"variant": str, "backend": str, "precision": str, "status": str, "reason": (str, NONE)}
ENGINE = {**VARIANT, "resolution": str, "width": int, "height": int, "batch": int}
ENGINE_OK = {"fps": NUM, "latency_ms": dict, "mpix_per_s": NUM, "iters": int, "warmup": int, "timer": str,
             "timed_s": NUM, "peak_host_rss_mb": NUM, "host_peak_scope": str,
             "peak_device_mem_mb": (*NUM, NONE), "peak_device_used_mb": (*NUM, NONE),
             "ratio_vs_baseline": (*NUM, NONE)}
E2E = {**VARIANT, "input": str}
E2E_OK = {"width": int, "height": int, "stages": dict, "pipeline": dict, "bottleneck": (str, NONE),
          "bottleneck_fps": (*NUM, NONE), "efficiency": (*NUM, NONE), "efficiency_target": NUM,
          "steady_efficiency": (*NUM, NONE), "cpu_bound_fps": (*NUM, NONE), "overlap": (*NUM, NONE),
          "diagnosis": (str, NONE),
          "ratio_vs_baseline": (*NUM, NONE)}
STAGE_OK = {"frames": int, "seconds": NUM, "fps": NUM, "cpu_ms_per_frame": (*NUM, NONE)}
PIPELINE = {"frames": int, "seconds": NUM, "fps": NUM, "steady_fps": (*NUM, NONE), "startup_s": (*NUM, NONE),
            "drain_s": (*NUM, NONE), "queue_size": int, "cpu_util": (*NUM, NONE),
            "system_cpu_busy": (*NUM, NONE), "other_processes_cores": (*NUM, NONE), "stages": list}
PIPE_STAGE = {"name": str, "items": int, "busy_est_s": NUM, "fps_in_pipeline": (*NUM, NONE),
              "queue_mean": NUM, "queue_max": int, "wait_in_s": NUM, "wait_out_s": NUM}
PERCENTILES = ("p50", "p95", "p99")
STAGE_NAMES = ("decode", "infer", "smooth", "encode")  # "download" too on the device-frame path


def _check(obj: Any, spec: dict[str, Any], where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: expected an object"]
    errors = [f"{where}.{k}: missing" for k in spec if k not in obj]
    errors += [f"{where}.{k}: {type(obj[k]).__name__} is not {spec[k]}" for k in spec
               if k in obj and not _is(obj[k], spec[k])]
    return errors


def _is(value: Any, types: type | tuple[type, ...]) -> bool:
    """isinstance, except that a bool is not accepted as a number."""
    allowed = types if isinstance(types, tuple) else (types,)
    return isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)


def validate_report(report: dict[str, Any]) -> list[str]:
    """Schema problems of a report (empty list: valid)."""
    errors = _check(report, TOP, "report")
    if errors:
        return errors
    errors += _check(report["machine"], MACHINE, "machine") + _check(report["model"], MODEL, "model")
    for i, v in enumerate(report["variants"]):
        errors += _check(v, VARIANT, f"variants[{i}]")
        if v.get("status") not in STATUSES:
            errors.append(f"variants[{i}].status: {v.get('status')!r} not in {STATUSES}")
    for i, r in enumerate(report["engine"]):
        errors += _check(r, ENGINE, f"engine[{i}]")
        if r.get("status") == "ok":
            errors += _check(r, ENGINE_OK, f"engine[{i}]")
            errors += [f"engine[{i}].latency_ms.{p}: missing" for p in PERCENTILES
                       if not isinstance(r.get("latency_ms", {}).get(p), NUM)]
    for i, r in enumerate(report["e2e"]):
        errors += _check(r, E2E, f"e2e[{i}]")
        if r.get("status") == "ok":
            errors += _check(r, E2E_OK, f"e2e[{i}]")
            stages = r.get("stages") if isinstance(r.get("stages"), dict) else {}
            errors += [f"e2e[{i}].stages.{s}: missing" for s in STAGE_NAMES if s not in stages]
            for name, st in stages.items():
                errors += _check(st, {"status": str}, f"e2e[{i}].stages.{name}")
                if isinstance(st, dict) and st.get("status") == "ok":
                    errors += _check(st, STAGE_OK, f"e2e[{i}].stages.{name}")
            pipe = r.get("pipeline")
            errors += _check(pipe, PIPELINE, f"e2e[{i}].pipeline")
            for j, st in enumerate(pipe.get("stages", []) if isinstance(pipe, dict) else []):
                errors += _check(st, PIPE_STAGE, f"e2e[{i}].pipeline.stages[{j}]")
    return errors


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
