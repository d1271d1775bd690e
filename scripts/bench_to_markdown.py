"""Render a ``stream-derain bench --json`` report as the README's performance section.

    python scripts/bench_to_markdown.py report.json [-o perf.md] [--title "Performance"]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stream_derain.bench.markdown import to_markdown
from stream_derain.bench.report import read_json, validate_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="JSON written by stream-derain bench --json")
    ap.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    ap.add_argument("--title", default="Performance")
    args = ap.parse_args(argv)
    report = read_json(args.report)
    problems = validate_report(report)
    if problems:
        print(f"{args.report}: not a valid bench report: {'; '.join(problems[:5])}", file=sys.stderr)
        return 1
    text = to_markdown(report, args.title)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
