"""Images keep what the file had (issue 13, point 14): grey, alpha, 16 bits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream_derain.derain import DerainConfig, derain
from stream_derain.engine_spec import EngineSpec


def gradient(h: int, w: int, dtype=np.uint8) -> np.ndarray:
    top = 255 if dtype == np.uint8 else 65535
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx * 7 + yy * 3) % (top + 1)).astype(dtype)


@pytest.mark.parametrize("kind", ["grey", "grey16", "bgra", "bgr16", "bgra16"])
def test_image_layout_is_kept(use_tiny_model, tmp_path, kind):
    h, w = 40, 52
    dtype = np.uint16 if kind.endswith("16") else np.uint8
    g = gradient(h, w, dtype)
    img = {"grey": g, "grey16": g, "bgra": np.dstack([g, g[::-1], g[:, ::-1], g // 2 + 9]),
           "bgr16": np.dstack([g, g[::-1], g[:, ::-1]]),
           "bgra16": np.dstack([g, g[::-1], g[:, ::-1], g // 3 + 99])}[kind]
    src = tmp_path / f"{kind}.png"
    cv2.imwrite(str(src), img)
    out = tmp_path / f"{kind}.out.png"
    derain(DerainConfig(input=src, output=out, engine=EngineSpec(backend="onnxruntime")))
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert got.shape == img.shape and got.dtype == img.dtype
    if img.ndim == 3 and img.shape[2] == 4:
        assert np.array_equal(got[..., 3], img[..., 3])  # alpha carried over untouched
    if dtype == np.uint16:  # the change is applied at 16 bits: fine levels survive
        assert len(np.unique(got)) > 256
