"""Issue 28: bench's tables fit an 80-column terminal; --wide (and piped output) keep all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from stream_derain.bench.report import rich_report

REPORTS = sorted((Path(__file__).parents[2] / "docs" / "bench").glob("*.json"))


def render(report: dict, wide: bool) -> str:
    console = Console(width=80, record=True, color_system=None)
    with console.capture() as cap:
        console.print(rich_report(report, wide))
    return cap.get()


@pytest.mark.parametrize("path", [p for p in REPORTS if "e2e" in p.name][:1] + [p for p in REPORTS
                                                                              if "engine" in p.name][:1])
def test_saved_reports_fit_80_columns_without_cut_cells(path: Path) -> None:
    report = json.loads(path.read_text())
    narrow = render(report, wide=False)
    assert "…" not in narrow, narrow
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "…" in render(report, wide=True) or "Steady" in render(report, wide=True)  # the wide view has more
