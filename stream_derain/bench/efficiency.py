"""What the end-to-end numbers mean (see :mod:`.e2e` for how the stages are measured).

``efficiency = pipeline fps / fps of the slowest isolated stage``: 1.0 means the
threads overlap perfectly. Stages share the CPU in the pipeline but not alone, so
when inference runs on the CPU (and already uses every core) the pipeline cannot
reach the slowest stage's fps. To tell that apart from stages serialising (on the
GIL, or through too small queues), each stage's CPU time is measured too
(:func:`time.process_time`): ``cpu_bound_fps = cores / sum of CPU seconds per frame``
is what the stages can reach together on the cores this process may use, and
``overlap = pipeline fps / min(slowest stage fps, cpu_bound_fps)`` is near 1.0 when
the threads overlap as well as the hardware allows. :func:`pipeline_efficiency` adds
one sentence of diagnosis.
"""

from __future__ import annotations

from typing import Any

from .config import EFFICIENCY_TARGET

SATURATED = 0.9  # machine-wide busy fraction above which the CPU counts as saturated


def pipeline_efficiency(pipeline_fps: float, stages: dict[str, dict[str, Any]], cores: int | None = None,
                        system: dict[str, Any] | None = None) -> dict[str, Any]:
    """The slowest stage that ran (the bottleneck), ``pipeline fps / its fps``, and the
    CPU-bound ceiling of the stages together on ``cores`` (see the module docstring).
    ``system``: the pipeline's ``system_cpu_busy``, ``cpu_util`` and ``other_processes_cores``,
    which tell a CPU saturated during the run (by this process or others) apart from
    stages that wait for each other while cores sit idle."""
    ran = {name: s["fps"] for name, s in stages.items() if s.get("status") == "ok" and s.get("fps")}
    out: dict[str, Any] = {"bottleneck": None, "bottleneck_fps": None, "efficiency": None,
                           "efficiency_target": EFFICIENCY_TARGET, "meets_target": None, "cpu_cores": cores,
                           "steady_efficiency": None, "cpu_ms_per_frame": None, "cpu_bound_fps": None,
                           "overlap": None, "diagnosis": None, "warning": None}
    if not ran:
        return out
    name = min(ran, key=ran.get)
    eff = pipeline_fps / ran[name]
    out.update(bottleneck=name, bottleneck_fps=ran[name], efficiency=round(eff, 3),
               meets_target=eff >= EFFICIENCY_TARGET)
    steady = (system or {}).get("steady_fps")
    if steady:
        out["steady_efficiency"] = round(steady / ran[name], 3)
    cpu = [stages[n].get("cpu_ms_per_frame") for n in ran]
    ceiling = ran[name]
    if cores and all(isinstance(c, (int, float)) and c > 0 for c in cpu):
        total = float(sum(cpu))
        bound = 1000.0 * cores / total
        ceiling = min(ceiling, bound)
        out.update(cpu_ms_per_frame=round(total, 3), cpu_bound_fps=round(bound, 3),
                   overlap=round(pipeline_fps / ceiling, 3))
    out["diagnosis"] = _diagnosis(pipeline_fps, name, ran[name], out, system or {})
    if eff > 1.1:
        out["warning"] = (f"pipeline faster than {name} alone: the isolated measurement was disturbed "
                          "(shared CPU) or the backend is thread-sensitive (OpenMP spin-waiting: try "
                          "OMP_WAIT_POLICY=PASSIVE)")
    return out


def _diagnosis(pipeline_fps: float, name: str, fps: float, res: dict[str, Any],
               system: dict[str, Any]) -> str:
    """One sentence: do the stages overlap, and if not, is it the input's length, the CPU
    (this process's stages or other processes) or the pipeline itself?"""
    eff, bound, overlap = res["efficiency"], res["cpu_bound_fps"], res["overlap"]
    if eff >= EFFICIENCY_TARGET:
        return f"stages overlap: the pipeline runs at {eff:.2f} of the slowest stage ({name})"
    steady = res.get("steady_efficiency")
    if steady is not None and steady >= EFFICIENCY_TARGET:
        return (f"stages overlap: {steady:.2f} of {name} alone while frames flow; over this short input the "
                f"start-up ({system.get('startup_s') or 0:.2f} s) and the drain after the last frame "
                f"({system.get('drain_s') or 0:.2f} s: the encoder's look-ahead frames) bring it to "
                f"{eff:.2f}")
    busy, others = system.get("system_cpu_busy"), system.get("other_processes_cores")
    if busy is not None and busy >= SATURATED:
        text = (f"CPU-bound: every core was busy during the pipeline ({busy:.0%}; this process used "
                f"{system.get('cpu_util') or 0:.2f} cores, other processes {others or 0:.2f})")
        if bound is not None:
            text += (f"; the stages need {res['cpu_ms_per_frame']:.1f} ms of CPU per frame alone")
            if system.get("cpu_ms_per_frame"):
                text += f" and {system['cpu_ms_per_frame']:.1f} ms in the pipeline"
            text += (f", so {res['cpu_cores']} cores allow at most {bound:.1f} fps; the pipeline reaches "
                     f"{overlap:.2f} of the lower of that and {name} alone")
        if others and others >= 0.25:
            text += "; other processes took cores: measure on an idle machine"
        return text
    if bound is not None and bound < EFFICIENCY_TARGET * fps:
        text = (f"CPU-bound: the stages need {res['cpu_ms_per_frame']:.1f} ms of CPU per frame together, so "
                f"{res['cpu_cores']} cores allow at most {bound:.1f} fps, below {name} alone "
                f"({fps:.1f} fps); "
                f"the pipeline reaches {overlap:.2f} of that ceiling")
        if overlap is not None and overlap < EFFICIENCY_TARGET:
            text += " (below the target too: stages may be serialising)"
        return text
    return (f"stages do not overlap fully: the pipeline runs at {eff:.2f} of {name} alone, and the CPU "
            "is not the limit (look at the queue waits: GIL-bound work, small queues or a shared device)")
