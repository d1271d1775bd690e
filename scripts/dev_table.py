"""Markdown table of `stream-derain eval --dev --json` results, one row per model.

    python scripts/dev_table.py v1=runs/v2/eval_v1.json v2=runs/v2/eval_final.json
    python scripts/dev_table.py --set heavy25 v1=runs/v1.json v3=runs/v3.json

Each cell: PSNR-Y dB / SSIM-Y / brightness bias (grey levels) / detail ratio.
With `--set NAME`, one row per image of that set instead (brightest input first):
the input's bias, then PSNR-Y / bias for each model, then the last model minus the
first in PSNR-Y.
"""

from __future__ import annotations

import argparse
import json


def cell(s: dict) -> str:
    psnr = "inf" if s["psnr_y"] is None else f"{s['psnr_y']:.2f}"  # null in JSON: identical images
    return f"{psnr} / {s['ssim_y']:.4f} / {s['bias']:+.2f} / {s['detail']:.3f}"


def set_table(rows: list[tuple[str, list[dict]]]) -> None:
    sets = [r["set"] for r in rows[0][1]]
    print("| row | " + " | ".join(sets) + " |")
    print("|" + " --- |" * (len(sets) + 1))
    print("| input | " + " | ".join(cell(r["input"]) for r in rows[0][1]) + " |")
    for name, results in rows:
        by_set = {r["set"]: r for r in results}
        print(f"| {name} | " + " | ".join(cell(by_set[s]["output"]) for s in sets) + " |")


def image_table(rows: list[tuple[str, list[dict]]], set_name: str) -> None:
    per_model = []
    for name, results in rows:
        by_set = {r["set"]: r for r in results}
        if set_name not in by_set:
            raise SystemExit(f"Error: {name} has no set {set_name!r}")
        per_model.append({im["name"]: im for im in by_set[set_name]["per_image"]})
    first, last = per_model[0], per_model[-1]
    names = sorted(first, key=lambda n: -first[n]["input"]["bias"])
    print("| image | input bias | " + " | ".join(n for n, _ in rows) + f" | {rows[-1][0]} - {rows[0][0]} |")
    print("|" + " --- |" * (len(rows) + 3))
    for n in names:
        cells = [f"{m[n]['output']['psnr_y']:.2f} / {m[n]['output']['bias']:+.1f}" for m in per_model]
        gain = last[n]["output"]["psnr_y"] - first[n]["output"]["psnr_y"]
        print(f"| {n} | {first[n]['input']['bias']:+.1f} | " + " | ".join(cells) + f" | {gain:+.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="NAME=eval.json")
    parser.add_argument("--set", dest="set_name", help="per-image table of this set")
    args = parser.parse_args()
    rows = [(a.split("=", 1)[0], json.loads(open(a.split("=", 1)[1]).read())) for a in args.models]
    if args.set_name:
        image_table(rows, args.set_name)
    else:
        set_table(rows)


if __name__ == "__main__":
    main()
