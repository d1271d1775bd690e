"""``stream-derain eval``: PSNR/SSIM on paired image folders, flicker (E_warp) of videos."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Optional

import typer

from ..backends import create_backend
from ..catalog import resolve_model, still_model
from ..devsets import dev_sets
from ..errors import InputError
from ..evaluate import PairSet, evaluate_set
from ..flicker import evaluate_video
from .common import app, handle_errors

log = logging.getLogger("stream_derain")


def is_video(path: Path) -> bool:
    """A video file, or a folder of frames (no rain/ and clean/ inside)."""
    return path.is_file() or (path.is_dir() and not (path / "rain").is_dir())


def strict(obj: object) -> object:
    """``obj`` with inf and NaN as None, for strict JSON (PSNR of identical images is inf)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def write_json(path: Path, results: list) -> None:
    path.write_text(json.dumps(strict(results), indent=2, allow_nan=False) + "\n")


def check_sets(sets: list[Path], reference: Optional[Path], source: Optional[Path]) -> None:
    """A missing path is an error; plain folders (no rain/ and clean/) are scored for
    flicker only, and that is said, not done silently."""
    for path in [*sets, *(p for p in (reference, source) if p is not None)]:
        if not path.exists():
            raise InputError(f"not found: {path}")
    plain = [s for s in sets if s.is_dir() and is_video(s)]
    if plain and reference is None and source is None:
        log.warning("%s: no rain/ and clean/ inside, so not a paired set: scored as frame sequences for "
                    "flicker (E_warp) only; for PSNR/SSIM give --reference CLEAN", ", ".join(map(str, plain)))


def video_line(r: dict) -> str:
    """One line of a video's scores (:func:`~stream_derain.flicker.evaluate_video`)."""
    parts = [f"{r['video']}: {r['frames']} frames",
             f"E_warp {1e3 * r['e_warp']:.3f}e-3 (lower is better; flow on {r['flow_on']})"]
    if "e_warp_source" in r:
        parts.append(f"source {1e3 * r['e_warp_source']:.3f}e-3")
    if "psnr_y" in r:
        parts.append(f"PSNR-Y {r['psnr_y']:.2f} dB SSIM-Y {r['ssim_y']:.4f}")
    return "  ".join(parts)


def set_line(r: dict) -> str:
    """One line of a paired set's scores: PSNR/SSIM on Y and RGB, brightness bias, detail ratio."""
    def part(label: str, s: dict) -> str:
        rgb = f" RGB {s['psnr_rgb']:6.2f} dB / {s['ssim_rgb']:.4f}" if "psnr_rgb" in s else ""
        return (f"{label} PSNR-Y {s['psnr_y']:6.2f} dB SSIM-Y {s['ssim_y']:.4f}{rgb} bias {s['bias']:+5.2f} "
                f"detail {s['detail']:.3f}")
    out = r.get("output")
    return f"{r['set']:<13} {r['images']:>3} images  {part('input', r['input'])}" + (
        f"  |  {part('output', out)}" if out else "")


@app.command("eval")
@handle_errors
def eval_cmd(
    sets: Optional[list[Path]] = typer.Argument(
        None, help="Paired folders, each with rain/ and clean/; or derained videos (files or frame folders) "
        "to score for flicker."),
    dev: bool = typer.Option(False, "--dev", help="Score every dev set (pairs/sirr20, pairs/heavy25 and the "
                             "camvid/davis sets with and without rain, rendered once under runs/devsets)."),
    video: bool = typer.Option(False, "--video", help="Score the model on the dev video (held-out clips with "
                               "synthetic rain and ground truth, the same under light rain, the same "
                               "without rain, the same with real rain, real rainy clips; "
                               "rendered once under runs/devvideo) through the file path's stages."),
    window: str = typer.Option("centred", help="--video: a multi-frame model's window (centred or causal)."),
    smooth: bool = typer.Option(False, "--smooth/--no-smooth", help="--video: run the smoother too."),
    reference: Optional[Path] = typer.Option(None, help="Videos: clean reference video (PSNR/SSIM, and "
                                             "the optical flow of E_warp)."),
    source: Optional[Path] = typer.Option(None, help="Videos: the rainy input video (its own E_warp; "
                                          "the flow of E_warp when there is no reference)."),
    backend: str = typer.Option("auto", help="Backend that runs the model."),
    model: Optional[str] = typer.Option(None, help="Shipped model name or .onnx path."),
    predictions: Optional[Path] = typer.Option(None, help="Score these derained images instead of "
                                               "running a model (one set only)."),
    input_only: bool = typer.Option(False, "--input-only", help="Score only the rainy inputs."),
    save: Optional[Path] = typer.Option(None, help="Write derained images under SAVE/<set>/."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write all scores as JSON."),
) -> None:
    """PSNR and SSIM (Y channel and RGB) of input and output against clean images; for
    videos, the flicker metric E_warp (Lai et al. 2018) and per-frame PSNR/SSIM."""
    if video:
        return _eval_dev_video(backend, model, window, smooth, json_out)
    sets = list(sets or []) + (dev_sets() if dev else [])
    if not sets:
        raise InputError("give paired folders or videos to score, or --dev")
    check_sets(sets, reference, source)
    if any(is_video(s) for s in sets):
        results = [{"video": str(s), **evaluate_video(s, reference, source)} for s in sets]
        for r in results:
            typer.echo(video_line(r))
        if json_out:
            write_json(json_out, results)
        return
    pair_sets = [PairSet.from_dir(s) for s in sets]
    results = []
    if input_only or predictions is not None:
        results = [evaluate_set(p, predictions=predictions) for p in pair_sets]
    else:
        with create_backend(backend, still_model(resolve_model(model))) as be:  # images: the stills model
            results = [evaluate_set(p, be, save_dir=save / p.name if save else None) for p in pair_sets]
    for r in results:
        typer.echo(set_line(r))
    if json_out:
        write_json(json_out, results)


def _eval_dev_video(backend: str, model: Optional[str], window: str, smooth: bool,
                    json_out: Optional[Path]) -> None:
    """``eval --video``: :func:`~stream_derain.video_eval.evaluate_dev_video` of the model
    run by :func:`~stream_derain.video_eval.derain_clip` (the file path's stages)."""
    from ..video_eval import derain_clip, evaluate_dev_video, summary_line

    info = resolve_model(model)
    with create_backend(backend, info) as be:
        name = f"{info.name} v{info.version} ({window}{', smoothed' if smooth else ''})"
        result = evaluate_dev_video(lambda frames: derain_clip(be, frames, smooth=smooth, mode=window),
                                    name=name)
    for kind in ("rain", "light", "clean", "realrain"):
        for clip, s in result[kind].items():
            typer.echo(f"{kind:<8} {clip:<12} PSNR-Y {s['psnr_y']:6.2f} dB SSIM-Y {s['ssim_y']:.4f} "
                       f"bias {s['bias']:+5.2f} detail {s['detail']:.3f} E_warp {1e3 * s['e_warp']:.2f}e-3")
    for clip, s in result["real"].items():
        typer.echo(f"real     {clip:<12} rain left {s['rain_share_output']:.4f} of "
                   f"{s['rain_share_input']:.4f} "
                   f"(removed {100 * s['rain_removed']:.0f}%) background detail {s['background_detail']:.3f}")
    typer.echo(summary_line(result))
    if json_out:
        write_json(json_out, [result])
