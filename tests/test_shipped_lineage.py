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



def test_v43_names_its_head_back_to_v3_and_its_base_v4_by_hash_and_its_operating_point():
    """v4.3 is v4.2's head over v4's network: a run of no steps from two parents, the head
    (``init``: the 13k checkpoint, then the 11k, 8k and 4k ones, then v3) and the network
    under it (``base_init``: v4's checkpoint, then v3)."""
    v43, v3 = ENTRIES["derain-student-v43"], ENTRIES["derain-student-v3"]["lineage"]
    v4 = ENTRIES["derain-student"]["lineage"]
    lineage = v43["lineage"]
    ckpt = REPO / lineage["checkpoint"]["path"]
    assert ckpt.parent == REPO / "checkpoints" / "v4"
    assert sha256(ckpt).startswith(lineage["checkpoint"]["sha256"])
    head, base = lineage["parents"]
    assert head["role"] == "init" and base["role"] == "base_init"
    assert base["verified"] and REPO / base["path"] == REPO / v4["checkpoint"]["path"]
    assert sha256(REPO / base["path"]).startswith(v4["checkpoint"]["sha256"])
    parent, chain = head, 0
    while parent.get("kind") == "checkpoint":
        kept = REPO / parent.get("found_at", parent["path"])
        assert parent["verified"] and kept.parent == ckpt.parent and sha256(kept).startswith(parent["sha256"])
        (parent,), chain = parent["parents"], chain + 1
    assert chain == 4 and parent["lineage_hash"] == v3["lineage_hash"] and parent["verified"]
    assert v43["stills"] == "derain-student-v3" and v43["temporal"]["head"]
    # trained on windows aligned by "flow", run with "flow-chain" (v4.3.1): the lineage says both
    assert lineage["train_cfg"]["align"] == "flow" and v43["align"] == "flow-chain"
    assert lineage["adjustments"]["align"] == "flow-chain"
    assert v43["temporal"]["base_evidence"] and v43["temporal"]["rain_input"]
    assert v43["dev_video"]["centred"]["real"]["rain_removed"] > 0.1
    for key, as_trained in (("gate_offset", 0.0), ("gate_scale", 1.0)):
        assert lineage.get("adjustments", {}).get(key, as_trained) == v43.get(key, as_trained)
