"""A PNG bar chart of engine fps per resolution per backend, drawn with OpenCV.

OpenCV is already a core dependency, so the chart costs nothing to install; a grouped
bar chart needs only rectangles, lines and text, which matplotlib would not improve
enough to justify an optional extra.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import OutputError
from .machine import device_label

# BGR, colour-blind-friendly (Okabe-Ito)
COLOURS = [(178, 114, 0), (0, 159, 230), (115, 158, 0), (167, 121, 204), (0, 94, 213), (66, 228, 240),
           (233, 180, 86), (0, 0, 0)]
FONT = cv2.FONT_HERSHEY_SIMPLEX
W, H = 1100, 560
LEFT, RIGHT, TOP, BOTTOM = 80, 230, 60, 70


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    return next(m * exp for m in (1, 2, 5, 10) if m * exp >= value)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5, colour=(40, 40, 40),
          centre: bool = False) -> None:
    (tw, _), _ = cv2.getTextSize(text, FONT, scale, 1)
    x = org[0] - tw // 2 if centre else org[0]
    cv2.putText(img, text, (x, org[1]), FONT, scale, colour, 1, cv2.LINE_AA)


def chart_data(report: dict[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], float | None]]:
    """(group labels, variant names with at least one result, {(group, variant): fps or
    None if it did not run}). Variants that ran nowhere are left to :func:`not_run`."""
    multi_batch = len({r["batch"] for r in report["engine"]}) > 1
    ran = {r["variant"] for r in report["engine"] if r["status"] == "ok"}
    groups, variants, fps = [], [], {}
    for r in report["engine"]:
        g = r["resolution"] + (f" b{r['batch']}" if multi_batch else "")
        groups += [g] if g not in groups else []
        if r["variant"] in ran:
            variants += [r["variant"]] if r["variant"] not in variants else []
            fps[(g, r["variant"])] = r.get("fps") if r["status"] == "ok" else None
    return groups, variants, fps


def not_run(report: dict[str, Any]) -> list[str]:
    """``variant (status)`` for each variant without a single engine result."""
    ran = {r["variant"] for r in report["engine"] if r["status"] == "ok"}
    out: list[str] = []
    for r in report["engine"]:
        label = f"{r['variant']} ({r['status']})"
        if r["variant"] not in ran and label not in out:
            out.append(label)
    return out


def draw_chart(report: dict[str, Any]) -> np.ndarray:
    """The chart as a HxWx3 BGR image."""
    img = np.full((H, W, 3), 255, np.uint8)
    groups, variants, fps = chart_data(report)
    top = _nice_max(max([v for v in fps.values() if v] or [1.0]))
    x0, x1, y0, y1 = LEFT, W - RIGHT, TOP, H - BOTTOM
    _text(img, f"Engine fps per resolution - {report['model']['name']}", (x0, 32), 0.7)
    for i in range(6):  # y grid and labels
        y = int(y1 - (y1 - y0) * i / 5)
        cv2.line(img, (x0, y), (x1, y), (225, 225, 225), 1)
        _text(img, f"{top * i / 5:g}", (x0 - 10 - 9 * len(f"{top * i / 5:g}"), y + 5), 0.45)
    cv2.line(img, (x0, y1), (x1, y1), (60, 60, 60), 1)
    gw = (x1 - x0) / max(len(groups), 1)
    bw = gw * 0.8 / max(len(variants), 1)
    for gi, g in enumerate(groups):
        _text(img, g, (int(x0 + gw * (gi + 0.5)), y1 + 24), 0.5, centre=True)
        for vi, v in enumerate(variants):
            left = int(x0 + gw * gi + gw * 0.1 + bw * vi)
            value = fps.get((g, v))
            if value is None:
                _text(img, "n/a", (left + int(bw / 2), y1 - 6), 0.4, (0, 0, 200), centre=True)
                continue
            y = int(y1 - (y1 - y0) * value / top)
            cv2.rectangle(img, (left, y), (left + max(int(bw) - 2, 1), y1), COLOURS[vi % len(COLOURS)], -1)
            _text(img, f"{value:.3g}", (left + int(bw / 2), y - 6), 0.4, centre=True)
    for vi, v in enumerate(variants):  # legend
        y = y0 + 24 * vi
        cv2.rectangle(img, (x1 + 20, y), (x1 + 36, y + 14), COLOURS[vi % len(COLOURS)], -1)
        _text(img, v, (x1 + 44, y + 12), 0.45)
    for i, label in enumerate(not_run(report)):  # did not run anywhere: named, not drawn
        _text(img, label, (x1 + 20, y0 + 24 * (len(variants) + i) + 12), 0.4, (0, 0, 200))
    _text(img, "fps (higher is better)", (10, y0 - 14), 0.45)
    _text(img, f"{device_label(report['machine'])}; {report.get('created', '')}", (10, H - 14), 0.42,
          (110, 110, 110))
    return img


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Write the chart as PNG (or any format OpenCV infers from the suffix)."""
    if not report["engine"]:
        raise OutputError("no engine-mode results to chart (use --mode engine or all)")
    if not cv2.imwrite(str(path), draw_chart(report)):
        raise OutputError(f"cannot write chart {path}")
