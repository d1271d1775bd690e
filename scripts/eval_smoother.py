"""Evaluate the temporal smoother on the video benchmark: flicker, fidelity and detail.

Per clip: per-frame derain with ONNX Runtime (batch of 1, cached under ``--cache``
by model hash), then the CPU temporal smoother, and report

- PSNR / SSIM on Y (BT.601) of the per-frame and the smoothed output against the clean
  frames (clips with ground truth);
- E_warp (Lai et al. 2018, x1e3) of the rainy input, the per-frame output, the smoothed
  output and the ground truth (flow on the clean frames when known, else on the input);
- the detail ratio: Laplacian energy (mean squared 3x3 Laplacian of Y) of the output
  over the ground truth's, and smoothed over per-frame;
- ms per frame of inference and of the smoother.

Clips: the folders of ``scripts/make_video_bench.py`` (rainy.mp4 + clean.mp4). A DAVIS
clip (``davis_*``) is also run *without rain* (its clean frames as input, row
``<name>/clean``): there the smoothed output is compared with the per-frame output
(PSNR-Y from the clip's mean squared error), which should be nearly identical. Real
clips (``--real``) are folders of frames without ground truth.

    python scripts/eval_smoother.py --bench runs/video_bench \\
        --real ../shared/data/real_video/ra1 ../shared/data/real_video/rb2 \\
        --threads 1 --cache runs/smoother/cache --json runs/smoother/eval.json \\
        [--model path/to/model.onnx] [--strength 0.8] [--tune key=value ...] [--markdown table.md]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_derain.catalog import ModelInfo, load_model_info, model_from_path
from stream_derain.engine_spec import EngineSpec
from stream_derain.flicker import (
    dry_masks,
    flow_pairs,
    laplacian_energy,
    laplacian_std,
    read_frames,
    warping_error,
)
from stream_derain.metrics import psnr, rgb_to_y, ssim
from stream_derain.smooth import DEFAULT_STRENGTH, TemporalSmoother

log = logging.getLogger("eval_smoother")


@dataclass
class Clip:
    """One clip in memory: HxWx3 uint8 RGB frame lists (``clean`` None for real clips)."""

    name: str
    kind: str  # 'rainy' (synthetic rain, ground truth), 'clean' (rain-free input) or 'real'
    rainy: list[np.ndarray]
    clean: list[np.ndarray] | None
    derained: list[np.ndarray] | None = None
    infer_ms: float = 0.0
    pairs: list | None = None  # E_warp flow pairs, on clean when known else on the input


def load_clips(bench: Path | None, real: list[Path], limit: int | None, only: str | None) -> list[Clip]:
    clips = []
    folders = sorted(p for p in bench.iterdir() if (p / "rainy.mp4").is_file()) if bench else []
    folders.sort(key=lambda f: not f.name.startswith("davis_"))  # DAVIS first, then pan/zoom
    for folder in folders:
        if only and only not in folder.name:
            continue
        clean = read_frames(folder / "clean.mp4", limit)
        clips.append(Clip(folder.name, "rainy", read_frames(folder / "rainy.mp4", limit), clean))
        if folder.name.startswith("davis_"):  # the same flow (on the clean frames) serves both
            clips.append(Clip(f"{folder.name}/clean", "clean", clean, clean))
    for folder in real:
        if not only or only in folder.name:
            clips.append(Clip(folder.name, "real", read_frames(folder, limit), None))
    return clips


def model_key(model: ModelInfo) -> str:
    return hashlib.sha256(model.path("fp32").read_bytes()).hexdigest()[:12]


def derain_clip(clip: Clip, model: ModelInfo, threads: int, cache: Path | None) -> None:
    """Per-frame derain (batch of 1, as the live pipeline runs): sets ``clip.derained`` and
    ``clip.infer_ms`` (median), from ``cache`` when it holds this model's output."""
    stem, n = clip.name.replace("/", "__"), len(clip.rainy)
    path = cache / model_key(model) / f"{stem}_{n}.npz" if cache else None
    for found in sorted(path.parent.glob(f"{stem}_*.npz")) if path is not None else []:
        if not found.stem[len(stem) + 1:].isdigit():
            continue
        data = np.load(found)  # a cached run of this clip with at least n frames
        if len(data["frames"]) >= n:
            clip.derained, clip.infer_ms = list(data["frames"][:n]), float(data["infer_ms"])
            return
    from stream_derain.backends import create_backend

    times, out = [], []
    with create_backend("onnxruntime", model, threads=threads) as backend:
        backend.infer(clip.rainy[0][None])  # warm-up
        for frame in clip.rainy:
            t0 = time.perf_counter()
            out.append(backend.infer(frame[None])[0])
            times.append(time.perf_counter() - t0)
    clip.derained, clip.infer_ms = out, 1e3 * float(np.median(times))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, frames=np.stack(out), infer_ms=clip.infer_ms)


def smooth(clip: Clip, strength: float, tuning: dict[str, float]) -> tuple[list[np.ndarray], float]:
    """Smoothed frames of the derained clip and the median smoother ms/frame."""
    smoother, times, out = TemporalSmoother(strength, **tuning), [], []
    for d, r in zip(clip.derained, clip.rainy):
        t = time.perf_counter()
        out.append(smoother(d, r))
        times.append(time.perf_counter() - t)
    return out, 1e3 * float(np.median(times[1:] or times))


def y_scores(frames: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float]:
    """Mean over frames of PSNR-Y (dB) and SSIM-Y against ``reference``."""
    ps, ss = [], []
    for a, b in zip(frames, reference):
        ya, yb = rgb_to_y(a), rgb_to_y(b)
        ps.append(psnr(ya, yb))
        ss.append(ssim(ya, yb))
    return float(np.mean(ps)), float(np.mean(ss))


def clip_psnr_y(frames: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """PSNR-Y (dB) from the mean squared error over the whole clip (identical frames allowed)."""
    mse = float(np.mean([np.mean((rgb_to_y(a) - rgb_to_y(b)) ** 2) for a, b in zip(frames, reference)]))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def score(clip: Clip, smoothed: list[np.ndarray], smooth_ms: float) -> dict[str, Any]:
    if clip.pairs is None:
        clip.pairs = flow_pairs(clip.clean if clip.clean is not None else clip.rainy)
    e = lambda frames: 1e3 * warping_error(frames, clip.pairs)  # noqa: E731
    row: dict[str, Any] = {
        "clip": clip.name, "kind": clip.kind, "frames": len(clip.rainy),
        "ewarp_input": e(clip.rainy), "ewarp_perframe": e(clip.derained), "ewarp_smoothed": e(smoothed),
        "infer_ms": clip.infer_ms, "smooth_ms": smooth_ms,
    }
    row["ewarp_change_pct"] = 100.0 * (row["ewarp_smoothed"] / row["ewarp_perframe"] - 1.0)
    lap_pf, lap_sm = laplacian_energy(clip.derained), laplacian_energy(smoothed)
    row["detail_sm_pf"] = lap_sm / lap_pf
    if clip.kind == "real":
        return row
    row["ewarp_gt"] = e(clip.clean)
    row["ewarp_sm_gt"] = row["ewarp_smoothed"] / row["ewarp_gt"]
    lap_gt = laplacian_energy(clip.clean)
    row["detail_pf_gt"], row["detail_sm_gt"] = lap_pf / lap_gt, lap_sm / lap_gt
    if clip.kind == "rainy":
        dry = dry_masks(clip.rainy, clip.clean)
        row["dry_share"] = float(np.mean([m.mean() for m in dry]))
        dry_pf = laplacian_energy(clip.derained, dry)
        if dry_pf > 0:  # some clips have no pixel that rain leaves untouched
            row["detail_dry_sm_pf"] = laplacian_energy(smoothed, dry) / dry_pf
    row["psnr_y_perframe"], row["ssim_y_perframe"] = y_scores(clip.derained, clip.clean)
    row["psnr_y_smoothed"], row["ssim_y_smoothed"] = y_scores(smoothed, clip.clean)
    row["psnr_change_db"] = row["psnr_y_smoothed"] - row["psnr_y_perframe"]
    row["psnr_y_sm_vs_pf"] = clip_psnr_y(smoothed, clip.derained)
    return row


def verdicts(row: dict[str, Any]) -> list[str]:
    """Which of issue 12's criteria this row fails (empty: passes)."""
    fails = []
    if row["kind"] == "clean":
        if row["psnr_y_sm_vs_pf"] < 45.0:
            fails.append("rain-free PSNR-Y < 45")
    elif row["kind"] == "rainy" and row["clip"].startswith("davis_"):
        if row["psnr_change_db"] < 0:
            fails.append("PSNR-Y below per-frame")
        if row["ewarp_change_pct"] > -30.0:
            fails.append("E_warp not 30% lower")
        if row["ewarp_sm_gt"] < 0.9:
            fails.append("E_warp < 0.9x GT")
        if row["detail_sm_pf"] < 0.95:
            fails.append("detail < 0.95")
    elif row["kind"] == "real":
        if row["ewarp_change_pct"] > -25.0:
            fails.append("E_warp not 25% lower")
        if row["detail_sm_pf"] < 0.9:
            fails.append("detail < 0.9")
    return fails


def fmt(row: dict[str, Any], key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "-"


COLUMNS = (("clip", "clip", "s"), ("PSNR-Y pf", "psnr_y_perframe", ".2f"),
           ("PSNR-Y sm", "psnr_y_smoothed", ".2f"),
           ("SSIM-Y pf", "ssim_y_perframe", ".4f"), ("SSIM-Y sm", "ssim_y_smoothed", ".4f"),
           ("sm vs pf dB", "psnr_y_sm_vs_pf", ".1f"), ("Ewarp in", "ewarp_input", ".3f"),
           ("Ewarp pf", "ewarp_perframe", ".3f"), ("Ewarp sm", "ewarp_smoothed", ".3f"),
           ("change", "ewarp_change_pct", "+.1f"), ("Ewarp GT", "ewarp_gt", ".3f"),
           ("sm/GT", "ewarp_sm_gt", ".2f"), ("detail pf/GT", "detail_pf_gt", ".3f"),
           ("detail sm/GT", "detail_sm_gt", ".3f"), ("detail sm/pf", "detail_sm_pf", ".3f"),
           ("dry detail sm/pf", "detail_dry_sm_pf", ".3f"),
           ("infer ms", "infer_ms", ".1f"), ("smooth ms", "smooth_ms", ".2f"))


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " | fails |",
             "| --- |" + " ---: |" * (len(COLUMNS) - 1) + " --- |"]
    for r in rows:
        cells = [fmt(r, key, spec) for _, key, spec in COLUMNS]
        lines.append("| " + " | ".join(cells) + " | " + ("; ".join(verdicts(r)) or "pass") + " |")
    return "\n".join(lines)


def sample_rows(paths: list[Path], out: Path, strength: float) -> list[dict[str, Any]]:
    """Laplacian std of each bundled sample: input, ``--no-smooth`` and smoothed output of
    the real pipeline (``stream_derain.derain``, default encoder), written under ``out``."""
    from stream_derain.derain import DerainConfig, derain

    rows = []
    for path in paths:
        row: dict[str, Any] = {"clip": path.name, "lap_std_input": laplacian_std(read_frames(path))}
        for key, smooth_on in (("lap_std_perframe", False), ("lap_std_smoothed", True)):
            dest = out / f"{path.stem}.{'smooth' if smooth_on else 'nosmooth'}.mp4"
            dest.parent.mkdir(parents=True, exist_ok=True)
            derain(DerainConfig(input=path, output=dest, overwrite=True,
                                engine=EngineSpec(smooth=smooth_on, smooth_strength=strength)))
            row[key] = laplacian_std(read_frames(dest))
        row["lap_std_ratio"] = row["lap_std_smoothed"] / row["lap_std_perframe"]
        log.info("%s", row)
        rows.append(row)
    return rows


def parse_tuning(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = float(value) if "." in value or "e" in value else int(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, help="folder of make_video_bench.py clips")
    ap.add_argument("--real", type=Path, nargs="*", default=[], help="folders of real rainy frames")
    ap.add_argument("--model", type=Path, help="ONNX model (default: the shipped model)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--strength", type=float, default=DEFAULT_STRENGTH)
    ap.add_argument("--tune", nargs="*", default=[], help="smoother tuning key=value")
    ap.add_argument("--limit", type=int, help="frames per clip")
    ap.add_argument("--only", help="only clips whose name contains this")
    ap.add_argument("--cache", type=Path, help="folder caching the per-frame derained clips")
    ap.add_argument("--samples", type=Path, nargs="*", default=[],
                    help="bundled sample videos (Laplacian std)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path, help="write the table as markdown")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = model_from_path(args.model) if args.model else load_model_info()
    log.info("model %s (%s)", model.name, model.version)
    tuning = parse_tuning(args.tune)
    rows, pairs = [], {}
    for clip in load_clips(args.bench, args.real, args.limit, args.only):
        derain_clip(clip, model, args.threads, args.cache)
        smoothed, ms = smooth(clip, args.strength, tuning)
        clip.pairs = pairs.get(clip.name.split("/")[0])
        rows.append(score(clip, smoothed, ms))
        pairs[clip.name.split("/")[0]] = clip.pairs
        log.info("%s", {k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()})
        if args.markdown:  # after every clip: a partial table survives an interrupted run
            args.markdown.write_text(markdown(rows) + "\n")
    table = markdown(rows)
    samples = sample_rows(args.samples, Path("runs/smoother/samples"), args.strength) if args.samples else []
    if samples:
        table += ("\n\n| sample | Laplacian std input | --no-smooth | smoothed | ratio |\n"
                  "| --- | ---: | ---: | ---: | ---: |\n")
        table += "\n".join(f"| {r['clip']} | {r['lap_std_input']:.2f} | {r['lap_std_perframe']:.2f} | "
                            f"{r['lap_std_smoothed']:.2f} | {r['lap_std_ratio']:.3f} |" for r in samples)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": f"{model.name} {model.version}", "strength": args.strength,
                                         "tuning": tuning, "clips": rows, "samples": samples}, indent=1))


if __name__ == "__main__":
    main()
