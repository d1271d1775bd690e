"""Throughput of the Ray batch with 1 and with 2 (or more) workers, in one run.

    python scripts/bench_ray.py --files 8 --frames 60 --size 320x240 --workers 1 2 --json ray_bench.json

Generates the clips (moving gradients with noise, no audio), starts one local Ray
instance with as many CPUs as the largest worker count, and derains the same batch
once per worker count (``ClusterOptions.workers`` caps the files in flight; one CPU
and one onnxruntime thread per file). Prints files/min and frames/s per row and the
ratio to the first row, with the machine's load average before each row.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import write_clip  # noqa: E402

from stream_derain.cluster import ClusterOptions, import_ray, run_cluster  # noqa: E402
from stream_derain.derain import DerainConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-smooth", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    ray = import_ray()
    root = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    src = [write_clip(root / f"clip{i}.mp4", frames=args.frames, size=(w, h), audio=False, seed=i)
           for i in range(args.files)]
    ray.init(num_cpus=max(args.workers), include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    cfg = DerainConfig(input=Path("."), smooth=not args.no_smooth, backend="onnxruntime")
    rows = []
    try:
        warm = root / "warm"  # worker start-up and imports: not measured
        warm.mkdir()
        run_cluster([(p, warm / p.name) for p in src[:max(args.workers)]], cfg)
        for n in args.workers:
            out = root / f"out{n}"
            out.mkdir()
            load = os.getloadavg()[0]
            jobs = [(p, out / p.name) for p in src]
            res = run_cluster(jobs, cfg, ClusterOptions(workers=n))
            assert res.ok, res.as_dict()
            rows.append({"workers": n, "files": len(jobs), "frames": res.frames,
                         "seconds": round(res.seconds, 2), "files_per_min": round(res.files_per_min, 2),
                         "fps": round(res.fps, 2), "load_before": round(load, 2)})
            print(f"workers={n}: {res.files_per_min:.1f} files/min, {res.fps:.1f} frames/s "
                  f"({res.frames} frames in {res.seconds:.1f}s; load average {load:.2f} before)", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    for r in rows:
        r["ratio"] = round(r["fps"] / rows[0]["fps"], 2)
    print("ratio (frames/s vs the first row):", [r["ratio"] for r in rows])
    if args.json:
        meta = {"size": args.size, "smooth": not args.no_smooth, "cpus": os.cpu_count()}
        args.json.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
