"""``stream-derain bench``: engine-only and end-to-end throughput, as one report.

:func:`run_bench` takes a :class:`BenchConfig` and returns a JSON-ready dict (schema
checked by :func:`validate_report`); :mod:`.report`, :mod:`.markdown` and
:mod:`.chart` render it as rich tables, README Markdown and a PNG bar chart.
"""

from __future__ import annotations

from .config import BenchConfig, parse_resolution
from .runner import SCHEMA_VERSION, run_bench

__all__ = ["BenchConfig", "SCHEMA_VERSION", "parse_resolution", "run_bench", "validate_report"]


def validate_report(report: dict) -> list[str]:
    """Schema problems of a report (empty: valid); see :func:`.report.validate_report`."""
    from .report import validate_report as check

    return check(report)
