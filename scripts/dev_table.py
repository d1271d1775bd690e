"""Markdown table of `stream-derain eval --dev --json` results, one row per model.

    python scripts/dev_table.py v1=runs/v2/eval_v1.json v2=runs/v2/eval_final.json

Each cell: PSNR-Y dB / SSIM-Y / brightness bias (grey levels) / detail ratio.
"""

from __future__ import annotations

import json
import sys


def cell(s: dict) -> str:
    psnr = "inf" if s["psnr_y"] is None else f"{s['psnr_y']:.2f}"  # null in JSON: identical images
    return f"{psnr} / {s['ssim_y']:.4f} / {s['bias']:+.2f} / {s['detail']:.3f}"


def main(args: list[str]) -> None:
    rows = [(a.split("=", 1)[0], json.loads(open(a.split("=", 1)[1]).read())) for a in args]
    sets = [r["set"] for r in rows[0][1]]
    print("| row | " + " | ".join(sets) + " |")
    print("|" + " --- |" * (len(sets) + 1))
    print("| input | " + " | ".join(cell(r["input"]) for r in rows[0][1]) + " |")
    for name, results in rows:
        by_set = {r["set"]: r for r in results}
        print(f"| {name} | " + " | ".join(cell(by_set[s]["output"]) for s in sets) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
