"""The report rendered: the rich tables shown on the terminal, and the helpers the
Markdown of the README's performance section (:mod:`.markdown`) shares. The schema is
:mod:`.schema`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .machine import device_label
from .schema import STAGE_NAMES

# --- formatting helpers ----------------------------------------------------------------

def _f(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ratio(value: Any) -> str:
    return "—" if value is None else f"{value:.2f}x"


def stage_fps(row: dict[str, Any], name: str) -> str:
    s = row["stages"].get(name, {})
    return _f(s.get("fps")) if s.get("status") == "ok" else s.get("status", "—")


BUSY_OTHERS = 0.25  # cores taken by other processes above which a run counts as disturbed


def other_cores(report: dict[str, Any]) -> float | None:
    """The most cores other processes used during any engine case or pipeline run
    (machine-wide busy time minus this process's), or None if not recorded."""
    values = [r.get("other_processes_cores") for r in report["engine"] if r["status"] == "ok"]
    values += [(r.get("pipeline") or {}).get("other_processes_cores") for r in report["e2e"]
               if r["status"] == "ok"]
    values = [v for v in values if isinstance(v, (int, float))]
    return max(values) if values else None


def headline(report: dict[str, Any]) -> list[str]:
    """Device, model, revision and machine load lines shared by all renderings."""
    from ..align import macs_note

    m, model = report["machine"], report["model"]
    flow = macs_note(model.get("manifest") or {})
    lines = [f"Device: {device_label(m)}",
             f"Model: {model['name']} {model['version']}, {model.get('macs_per_pixel')} MACs/pixel{flow}, "
             f"{model.get('parameters')} parameters",
             f"Revision: {report.get('git_revision') or 'not a git checkout'}; {report['created']}"]
    if report.get("command"):
        lines.append(f"Command: {report['command']}")
    load, cores = m.get("load_average"), m.get("cpu_affinity") or m.get("cpu_count") or 1
    others = other_cores(report)
    if others is not None:
        busy = " - the machine was shared: absolute numbers are noisy, compare the ratios" \
            if others >= BUSY_OTHERS else ""
        lines.append(f"Other processes used up to {others:.2f} of {cores} cores while cases ran{busy}")
    elif load:  # reports without per-case CPU accounting: the load average (which includes this run)
        end = m.get("load_average_end") or load
        busy = " - machine shared/busy: absolute numbers are noisy, compare the ratios" if \
            max(load[0], end[0]) > 0.75 * cores else ""
        lines.append(f"Load average: {load[0]} at start, {end[0]} at end, on {cores} cores{busy}")
    for v in report["variants"]:
        if v["status"] != "ok":
            lines.append(f"{v['variant']}: {v['status']}: {v['reason']}")
    return lines


# --- rich ------------------------------------------------------------------------------

def _name(row: dict[str, Any]) -> str:
    return f"{row['variant']} ({row['device']})" if row.get("device") else row["variant"]


def _status(row: dict[str, Any]) -> Text:
    return Text("ok", style="green") if row["status"] == "ok" else Text(row["status"], style="red")


def failure_notes(rows: list[dict[str, Any]], label: Any) -> list[str]:
    """One line per distinct (variant, reason) of the rows that did not run."""
    notes: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r["status"] != "ok":
            notes.setdefault((r["variant"], f"{r['status']}: {r['reason']}"), []).append(label(r))
    return [f"{v} [{', '.join(cases)}]: {why}" for (v, why), cases in notes.items()]


def precision_text(row: dict[str, Any]) -> str:
    """The precision a row ran at, with its check against FP32 where there is one
    (``bf16, 61.6 dB``; int8 also its gate on the dev frames: ``int8, 34.5 dB (dev 37.6 dB,
    gate failed)``); older reports without it show the requested precision."""
    used = row.get("precision_used") or row.get("precision") or "—"
    db = row.get("precision_psnr_db")
    text = f"{used}, {db:.1f} dB" if isinstance(db, (int, float)) else str(used)
    dev = row.get("precision_dev_psnr_db")  # int8: its gate on the dev frames (the manifest's)
    if isinstance(dev, (int, float)) or row.get("precision_gate"):
        dev_text = f"dev {dev:.1f} dB" if isinstance(dev, (int, float)) else "dev"
        text += f" ({dev_text}, gate {row.get('precision_gate') or 'not checked'})"
    return text


def gpu_mb(row: dict[str, Any]) -> str:
    """``torch-allocator peak / device-wide used peak`` in MiB, or a dash off the GPU."""
    torch_mb, used = row.get("peak_device_mem_mb"), row.get("peak_device_used_mb")
    if torch_mb is None and used is None:
        return "—"
    return f"{_f(torch_mb, 0)}/{_f(used, 0)}"


# the terminal's default view: these columns, under these short headings (80 columns)
ENGINE_NARROW = {"Variant": "Variant", "Resolution": "Size", "Batch": "B", "Precision (vs fp32)": "Precision",
                 "FPS": "FPS", "vs base": "vs base", "Status": "Status"}
E2E_NARROW = {"Variant": "Variant", "Pipeline": "FPS", "Bottleneck": "Bottleneck", "Efficiency": "Eff.",
              "CPU-bound": "CPU-bound", "vs base": "vs base", "Status": "Status"}


def _table(title: str, columns: tuple[str, ...], rows: list[list[Any]], keep: dict[str, str] | None,
           left: tuple[str, ...]) -> Table:
    """A table of ``rows`` (one value per column); ``keep``: only these columns, under
    short headings, cells folded rather than cut (the terminal's default view); None:
    all of them (``--wide``)."""
    idx = [i for i, c in enumerate(columns) if keep is None or c in keep]
    t = Table(title=title, title_justify="left")
    for i in idx:
        c = columns[i]
        t.add_column(c if keep is None else keep[c], justify="left" if c in left else "right",
                     overflow="ellipsis" if keep is None else "fold")
    for r in rows:
        t.add_row(*(r[i] for i in idx))
    return t


def engine_table(report: dict[str, Any], wide: bool = True) -> Table:
    columns = ("Variant", "Resolution", "Batch", "Precision (vs fp32)", "FPS", "p50/p95/p99 ms", "MP/s",
               "vs base", "Iters", "Cores us/others", "Host MB", "GPU MB torch/used", "Status")
    rows: list[list[Any]] = []
    for r in report["engine"]:
        if r["status"] != "ok":
            rows.append([_name(r), r["resolution"], str(r["batch"]), *["—"] * 9, _status(r)])
            continue
        lat = r["latency_ms"]
        rows.append([_name(r), r["resolution"], str(r["batch"]), precision_text(r), _f(r["fps"], 2),
                     f"{_f(lat['p50'])}/{_f(lat['p95'])}/{_f(lat['p99'])}", _f(r["mpix_per_s"], 2),
                     _ratio(r.get("ratio_vs_baseline")), str(r["iters"]),
                     f"{_f(r.get('cpu_util'))}/{_f(r.get('other_processes_cores'))}",
                     _f(r["peak_host_rss_mb"], 0) + ("" if r["host_peak_scope"] == "case" else "*"),
                     gpu_mb(r), _status(r)])
    return _table("Engine only (backend.infer on synthetic frames)", columns, rows,
                  None if wide else ENGINE_NARROW, ("Variant", "Resolution", "Status"))


def stage_names(rows: list[dict[str, Any]]) -> list[str]:
    """The isolated stages to show: the four of every run, plus "download" where a row has it."""
    extra = [n for n in ("download",) if any(n in r.get("stages", {}) for r in rows if r["status"] == "ok")]
    return [*STAGE_NAMES[:3], *extra, STAGE_NAMES[3]]


def e2e_table(report: dict[str, Any], wide: bool = True) -> Table:
    names = stage_names(report["e2e"])
    columns = ("Variant", "Frames", *(n.capitalize() for n in names), "Pipeline", "Bottleneck", "Efficiency",
               "Steady eff.", "CPU-bound", "Overlap", "Waits before", "vs base", "Status")
    rows: list[list[Any]] = []
    for r in report["e2e"]:
        if r["status"] != "ok":
            rows.append([_name(r), *["—"] * (len(names) + 9), _status(r)])
            continue
        eff = r["efficiency"]
        style = "green" if eff is not None and eff >= r["efficiency_target"] else "yellow"
        rows.append([_name(r), str(r["pipeline"]["frames"]), *(stage_fps(r, s) for s in names),
                     _f(r["pipeline"]["fps"], 2), r["bottleneck"] or "—", Text(_f(eff, 2), style=style),
                     _f(r.get("steady_efficiency"), 2), _f(r.get("cpu_bound_fps")), _f(r.get("overlap"), 2),
                     r["pipeline"].get("frames_wait_before") or "—", _ratio(r.get("ratio_vs_baseline")),
                     _status(r)])
    return _table("End to end, fps: isolated stages vs the threaded pipeline", columns, rows,
                  None if wide else E2E_NARROW, ("Variant", "Bottleneck", "Status", "Waits before"))


def queue_table(row: dict[str, Any]) -> Table:
    """Per-stage view of one pipeline run: where frames waited."""
    pipe = row["pipeline"]
    util = pipe.get("cpu_util")
    others = pipe.get("other_processes_cores")
    t = Table(title=f"{row['variant']}: pipeline stages (queues hold {pipe['queue_size']} items; "
              f"this process used {_f(util, 2)} of {row.get('cpu_cores') or '?'} cores, other processes "
              f"{_f(others, 2)}; start-up {_f(pipe.get('startup_s'), 2)} s, "
              f"drain {_f(pipe.get('drain_s'), 2)} s)",
              title_justify="left", caption="in-pipeline fps = frames / busy s; busy s = wall time minus "
              "queue waits (exact for decode); CPU ms = process CPU per frame, stage alone",
              caption_justify="left")
    for col in ("Stage", "Isolated fps", "CPU ms/frame", "In-pipeline fps", "Busy s", "Input queue mean/max",
                "Wait in s", "Wait out s"):
        t.add_column(col, justify="left" if col == "Stage" else "right")
    for s in pipe["stages"]:
        iso = row["stages"].get(s["name"], {})
        t.add_row(s["name"], _f(iso.get("fps")), _f(iso.get("cpu_ms_per_frame")),
                  _f(s.get("fps_in_pipeline")),
                  _f(s.get("busy_est_s"), 2),
                  "—" if s["name"] == "decode" else f"{s['queue_mean']:.1f}/{s['queue_max']}",
                  _f(s["wait_in_s"], 2), _f(s["wait_out_s"], 2))
    return t


def e2e_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Failures, diagnoses and warnings of the end-to-end rows."""
    return (failure_notes(rows, lambda r: "e2e") + [f"{r['variant']}: {r['diagnosis']}" for r in rows
                                                     if r["status"] == "ok" and r.get("diagnosis")]
            + [f"{r['variant']}: {r['warning']}" for r in rows if r.get("warning")])


def rich_report(report: dict[str, Any], wide: bool = True) -> Group:
    """Everything for the terminal, as one rich renderable; not ``wide``: the main
    columns only and no per-stage queue tables (they fit 80 columns; the JSON and
    ``--wide`` have the rest)."""
    parts: list[Any] = [Text("\n".join(headline(report)))]
    engine, e2e = report["engine"], report["e2e"]
    if engine:
        parts.append(engine_table(report, wide))
        notes = failure_notes(engine, lambda r: f"{r['resolution']} b{r['batch']}")
        if any(r.get("host_peak_scope") == "process" for r in engine):
            notes.append("* host peak is the process-lifetime high-water mark (VmHWM could not be reset)")
        parts += [Text("\n".join(notes), style="dim")] if notes else []
    if e2e:
        inputs = sorted({f"{Path(r['input']).name} ({r['width']}x{r['height']})" for r in e2e if "width" in r}
                        or {Path(r["input"]).name for r in e2e})
        parts.append(Text(f"End-to-end input: {', '.join(inputs)}; "
                          "efficiency = pipeline fps / slowest stage fps "
                          f"(target {e2e[0].get('efficiency_target', 0.9)})"))
        parts.append(e2e_table(report, wide))
        notes = e2e_notes(e2e)
        parts += [Text("\n".join(notes), style="dim")] if notes else []
        parts += [queue_table(r) for r in e2e if r["status"] == "ok"] if wide else []
    return Group(*parts)
