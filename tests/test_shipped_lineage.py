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


def test_v4_names_its_checkpoint_and_grew_from_v3_by_hash():
    v4, v3 = ENTRIES["derain-student"]["lineage"], ENTRIES["derain-student-v3"]["lineage"]
    ckpt = REPO / v4["checkpoint"]["path"]
    assert ckpt == REPO / "checkpoints" / "v4" / "implicit_k5_6k.pt"
    assert sha256(ckpt).startswith(v4["checkpoint"]["sha256"])
    (parent,) = v4["parents"]
    kept = REPO / parent["found_at"]
    assert sha256(kept) == sha256(REPO / "engines" / "derain-student-v3.onnx")
    assert sha256(kept).startswith(parent["sha256"]) and parent["lineage_hash"] == v3["lineage_hash"]
    beside = json.loads((kept.parent / MANIFEST).read_text())["models"]["derain-student-v3"]
    assert beside["lineage"]["lineage_hash"] == v3["lineage_hash"]



def test_v41_names_its_checkpoints_back_to_v3_by_hash_and_its_operating_point():
    v41, v3 = ENTRIES["derain-student-v41"], ENTRIES["derain-student-v3"]["lineage"]
    lineage = v41["lineage"]
    ckpt = REPO / lineage["checkpoint"]["path"]
    assert ckpt.parent == REPO / "checkpoints" / "v4" and ckpt.name.startswith("replace_k5_ctx")
    assert sha256(ckpt).startswith(lineage["checkpoint"]["sha256"])
    (first,) = lineage["parents"]  # the 4,000-step run it continued, kept under checkpoints/
    kept = REPO / first.get("found_at", first["path"])
    assert first["verified"] and kept.parent == ckpt.parent and sha256(kept).startswith(first["sha256"])
    (grown_from,) = first["parents"]
    assert grown_from["lineage_hash"] == v3["lineage_hash"] and grown_from["verified"]
    assert v41["stills"] == "derain-student-v3" and v41["temporal"]["head"] and v41["align"] == "flow"
    assert lineage.get("adjustments", {}).get("gate_offset", 0.0) == v41.get("gate_offset", 0.0)
