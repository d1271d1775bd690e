"""A tiny convolutional derainer built with ``onnx.helper`` (no training, no torch) for the
INT8 tests: K frames in (N x 3K x H x W), out
``clip(target - relu(head(relu(conv(relu(conv(x)))))))``: the head's bias is a threshold,
so the "rain layer" is zero on smooth rain-free frames and bright on streaks, as a
trained model's is. :func:`write_model` writes it with a manifest; :func:`windows` and
:func:`dev_sets` make calibration windows and dev sets from smooth random frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stream_derain.catalog import default_offsets, sha256


def _model(frames: int, width: int = 8, seed: int = 0, head: float = 0.02):  # noqa: ANN202 - onnx.ModelProto
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    c = 3 * frames
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", c, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])
    shapes = {"w1": (width, c, 3, 3), "w2": (width, width, 3, 3), "w3": (3, width, 3, 3)}
    scale = {"w1": 0.25, "w2": 0.15, "w3": head}  # head: the rain layer's strength
    weights = {k: rng.standard_normal(s) * scale[k] for k, s in shapes.items()}
    weights["w3"] -= weights["w3"].mean(axis=(1, 2, 3), keepdims=True)  # no rain on flat, rain-free input
    inits = [numpy_helper.from_array(w.astype(np.float32), k) for k, w in weights.items()]
    inits += [numpy_helper.from_array(np.full(s[0], 0.01 if k != "w3" else -0.06, np.float32), f"b{k[1]}")
              for k, s in shapes.items()]  # the head's bias: a threshold, no rain on rain-free frames
    inits += [numpy_helper.from_array(np.array(v, np.int64), n)
              for n, v in (("starts", [0]), ("ends", [3]), ("axes", [1]))]
    inits += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", 0.0), ("hi", 1.0))]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="/conv1/Conv", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="/relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="/conv2/Conv", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], name="/relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["head"], name="/head/Conv", **conv),
        helper.make_node("Relu", ["head"], ["rain"], name="/rain"),
        helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["target"], name="/target"),
        helper.make_node("Sub", ["target", "rain"], ["derained"], name="/Sub"),
        helper.make_node("Clip", ["derained", "lo", "hi"], ["output"], name="/Clip"),
    ]
    graph = helper.make_graph(nodes, f"conv-k{frames}", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def write_model(folder: Path, name: str = "qtiny", frames: int = 3, head: float = 0.02) -> Path:
    """``name.onnx`` (a ``frames``-frame model) and a manifest naming it the default; returns ``folder``."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    onnx.save(_model(frames, head=head), str(path))
    entry = {"version": "test", "multiple": 4, "frames": frames,
             "offsets": {m: list(o) for m, o in default_offsets(frames).items()},
             "files": {"fp32": {"file": path.name, "sha256": sha256(path)}}}
    (folder / "manifest.json").write_text(json.dumps({"default": name, "models": {name: entry}}))
    return folder


def frames(n: int, size: tuple[int, int] = (32, 48), seed: int = 0) -> list[np.ndarray]:
    """``n`` smooth HxWx3 uint8 frames of a slowly moving scene."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 6, 3)
    return [np.clip(127 + 100 * np.sin((xx / 7 + yy / 11)[..., None] + phase + 0.2 * i)
                    + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8) for i in range(n)]


def windows(k: int, n: int = 16):  # noqa: ANN201 - list[Window]
    from stream_derain.quantize import window_at

    clip = frames(n + 4, seed=1)
    return [window_at(clip, i, default_offsets(k)["centred"]) for i in range(n)]


def dev_sets(k: int):  # noqa: ANN201 - list[DevSet]
    """A rainy set (bright streaks over frames, the frames as ground truth) and a rain-free one."""
    from stream_derain.quantize import DevSet, window_at

    clean = frames(6, seed=7)
    rainy = [f.copy() for f in clean]
    for i, f in enumerate(rainy):
        f[(np.arange(32) * 2 + i) % 32, (np.arange(32) + 3 * i) % 48] = 250
    offs = default_offsets(k)["centred"]
    return [DevSet("rain", lambda: [(window_at(rainy, i, offs), clean[i]) for i in range(6)]),
            DevSet("dry_clean", lambda: [(window_at(clean, i, offs), clean[i]) for i in range(6)],
                   rain_free=True)]
