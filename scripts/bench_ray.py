"""Throughput of the Ray batch with 1 and with 2 (or more) workers, in one run.

    python scripts/bench_ray.py --files 4 --frames 40 --size 256x192 --rounds 3 --json ray_bench.json

Generates the clips (moving gradients with noise, no audio), starts one local Ray
instance with as many CPUs as the largest worker count, and derains the same batch
once per worker count and round, alternating (so a load that drifts hurts both alike;
``ClusterOptions.workers`` caps the files in flight; one CPU and one onnxruntime thread
per file). Prints files/min, frames/s and the workers' CPU ms per frame for each row
with the load average before it, then the medians and the frames/s ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import write_clip  # noqa: E402

from stream_derain.cluster import ClusterOptions, import_ray, init_ray, run_cluster  # noqa: E402
from stream_derain.derain import DerainConfig  # noqa: E402
from stream_derain.engine_spec import EngineSpec


def row(n: int, src: list[Path], out: Path, cfg: DerainConfig) -> dict:
    out.mkdir()
    load = os.getloadavg()[0]
    res = run_cluster([(p, out / p.name) for p in src], cfg, ClusterOptions(workers=n))
    assert res.ok, res.as_dict()
    cpu = sum(f.cpu_seconds for f in res.files)
    r = {"workers": n, "files": len(src), "frames": res.frames, "seconds": round(res.seconds, 2),
         "files_per_min": round(res.files_per_min, 2), "fps": round(res.fps, 2),
         "cpu_ms_per_frame": round(1000 * cpu / res.frames, 1), "load_before": round(load, 2)}
    print(f"workers={n}: {r['files_per_min']:.1f} files/min, {r['fps']:.1f} frames/s, "
          f"{r['cpu_ms_per_frame']:.0f} CPU ms/frame ({res.frames} frames in {res.seconds:.1f}s; "
          f"load average {load:.2f} before)", flush=True)
    return r


def summarise(rows: list[dict], counts: list[int]) -> dict:
    """Median files/min, frames/s and CPU ms/frame per worker count, and the frames/s ratio."""
    import statistics

    med = {n: {k: statistics.median(r[k] for r in rows if r["workers"] == n)
               for k in ("files_per_min", "fps", "cpu_ms_per_frame")} for n in counts}
    for n in counts:
        med[n]["ratio"] = round(med[n]["fps"] / med[counts[0]]["fps"], 2)
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=1, help="alternate the worker counts this many times")
    ap.add_argument("--no-smooth", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    ray = import_ray()
    root = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    src = [write_clip(root / f"clip{i}.mp4", frames=args.frames, size=(w, h), audio=False, seed=i)
           for i in range(args.files)]
    init_ray(ray, ClusterOptions(num_cpus=max(args.workers)))
    cfg = DerainConfig(input=Path("."), engine=EngineSpec(smooth=not args.no_smooth, backend="onnxruntime"))
    rows = []
    try:
        warm = root / "warm"  # worker start-up and imports: not measured
        warm.mkdir()
        run_cluster([(p, warm / p.name) for p in src[:max(args.workers)]], cfg)
        for k in range(args.rounds):
            rows += [row(n, src, root / f"out{n}-{k}", cfg) for n in args.workers]
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    med = summarise(rows, args.workers)
    for n, m in med.items():
        print(f"median workers={n}: {m['files_per_min']:.1f} files/min, {m['fps']:.1f} frames/s, "
              f"{m['cpu_ms_per_frame']:.0f} CPU ms/frame, frames/s ratio {m['ratio']:.2f}")
    if args.json:
        meta = {"size": args.size, "frames": args.frames, "smooth": not args.no_smooth,
                "cpus": os.cpu_count()}
        args.json.write_text(json.dumps({**meta, "rows": rows, "median": med}, indent=2) + "\n")


if __name__ == "__main__":
    main()
