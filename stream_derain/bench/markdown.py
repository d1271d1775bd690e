"""The README's performance section, rendered from bench reports (JSON dicts).

:func:`to_markdown` renders one report as a subsection named after its device;
:func:`section_markdown` joins several (say, a CPU run and a GPU run) under one
intro line. Only what a report measured appears: GPU columns only for rows that ran
on a GPU, and variants that were skipped or failed as notes, not as table rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .machine import device_label
from .report import e2e_notes, failure_notes, headline, precision_text, stage_fps, stage_names

REGENERATE = "stream-derain bench --from-json REPORT.json [--from-json MORE.json] --markdown perf.md"


def _f(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    aligns = ["---" if i == 0 else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |",
            *["| " + " | ".join(r) + " |" for r in rows]]


def _on_gpu(row: dict[str, Any]) -> bool:
    return str(row.get("device") or "").startswith("cuda")


def engine_markdown(report: dict[str, Any]) -> list[str]:
    rows_in = [r for r in report["engine"] if r["status"] == "ok"]
    gpu = any(_on_gpu(r) for r in rows_in)
    rows = []
    for r in rows_in:
        lat = r["latency_ms"]
        ratio = r.get("ratio_vs_baseline")
        row = [f"{r['variant']} ({r.get('device')})", r["resolution"], str(r["batch"]), precision_text(r),
               _f(r["fps"], 2),
               f"{_f(lat['p50'])} / {_f(lat['p95'])} / {_f(lat['p99'])}", _f(r["mpix_per_s"], 2),
               "—" if ratio is None else f"{ratio:.2f}x", _f(r.get("cpu_ms_per_frame")),
               _f(r.get("peak_host_rss_mb"), 0)]
        if gpu:
            used = r.get("peak_device_used_mb", r.get("peak_device_mem_mb"))
            row.append(_f(used, 0) if _on_gpu(r) else "—")
        rows.append(row)
    header = ["Backend", "Resolution", "Batch", "Precision (PSNR vs fp32)", "FPS", "Latency p50/p95/p99 (ms)",
              "MP/s", "vs baseline", "CPU ms/frame", "Host peak MB"]
    return _table(header + (["GPU peak MB"] if gpu else []), rows)


NAMED_KEYS = ("backend_requested", "model", "preset")  # on the rows of --variant NAME=... variants


def e2e_label(r: dict[str, Any], report: dict[str, Any]) -> str:
    """``onnxruntime/auto (fp32)``; a named variant also says its backend, model and preset."""
    if not any(k in r for k in NAMED_KEYS):
        return f"{r['variant']} ({precision_text(r)})"
    backend = f"{r['backend']} (auto)" if r.get("backend_requested") == "auto" else r["backend"]
    model = r.get("model") or report["model"]["name"]
    preset = (r.get("encoder") or {}).get("preset")
    return f"{r['variant']}: {backend}, {precision_text(r)}, {model}, preset {preset}"


def stage_cpu(r: dict[str, Any], names: list[str]) -> str:
    """CPU ms per frame of each isolated stage, then of the whole pipeline."""
    stages = " / ".join(_f(r["stages"].get(n, {}).get("cpu_ms_per_frame"), 0) for n in names)
    return f"{stages}; {_f(r['pipeline'].get('cpu_ms_per_frame'), 0)}"


def e2e_markdown(report: dict[str, Any]) -> list[str]:
    ok = [r for r in report["e2e"] if r["status"] == "ok"]
    names = stage_names(ok)
    rows = []
    for r in ok:
        name = Path(r["input"]).name
        ratio = r.get("ratio_vs_baseline")
        rows.append([e2e_label(r, report),
                     f"{name} ({r['width']}x{r['height']}, {r['pipeline']['frames']} frames)",
                     *(stage_fps(r, s) for s in names), _f(r["pipeline"]["fps"], 2),
                     "—" if ratio is None else f"{ratio:.2f}x", r["bottleneck"] or "—",
                     _f(r["efficiency"], 2), _f(r.get("steady_efficiency"), 2), _f(r.get("cpu_bound_fps")),
                     _f(r.get("overlap"), 2), stage_cpu(r, names)])
    cpu = f"CPU ms/frame ({' / '.join(names)}; pipeline)"
    return _table(["Backend", "Input", *(f"{s.capitalize()} fps" for s in names), "Pipeline fps",
                   "vs baseline", "Bottleneck", "Efficiency", "Steady-state eff.", "CPU-bound fps", "Overlap",
                   cpu], rows)


def _md_line(line: str) -> str:
    if line.startswith("Command: "):
        return f"Command: `{line[len('Command: '):]}`"
    return line


def to_markdown(report: dict[str, Any], title: str | None = None, level: int = 3) -> str:
    """One report as a Markdown subsection (titled with its device unless ``title``):
    device and model lines, then the engine and end-to-end tables."""
    mode = {"engine": " (engine only)", "e2e": " (end to end)"}.get(report.get("config", {}).get("mode"), "")
    out = [f"{'#' * level} {title or device_label(report['machine']) + mode}", ""]
    out += [f"- {_md_line(line)}" for line in headline(report)
            if not line.startswith(tuple(f"{v['variant']}:" for v in report["variants"]))]
    cfg = report.get("config", {})
    if report["engine"]:
        timed = f"{cfg['iters']} timed calls" if cfg.get("iters") else \
            f"timed calls for ~{cfg.get('budget_s')}s per case"
        out.append(f"- Engine settings: warm-up {cfg.get('warmup')} calls, {timed}; latency is one "
                   "`backend.infer` call (uint8 frames in and out, copies included)")
    encs = [(r["variant"], r["encoder"]) for r in report["e2e"] if r.get("encoder")]
    if encs:
        enc = encs[0][1]
        presets = {e.get("preset") for _, e in encs}
        preset = enc.get("preset") if len(presets) == 1 else \
            ", ".join(f"{e.get('preset')} ({v})" for v, e in encs)
        out.append(f"- End-to-end settings: batch {(cfg.get('batches') or [1])[0]}, smoother "
                   f"{'on' if cfg.get('smooth', True) else 'off'}, encoder {enc.get('codec')} (crf "
                   f"{enc.get('crf')}, preset {preset})")
    out.append("")
    if any(r["status"] == "ok" for r in report["engine"]):
        out += ["**Engine only** (synthetic frames):", "", *engine_markdown(report), ""]
    if any(r["status"] == "ok" for r in report["e2e"]):
        out += [("**End to end** (each stage alone, then the threaded pipeline, in the same run; "
                 "efficiency = pipeline fps / slowest stage fps; steady-state: the same without the start-up "
                 "and the encoder's drain; CPU-bound fps = what the stages' CPU time allows on these cores; "
                 "overlap = pipeline fps / the lower of the two):"), "", *e2e_markdown(report), ""]
    notes = failure_notes(report["engine"], lambda r: f"{r['resolution']} b{r['batch']}") + \
        e2e_notes(report["e2e"])
    out += [*(f"- {n}" for n in notes), ""] if notes else []
    out.append(f"_Generated by `stream-derain bench` ({report['schema']})._")
    return "\n".join(out) + "\n"


def section_markdown(reports: list[dict[str, Any]]) -> str:
    """Several reports (e.g. CPU and GPU runs) as the README's performance section body."""
    intro = ("Every number here comes from `stream-derain bench --json`; the section is regenerated from "
             f"the saved reports with `{REGENERATE}`. Absolute fps depend on the machine and its load; "
             "the ratios between backends measured in the same run travel better.")
    return "\n".join([intro, "", *(to_markdown(r) for r in reports)])
