"""Build the multi-frame trainer's data subset for a GPU machine (issue 26, point 7).

The device machine gets the working tree plus a few carried ignored paths, 64 MiB in
all, and cannot see ``../shared/data``. This script writes, under ``runs/gpu_data``
(git-ignored), what :mod:`stream_derain.train.temporal` reads, in the data root's own
folder layout, so that ``STREAM_DERAIN_DATA=runs/gpu_data`` points the trainer at it:

- the training clips (``TRAIN_CLIPS``): every frame, long side at most 480, JPEG q90;
  the Udacity mp4 (which needs PyAV to read) becomes the folder
  ``clean_video/udacity/solidWhiteRight`` holding its frames 0..169 (the ``[0:170]`` the
  trainer takes): ``configs/v4_video/gpu.json`` lists that folder among its ``video_clips``;
- the stills (``STILLS``: kodak24, mcmaster, bsds500_test, camvid) the same way, every
  ``--camvid-step`` (2) CamVid frame, without the CamVid drives of the dev sets (the
  trainer's ``exclude_names``) and without any photo whose thumbnail matches a dev-set
  background (the trainer's ``exclude_like`` check, done here since ``pairs/`` does not
  travel);
- ``rain_layers/garg06``: ``--layers`` of the 825 Garg-Nayar streak layers, evenly
  over the sorted list (every streak family, all five variants), copied unchanged.

It prints the subset's size and the size of what would travel with it (the working
tree plus the subset), and exits 1 when the subset is over ``--limit-mib`` (60) or the
two together are over the device tool's 64 MiB. Nothing here is ever committed.
On 2026-12-04: 41.3 MiB, 57.2 MiB with the working tree (docs/gpu.md).

    nice -n 19 .venv/bin/python scripts/gpu_subset.py          # writes runs/gpu_data
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIB = 1 << 20
TRAVEL_LIMIT_MIB = 64.0  # the device tool's limit on the working tree plus carried paths
MARKER = "SUBSET.json"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
# clean_video/udacity/solidWhiteRight.mp4 -> the folder clean_video/udacity/solidWhiteRight
# (what configs/v4_video/gpu.json names among its video_clips)


def write_jpeg(path: Path, rgb: np.ndarray, max_side: int, quality: int) -> None:
    from stream_derain.io.images import shrink

    path.parent.mkdir(parents=True, exist_ok=True)
    ok = cv2.imwrite(str(path), cv2.cvtColor(shrink(rgb, max_side), cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SystemExit(f"cannot write {path}")


def read_rgb(path: Path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_files(folder: Path) -> list[Path]:
    from stream_derain.io.images import is_image

    return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p) and not p.name.startswith("."))


def clip_specs() -> list[tuple[str, int | None, int | None]]:
    """(source relative to the data root, first frame, end frame) of the trainer's clips."""
    from stream_derain.train.temporal import TRAIN_CLIPS

    out = []
    for spec in TRAIN_CLIPS:
        path, _, rng = spec.partition("[")
        a = b = None
        if rng:
            a, b = (int(v) if v else None for v in rng.rstrip("]").split(":"))
        out.append((path, a, b))
    return out


def clip_target(source: str) -> str:
    """Where a clip goes in the subset: a video file becomes a folder of its frames."""
    p = Path(source)
    return str(p.with_suffix("")) if p.suffix.lower() in VIDEO_SUFFIXES else source


def write_clips(data: Path, out: Path, max_side: int, quality: int) -> list[dict]:
    from stream_derain.devvideo import read_source  # a video file needs PyAV (here only)

    done = []
    for source, a, b in clip_specs():
        frames = read_source(data / source)[a:b]
        target = clip_target(source)
        for i, rgb in enumerate(frames):
            write_jpeg(out / target / f"{i:05d}.jpg", rgb, max_side, quality)
        done.append({"source": source, "range": [a, b], "folder": target, "frames": len(frames)})
        print(f"clip {source}[{a}:{b}] -> {target}: {len(frames)} frames", flush=True)
    return done


def dev_thumbnails(data: Path) -> np.ndarray | None:
    """Thumbnails of the dev sets' clean backgrounds (the trainer's ``exclude_like``)."""
    from stream_derain.train.data import thumbnail

    refs = []
    for folder in ("pairs/sirr20/clean", "pairs/heavy25/clean"):
        if (data / folder).is_dir():
            for p in image_files(data / folder):
                img = read_rgb(p)
                if img is not None:
                    refs.append(thumbnail(img.astype(np.float32) / 255.0))
    return np.stack(refs) if refs else None


def write_stills(data: Path, out: Path, max_side: int, quality: int, step: int) -> list[dict]:
    """The trainer's stills (its STILLS folders, relative to the data root)."""
    from stream_derain.train.data import thumbnail
    from stream_derain.train.temporal import STILLS, TemporalTrainConfig

    exclude = TemporalTrainConfig().exclude_names
    refs = dev_thumbnails(data)
    done = []
    for folder in (Path(s).name for s in STILLS):
        rel = f"clean/{folder}"
        files = [p for p in image_files(data / rel) if not any(fnmatch.fnmatch(p.name, e) for e in exclude)]
        files = files[::step] if folder == "camvid" else files
        kept = dropped = 0
        for p in files:
            img = read_rgb(p)
            if img is None:
                continue
            if refs is not None:
                diff = np.abs(refs - thumbnail(img.astype(np.float32) / 255.0)).mean(axis=(1, 2, 3)).min()
                if diff <= 0.01:
                    dropped += 1
                    continue
            write_jpeg(out / rel / f"{p.stem}.jpg", img, max_side, quality)
            kept += 1
        done.append({"folder": rel, "images": kept, "dev_backgrounds_dropped": dropped,
                     "every": step if folder == "camvid" else 1})
        print(f"stills {rel}: {kept} images ({dropped} dev-set backgrounds dropped)", flush=True)
    return done


def write_layers(data: Path, out: Path, count: int) -> dict:
    src = data / "rain_layers" / "garg06"
    files = image_files(src)
    pick = sorted({int(round(i)) for i in np.linspace(0, len(files) - 1, min(count, len(files)))})
    dst = out / "rain_layers" / "garg06"
    dst.mkdir(parents=True, exist_ok=True)
    for i in pick:
        shutil.copyfile(files[i], dst / files[i].name)
    families = {files[i].stem.split("-")[0] for i in pick}
    print(f"rain layers: {len(pick)} of {len(files)} ({len(families)} streak families)", flush=True)
    return {"folder": "rain_layers/garg06", "layers": len(pick), "of": len(files), "families": len(families)}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def tree_bytes() -> int | None:
    """Bytes of what the device tool sends besides carried paths: tracked files and
    untracked files git does not ignore."""
    try:
        names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                               cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    total = 0
    for name in filter(None, names):
        p = REPO / name.decode()
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the full data root")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "gpu_data")
    ap.add_argument("--max-side", type=int, default=480)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--layers", type=int, default=200, help="Garg-Nayar streak layers to take")
    ap.add_argument("--camvid-step", type=int, default=2,
                    help="take every n-th CamVid still (2: the subset and the tree fit 64 MiB)")
    ap.add_argument("--limit-mib", type=float, default=60.0)
    args = ap.parse_args(argv)

    data, out = args.data.resolve(), args.out.resolve()
    if not (data / "clean").is_dir():
        print(f"data root not found: {data}", file=sys.stderr)
        return 2
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).is_file():
            print(f"{out} exists and is not a subset this script wrote: remove it first", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.time()
    report = {"data_root": str(data), "max_side": args.max_side, "jpeg_quality": args.quality,
              "clips": write_clips(data, out, args.max_side, args.quality),
              "stills": write_stills(data, out, args.max_side, args.quality, args.camvid_step),
              "rain_layers": write_layers(data, out, args.layers)}
    size = folder_bytes(out)
    tree = tree_bytes()
    report.update(bytes=size, mib=round(size / MIB, 2), seconds=round(time.time() - t0, 1),
                  working_tree_mib=round(tree / MIB, 2) if tree else None)
    (out / MARKER).write_text(json.dumps(report, indent=1) + "\n")
    print(f"subset: {out} {size / MIB:.2f} MiB (limit {args.limit_mib:g} MiB)")
    ok = size / MIB <= args.limit_mib
    if tree is not None:
        travel = (size + tree) / MIB
        print(f"with the working tree ({tree / MIB:.2f} MiB) the device run sends {travel:.2f} MiB "
              f"(limit {TRAVEL_LIMIT_MIB:g} MiB)")
        if travel > TRAVEL_LIMIT_MIB:
            print("too large to travel: lower --layers or raise --camvid-step", file=sys.stderr)
            ok = False
    if not ok:
        print(f"FAIL: subset over its limit ({size / MIB:.2f} MiB)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
