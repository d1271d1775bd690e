"""Issue 27: the shipped models' manifest entries say how each was made (``lineage``),
and the checkpoint and parent they name are the committed files, by content hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_derain.catalog import MANIFEST, read_manifest, sha256
from stream_derain.train.lineage import lineage_hash

REPO = Path(__file__).resolve().parents[1]
ENTRIES = read_manifest(REPO / "engines")["models"]


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_every_shipped_model_records_its_lineage_and_its_hash_holds(name):
    lineage = ENTRIES[name]["lineage"]
    assert lineage["lineage_hash"] == lineage_hash(lineage)
    assert lineage["train_cfg"] and lineage["configs"] and lineage["data"]["clean_dirs"]
    assert all((REPO / c["file"]).is_file() for c in lineage["configs"])
    assert all(sha256(REPO / c["file"]).startswith(c["sha256"]) for c in lineage["configs"]), \
        "a shipped recipe changed since the lineage was written (scripts/annotate_lineage.py)"


def onnx_weights(path: Path) -> dict[str, bytes]:
    """An ONNX file's initialisers named by the state dict (the network's weights), as raw
    bytes; the graph's own constants (shapes, the head's gain) are left out."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    inits = onnx.load(str(path)).graph.initializer
    return {t.name: numpy_helper.to_array(t).tobytes() for t in inits
            if t.name.endswith((".weight", ".bias"))}


def test_v4_names_its_checkpoint_and_grew_from_v3_by_hash():
    v4, v3 = ENTRIES["derain-student"]["lineage"], ENTRIES["derain-student-v3"]["lineage"]
    ckpt = REPO / v4["checkpoint"]["path"]
    assert ckpt == REPO / "checkpoints" / "v4" / "implicit_k5_6k.pt"
    assert sha256(ckpt).startswith(v4["checkpoint"]["sha256"])
    (parent,) = v4["parents"]
    kept = REPO / parent["found_at"]
    # the shipped v3 is a later export of the same weights (the packed graph of stop 36)
    assert onnx_weights(kept) == onnx_weights(REPO / "engines" / "derain-student-v3.onnx")
    assert sha256(kept).startswith(parent["sha256"]) and parent["lineage_hash"] == v3["lineage_hash"]
    beside = json.loads((kept.parent / MANIFEST).read_text())["models"]["derain-student-v3"]
    assert beside["lineage"]["lineage_hash"] == v3["lineage_hash"]



def test_v42_names_its_checkpoints_back_to_v3_by_hash_and_its_operating_point():
    v42, v3 = ENTRIES["derain-student-v42"], ENTRIES["derain-student-v3"]["lineage"]
    lineage = v42["lineage"]
    ckpt = REPO / lineage["checkpoint"]["path"]
    assert ckpt.parent == REPO / "checkpoints" / "v4" and ckpt.name.startswith("replace_k5_ctx")
    assert sha256(ckpt).startswith(lineage["checkpoint"]["sha256"])
    # the runs it continued (11k, 8k and 4k steps), each kept under checkpoints/, down to v3
    (parent,), chain = lineage["parents"], 0
    while parent.get("kind") == "checkpoint":
        kept = REPO / parent.get("found_at", parent["path"])
        assert parent["verified"] and kept.parent == ckpt.parent and sha256(kept).startswith(parent["sha256"])
        (parent,), chain = parent["parents"], chain + 1
    assert chain == 3 and parent["lineage_hash"] == v3["lineage_hash"] and parent["verified"]
    assert v42["stills"] == "derain-student-v3" and v42["temporal"]["head"] and v42["align"] == "flow"
    assert v42["temporal"]["rain_input"] and v42["dev_video"]["centred"]["real"]["rain_removed"] > 0.1
    assert lineage.get("adjustments", {}).get("gate_offset", 0.0) == v42.get("gate_offset", 0.0)
