"""Tiny multi-frame ONNX models built with ``onnx.helper`` (no training), designed so a
test can tell which frames of the window a model read:

- ``slot{j}-k{K}``: output = the frame in slot j (channels 3j..3j+2) of a K-frame window;
- ``max-k{K}``: output = the per-pixel maximum over the K slots (a bright marker in any
  frame the window read shows in the output);
- ``slot{j}-k{K}-flow``: ``slot{j}-k{K}`` whose manifest entry says ``"align": "flow"``
  (the neighbours warped onto the target before the model: its output is the frame of
  slot j as aligned); ``slot{j}-k{K}-flow-medium`` and ``-flow-chain`` the same with
  ``"align": "flow-medium"`` and ``"flow-chain"``.

:func:`write_models` writes them with a ``manifest.json`` (``frames`` K, the default
offsets); test files wrap it in their own fixture (``tmp_path_factory``).
"""

from __future__ import annotations

import json
from pathlib import Path

from stream_derain.catalog import default_offsets

ALIGNED = ("flow", "flow-medium", "flow-chain")  # the manifest's flow align modes


def _graph(frames: int, body: str, slot: int = 0):  # noqa: ANN202 - onnx.ModelProto
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3 * frames, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])
    inits, nodes, parts = [], [], []
    for j in range(frames) if body == "max" else [slot]:
        for name, value in (("starts", 3 * j), ("ends", 3 * j + 3)):
            inits.append(numpy_helper.from_array(np.array([value], np.int64), f"{name}{j}"))
        nodes.append(helper.make_node("Slice", ["input", f"starts{j}", f"ends{j}", "axes"], [f"s{j}"]))
        parts.append(f"s{j}")
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
    nodes.append(helper.make_node("Max" if len(parts) > 1 else "Identity", parts, ["output"]))
    graph = helper.make_graph(nodes, f"{body}{slot}-k{frames}", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def write_models(folder: Path, frames: tuple[int, ...] = (3, 5)) -> Path:
    """``slot{j}-k{K}`` and ``slot{j}-k{K}-flow`` for every slot and ``max-k{K}``, for
    each K, into ``folder`` (with a manifest); returns ``folder``."""
    import onnx

    models = {}
    for k in frames:
        specs = [(f"slot{j}-k{k}", _graph(k, "slot", j)) for j in range(k)]
        specs.append((f"max-k{k}", _graph(k, "max")))
        specs += [(f"slot{j}-k{k}-{mode}", _graph(k, "slot", j)) for j in range(k) for mode in ALIGNED]
        for name, proto in specs:
            onnx.save(proto, str(folder / f"{name}.onnx"))
            offsets = {mode: list(offs) for mode, offs in default_offsets(k).items()}
            models[name] = {"version": "test", "multiple": 4, "frames": k, "offsets": offsets,
                            "files": {"fp32": {"file": f"{name}.onnx"}}}
            models[name]["align"] = next((m for m in ALIGNED if name.endswith(f"-{m}")), "none")
    (folder / "manifest.json").write_text(json.dumps({"default": f"max-k{frames[-1]}", "models": models}))
    return folder
