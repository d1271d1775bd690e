"""``stream-derain bench``: engine-only and end-to-end throughput, as one report.

:func:`run_bench` takes a :class:`BenchConfig` and returns a JSON-ready dict (schema
checked by :func:`validate_report`, :mod:`.schema`). Measuring: :mod:`.engine`
(one backend call), :mod:`.e2e` (the pipeline's own stages, alone and together),
:mod:`.interleave`, :mod:`.timing`, :mod:`.memory`; :mod:`.efficiency` reads the e2e
numbers. Rendering: :mod:`.report`, :mod:`.markdown` and :mod:`.chart` (rich tables,
README Markdown and a PNG bar chart).
"""

from __future__ import annotations

from .config import BenchConfig, parse_resolution
from .runner import SCHEMA_VERSION, run_bench

__all__ = ["BenchConfig", "SCHEMA_VERSION", "parse_resolution", "run_bench", "validate_report"]


def validate_report(report: dict) -> list[str]:
    """Schema problems of a report (empty: valid); see :func:`.schema.validate_report`."""
    from .schema import validate_report as check

    return check(report)
