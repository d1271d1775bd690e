"""Render ``stream-derain bench --json`` reports as the README's performance section.

    python scripts/bench_to_markdown.py cpu.json [gpu.json ...] [-o perf.md]

The same as ``stream-derain bench --from-json cpu.json [--from-json gpu.json] --markdown
perf.md``, without printing the tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stream_derain.bench.markdown import section_markdown
from stream_derain.bench.schema import read_json, validate_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", type=Path, nargs="+", help="JSON written by stream-derain bench --json")
    ap.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = ap.parse_args(argv)
    reports = []
    for path in args.reports:
        report = read_json(path)
        problems = validate_report(report)
        if problems:
            print(f"{path}: not a valid bench report: {'; '.join(problems[:5])}", file=sys.stderr)
            return 1
        reports.append(report)
    text = section_markdown(reports)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
