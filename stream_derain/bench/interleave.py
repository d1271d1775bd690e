"""Rounds: the variants' engine cases (and end-to-end runs) taken in turn, several times.

On a shared machine the load drifts within seconds, so variants measured one after
the other (the default) can differ by 2x for the same backend. With ``rounds`` > 1
every backend stays active and each case is timed for ``budget / rounds`` seconds
per variant per round, in turn; a case's fps is the pooled throughput of all its
rounds (each variant saw the same mix of load), and ``fps_rounds`` keeps the
per-round figures. End-to-end runs alternate the same way and keep the round with
the highest pipeline fps (the least disturbed; ``pipeline_fps_rounds`` lists all).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from ..backends.base import Backend, model_frames
from .engine import error_reason, failed_case, synthetic_batch, time_infer, timed_row
from .timing import LoopPlan

log = logging.getLogger(__name__)
Active = list[tuple[Backend, dict[str, Any]]]  # (active backend, its variant dict)


def _pooled_row(width: int, height: int, batch: int, plan: LoopPlan, rounds: list[tuple]) -> dict[str, Any]:
    """One row from every round's :func:`.engine.time_infer` result, samples pooled."""
    samples = [s for r in rounds for s in r[0]]
    wall = sum(r[1]["seconds"] for r in rounds) or 1.0
    cpu_s = sum(r[1]["cpu_s"] for r in rounds)
    others = [r[1]["other_processes_cores"] for r in rounds if r[1]["other_processes_cores"] is not None]
    mem = max((r[2] for r in rounds), key=lambda m: m.get("peak_host_rss_mb") or 0)
    fps_rounds = [round(batch * len(r[0]) / sum(r[0]), 3) if sum(r[0]) > 0 else None for r in rounds]
    return timed_row(width, height, batch, plan, samples, cpu_s, round(cpu_s / wall, 3),
                     max(others) if others else None,
                     {"rounds": len(rounds), "fps_rounds": fps_rounds, **mem})


def run_engine_rounds(active: Active, resolutions: tuple[tuple[int, int], ...], batches: tuple[int, ...],
                      plan: LoopPlan, rounds: int, seed: int = 0) -> list[dict[str, Any]]:
    """Every case for every active variant, ``rounds`` times in turn (see the module docstring)."""
    per_round = dataclasses.replace(plan, budget_s=plan.budget_s / rounds,
                                    min_iters=max(1, -(-plan.min_iters // rounds)),
                                    iters=-(-plan.iters // rounds) if plan.iters else 0)
    rows: list[dict[str, Any]] = []
    for width, height in resolutions:
        for batch in batches:
            windows: dict[int, Any] = {}  # by the model's frames K (variants may run different models)
            done: dict[int, list[tuple]] = {i: [] for i in range(len(active))}
            failed: dict[int, str] = {}
            for r in range(rounds):
                this = per_round if r == 0 else dataclasses.replace(per_round, warmup=0)
                for i, (backend, variant) in enumerate(active):
                    if i in failed:
                        continue
                    try:
                        k = model_frames(backend)
                        frames = windows.setdefault(k, synthetic_batch(width, height, batch, seed, k))
                        done[i].append(time_infer(backend, frames, this))
                    except Exception as exc:  # noqa: BLE001 - reported in the table, never dropped
                        log.warning("engine %s %dx%d batch %d failed: %s", variant["variant"], width, height,
                                    batch, exc)
                        failed[i] = error_reason(exc)
            for i, (backend, variant) in enumerate(active):
                row = failed_case({}, width, height, batch, "failed", failed[i]) if i in failed else \
                    _pooled_row(width, height, batch, per_round, done[i])
                if i not in failed:
                    log.info("engine %s %dx%d batch %d: %.2f fps over %d rounds %s", backend.describe(),
                             width, height, batch, row["fps"], rounds, row["fps_rounds"])
                rows.append({**variant, **row})
    return rows


def run_e2e_rounds(active: Active, rounds: int,
                   e2e_row: Callable[[Backend, dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """``e2e_row`` for each variant in turn, ``rounds`` times; keeps each variant's best round."""
    best: dict[int, dict[str, Any]] = {}
    fps: dict[int, list] = {i: [] for i in range(len(active))}
    for _ in range(rounds):
        for i, (backend, variant) in enumerate(active):
            row = e2e_row(backend, variant)
            value = (row.get("pipeline") or {}).get("fps") if row["status"] == "ok" else None
            fps[i].append(value)
            old = best.get(i)
            old_fps = (old.get("pipeline") or {}).get("fps") if old and old["status"] == "ok" else None
            if old is None or (value is not None and (old_fps is None or value > old_fps)):
                best[i] = row
    return [{**best[i], "rounds": rounds, "pipeline_fps_rounds": fps[i]} for i in range(len(active))]
