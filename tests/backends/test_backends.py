"""Backends: same answers, padding of odd sizes, context-manager use, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from stream_derain.backends import choose_backend, create_backend
from stream_derain.backends.base import to_nchw, to_nhwc_uint8
from stream_derain.errors import BackendError, InputError


def frames(n=2, h=37, w=53, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_padding_round_trip():
    x = frames()
    padded = to_nchw(x, 4)
    assert padded.shape == (2, 3, 40, 56)
    assert np.array_equal(to_nhwc_uint8(padded, 37, 53), x)
    # by reflection (no constant stripes, which the student reads as streaks)
    assert np.array_equal(padded[:, :, 37:, :53], padded[:, :, 35:32:-1, :53])
    assert np.array_equal(padded[:, :, :37, 53:], padded[:, :, :37, 51:48:-1])


def test_frames_smaller_than_the_padding_are_edge_padded():
    x = frames(1, 3, 2)
    padded = to_nchw(x, 16)
    assert padded.shape == (1, 3, 16, 16)
    assert np.array_equal(padded[0, :, 15, 15], padded[0, :, 2, 1])
    assert np.array_equal(to_nhwc_uint8(padded, 3, 2), x)


@pytest.mark.torch
def test_onnxruntime_and_torch_agree(tiny_model):
    x = frames()
    with create_backend("onnxruntime", tiny_model) as ort_be, create_backend("torch", tiny_model) as torch_be:
        a, b = ort_be.infer(x), torch_be.infer(x)
    assert a.shape == x.shape
    assert np.abs(a.astype(int) - b).max() <= 1


def test_model_changes_the_frames(tiny_model):
    x = frames()
    with create_backend("onnxruntime", tiny_model) as be:
        y = be.infer(x)
    assert not np.array_equal(x, y)


def test_fp16_model_runs_on_onnxruntime(tiny_model):
    x = frames(1)
    with (create_backend("onnxruntime", tiny_model, "fp16") as be16,
          create_backend("onnxruntime", tiny_model) as be32):
        diff = np.abs(be16.infer(x).astype(int) - be32.infer(x))
    assert diff.mean() < 1.0


def test_wrong_shape_is_an_input_error(tiny_model):
    with create_backend("onnxruntime", tiny_model) as be:
        with pytest.raises(InputError, match="NxHxWx3 uint8"):
            be.infer(np.zeros((4, 4, 3), np.uint8))


def test_unknown_backend():
    with pytest.raises(BackendError, match="unknown backend"):
        create_backend("nope", None)


def test_auto_choice_explains_itself():
    name, why = choose_backend()
    assert name in ("openvino", "onnxruntime", "torch", "tensorrt") and why


def test_a_run_logs_one_line_naming_the_model_the_backend_and_why(tiny_model, caplog) -> None:
    """Issue 28: one INFO line says which model runs on which backend and why ``auto``
    chose it; the choice's details are at debug level."""
    import logging

    from stream_derain.backends import choose_backend, create_backend

    with caplog.at_level(logging.INFO, logger="stream_derain"):
        backend = create_backend("auto", tiny_model, "auto")
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]  # nothing before the run
    name, why = choose_backend()
    line = backend.summary()
    assert line.startswith(f"model {tiny_model.name} v{tiny_model.version} on {name}") and line.endswith(why)
    assert create_backend("onnxruntime", tiny_model).summary().endswith(")")  # asked for: no reason
