"""Mean |output - input| (grey levels) of ONNX models on real rainy frames (no ground truth).

The last 8 frames (name order) of ``real_rain``, ``real_video/ra1`` and ``rb2``, which
distillation (``stream_derain.train.teacher_targets``) never trains on, box-resized to a
long side of at most 640 px:

    python scripts/real_change.py engines/derain-student.onnx runs/v4/x/onnx/derain-student.onnx
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import onnxruntime as ort

from stream_derain.devsets import DATA_ROOT
from stream_derain.io.images import list_images

FOLDERS = ("real_rain", "real_video/ra1", "real_video/rb2")


def frame(path) -> np.ndarray:
    """HxWx3 float32 RGB, long side <= 640, H and W multiples of 4."""
    x = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    h, w = x.shape[:2]
    f = min(1.0, 640 / max(h, w))
    if f < 1:
        x = cv2.resize(x, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA)
    h, w = x.shape[:2]
    return np.ascontiguousarray(x[:h // 4 * 4, :w // 4 * 4])


def change(session: ort.InferenceSession, x: np.ndarray) -> float:
    out = session.run(None, {"input": x.transpose(2, 0, 1)[None]})[0][0].transpose(1, 2, 0)
    return 255.0 * float(np.abs(out - x).mean())


def main(models: list[str]) -> None:
    frames = {f: [frame(p) for p in list_images(DATA_ROOT / f)[-8:]] for f in FOLDERS}
    for model in models:
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        cells = [f"{f} {np.mean([change(session, x) for x in xs]):.2f}" for f, xs in frames.items()]
        print(model, " | ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
