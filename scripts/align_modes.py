"""Align modes compared without retraining (docs/derainer_v4_video.md, "v4.3.1").

    python scripts/align_modes.py time flow flow-chain ...          # host ms a frame, K = 5
    python scripts/align_modes.py score EXPORT_DIR NAME flow flow-chain ...

``time``: ``align_slots`` through a ``FrameWindow`` over 40 frames of the first dev clip
at 640x360, OpenCV on one thread, centred and causal. ``score``: a copy of the export
``NAME`` in ``EXPORT_DIR`` per mode, its manifest's ``align`` changed, scored on the
rain-free, real-rain-over-clean and light-rain dev clips (``runs/devvideo``, made by
``stream-derain eval --video``) and the real clips' held-out parts (leftover rain, as
``eval --video``) through the file path's stages, smoother on. Besides the shipped modes
(``align.FLOWS``) it knows the DIS settings of the docs' table (:data:`EXTRA`).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2

from stream_derain import align, catalog, devvideo, window
from stream_derain.align import Flow

EXTRA = {
    "med320-chain": Flow(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 320, chain=True),
    "fast640-chain": Flow(cv2.DISOPTICAL_FLOW_PRESET_FAST, 640, chain=True),
    "fast640f1-chain": Flow(cv2.DISOPTICAL_FLOW_PRESET_FAST, 640, chain=True, finest=1),
    "medium-chain": Flow(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 640, chain=True),
    "ultra-s6-chain": Flow(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, 320, chain=True, finest=0, stride=6),
    "ultra256-chain": Flow(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, 256, chain=True, finest=0),
}


def time_modes(modes: list[str]) -> None:
    cv2.setNumThreads(1)
    frames = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA)
              for f in devvideo.clip_frames(devvideo.DEV_CLIPS[0])[:40]]
    for offsets in ((0, -1, 1, -2, 2), (0, -1, -2, -3, -4)):
        for mode in modes:
            w, took, n = window.FrameWindow(offsets, scene_cut=None), 0.0, 0
            for i, f in enumerate(frames):
                ready = w.push(SimpleNamespace(image=f, index=i))
                for r in ready + (w.flush() if i == len(frames) - 1 else []):
                    t0 = time.perf_counter()
                    window.stack_slots([r.slots], mode)
                    took, n = took + time.perf_counter() - t0, n + 1
            print(offsets, mode, f"{1000 * took / n:.1f} ms a frame", flush=True)


def score_modes(src: Path, name: str, modes: list[str]) -> None:
    from stream_derain.backends import create_backend
    from stream_derain.video_eval import (
        _means,
        derain_clip,
        read_pairs,
        real_means,
        real_scores,
        reference_scores,
    )

    for mode in modes:
        out = Path("runs/export") / f"align_{src.name}_{name}_{mode}"  # exports scored at once do not clash
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        manifest = json.loads((src / "manifest.json").read_text())
        manifest["models"] = {name: {**manifest["models"][name], "align": mode}}
        manifest["default"] = name
        for f in src.glob(f"{name}.*onnx"):
            shutil.copy(f, out)
        (out / "manifest.json").write_text(json.dumps(manifest))
        rows: dict[str, dict] = {"clean": {}, "realrain": {}, "light": {}}
        real: dict[str, dict] = {}
        with create_backend("onnxruntime", catalog.load_model_info(name, out)) as be:
            for clip in devvideo.DEV_CLIPS:
                devvideo.render_light(clip, Path("runs/devvideo"))
                for kind in rows:
                    rainy, clean = read_pairs(Path("runs/devvideo") / f"{clip.name}_{kind}")
                    rows[kind][clip.name] = reference_scores(derain_clip(be, rainy, smooth=True), clean)
            for clip_src in devvideo.REAL_CLIPS:
                frames = devvideo.real_dev_frames(clip_src)
                real[devvideo.real_name(clip_src)] = real_scores(derain_clip(be, frames, smooth=True), frames)
        for kind, per_clip in rows.items():
            m = _means(per_clip)
            worst = min(per_clip.values(), key=lambda r: r["detail"])["detail"]
            print(name, mode, kind, f"{m['psnr_y']:.2f} dB, bias {m['bias']:+.2f}, detail {m['detail']:.3f} "
                  f"(least {worst:.3f})", flush=True)
        m = real_means(real)
        print(name, mode, "real", f"removed {100 * m['rain_removed']:.1f}% (" + ", ".join(
            f"{k} {100 * r['rain_removed']:.0f}%" for k, r in real.items()) +
            f"), background detail {m['background_detail']:.3f}", flush=True)


def main() -> None:
    align.FLOWS.update({k: v for k, v in EXTRA.items() if k not in align.FLOWS})
    catalog.ALIGN_MODES = ("none", *align.FLOWS)
    if sys.argv[1:2] == ["time"]:
        time_modes(sys.argv[2:])
    elif sys.argv[1:2] == ["score"] and len(sys.argv) > 4:
        score_modes(Path(sys.argv[2]), sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
