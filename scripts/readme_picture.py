"""The README's picture: a frame of a bundled sample clip, rainy and derained, and a crop.

    python scripts/readme_picture.py [--clip samples/rainy_cafe_table_360p.mp4]
        [--frame 62] [--crop X,Y,W,H] [--out docs/img/readme_derain.jpg]

Only the bundled ``samples/`` clips may go in: they are public-domain / CC0 photos with
the project's own synthetic rain (``scripts/make_samples.py``). Never point it at the
research data (``../shared/data``): pictures derived from it are not committed.

The frame is derained by the library's file path (:func:`stream_derain.derain.derain`)
with the shipped default model on ONNX Runtime FP32 (the same picture on every
machine), smoother on as by default, over a few frames around ``--frame`` so that a
multi-frame model sees its neighbours; the output is encoded losslessly (x264 crf 0)
and read back. Layout: rainy | derained on top, the same crop of both, enlarged 2x,
below; labelled with the model's name and version from the manifest. Written as a
JPEG under 200 KB (the quality steps down until it fits).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from stream_derain.catalog import load_model_info  # noqa: E402
from stream_derain.derain import DerainConfig, derain  # noqa: E402
from stream_derain.engine_spec import EngineSpec  # noqa: E402
from stream_derain.io.encode_options import EncodeOptions  # noqa: E402
from stream_derain.io.frames import FrameItem  # noqa: E402
from stream_derain.io.video import VideoReader  # noqa: E402

MAX_BYTES = 200_000
MARGIN = 4  # frames derained on each side of the one shown (a 5-frame window needs 2)
TILE_W = 480  # width of each of the two panels in a row


def read_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video as HxWx3 uint8 RGB (the library's own conversion)."""
    reader = VideoReader(path, start=index, max_frames=1, copy_streams=False, hwaccel="none")
    try:
        for item in reader.items():
            if isinstance(item, FrameItem):
                return item.image
    finally:
        reader.close()
    raise SystemExit(f"{path}: no frame {index}")


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    out = rgb.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 24), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def fit(rgb: np.ndarray, width: int) -> np.ndarray:
    h = round(rgb.shape[0] * width / rgb.shape[1])
    interpolation = cv2.INTER_AREA if rgb.shape[1] > width else cv2.INTER_CUBIC
    return cv2.resize(rgb, (width, h), interpolation=interpolation)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=REPO / "samples" / "rainy_cafe_table_360p.mp4")
    ap.add_argument("--frame", type=int, default=62)
    ap.add_argument("--crop", default="300,40,240,135", help="X,Y,W,H of the enlarged crop (source pixels)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "readme_derain.jpg")
    args = ap.parse_args()

    clip = args.clip.resolve()
    if (REPO / "samples").resolve() not in clip.parents:
        raise SystemExit(f"{clip}: only the bundled samples/ clips may be pictured")
    info = load_model_info()
    start = max(args.frame - MARGIN, 0)
    with tempfile.TemporaryDirectory() as tmp:
        out_video = Path(tmp) / "derained.mkv"
        derain(DerainConfig(input=clip, output=out_video,
                            engine=EngineSpec(backend="onnxruntime", precision="fp32"),
                            start=start, max_frames=2 * MARGIN + 1, hwaccel="none",
                            encode=EncodeOptions(codec="libx264", crf=0)))
        derained = read_frame(out_video, args.frame - start)
    rainy = read_frame(clip, args.frame)

    x, y, w, h = (int(v) for v in args.crop.split(","))
    crops = [img[y:y + h, x:x + w] for img in (rainy, derained)]
    name = f"{info.name} v{info.version}"
    top = np.hstack([label(fit(rainy, TILE_W), "rainy input (synthetic rain, CC0 photo)"),
                     label(fit(derained, TILE_W), f"derained: {name}")])
    bottom = np.hstack([label(fit(c, TILE_W), f"{t}, crop enlarged")
                        for c, t in zip(crops, ("rainy", "derained"), strict=True)])
    picture = np.vstack([top, np.zeros((4, top.shape[1], 3), np.uint8), bottom])

    args.out.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    for quality in range(88, 40, -4):
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
        if ok and len(buf) <= MAX_BYTES:
            break
    else:
        raise SystemExit(f"cannot fit the picture into {MAX_BYTES} bytes")
    args.out.write_bytes(buf.tobytes())
    print(f"{args.out}: {picture.shape[1]}x{picture.shape[0]}, JPEG quality {quality}, {len(buf)} bytes, "
          f"model {name}, frame {args.frame} of {clip.name}")


if __name__ == "__main__":
    main()
