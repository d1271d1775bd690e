"""Write the lineage of the shipped models into their manifests (issue 27), once.

The shipped models predate ``lineage`` in ``stream-derain export``; re-exporting
would rewrite their ONNX files, so this adds only the ``lineage`` key to their
entries and leaves every ``engines/*.onnx`` byte-identical:

- derain-student-v3 (v3): no checkpoint survives, only its weights; the lineage
  comes from its recipe chain, ``configs/shipped/v3.json`` (baseline -> v2 -> v3). The
  weights are also kept as ``checkpoints/v3/derain-student-v3.onnx`` (what experiments
  start from), with a manifest entry carrying the same lineage;
- derain-student (v4): from ``checkpoints/v4/implicit_k5_6k.pt``, whose config names
  its parent as ``engines/derain-student.onnx``: v3, shipped under that name until v4
  replaced it (the same sha256 as ``checkpoints/v3/derain-student-v3.onnx``; checked
  against git when git can see commit 00fcfee).

Usage: ``python scripts/annotate_lineage.py`` from the checkout (needs torch).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from stream_derain.catalog import MANIFEST, sha256
from stream_derain.train.config import config_chain, load_config
from stream_derain.train.lineage import build_lineage

ENGINES, V3_DIR = Path("engines"), Path("checkpoints/v3")
V3_RECIPE, V4_RECIPE = Path("configs/shipped/v3.json"), Path("configs/shipped/v4.json")
V4_CKPT = Path("checkpoints/v4/implicit_k5_6k.pt")
V4_PARENT = "engines/derain-student.onnx"  # as v4's checkpoint recorded it
V3_FILE = V3_DIR / "derain-student-v3.onnx"
SCORE_KEYS = ("dev_scores", "dev_scores_frame_repeated", "dev_video")


def scores(entry: dict) -> dict:
    return {k: entry[k] for k in SCORE_KEYS if k in entry}


def write(path: Path, manifest: dict) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def v3_lineage(entry: dict) -> dict:
    stages = [asdict(load_config(f)) for f, _ in config_chain(V3_RECIPE)[:-1]]
    return build_lineage(None, recipe=V3_RECIPE, train_cfg=asdict(load_config(V3_RECIPE)),
                         stage_cfgs=stages, dev_scores=scores(entry))


def check_v4_parent() -> None:
    """v4's recorded parent held v3's bytes when v4 was trained (git, where it can tell)."""
    old = subprocess.run(["git", "show", f"00fcfee^:{V4_PARENT}"], capture_output=True)
    if old.returncode == 0:
        import hashlib

        if hashlib.sha256(old.stdout).hexdigest() != sha256(V3_FILE):
            sys.exit(f"{V4_PARENT} before v4 shipped is not {V3_FILE}")
        print(f"checked: {V4_PARENT} before 00fcfee is {V3_FILE}")


def main() -> None:
    before = {p: sha256(p) for p in ENGINES.glob("*.onnx")}
    manifest = json.loads((ENGINES / MANIFEST).read_text())
    v3 = manifest["models"]["derain-student-v3"]
    v3["lineage"] = v3_lineage(v3)
    kept = {k: v for k, v in v3.items() if k != "files"}
    kept["files"] = {"fp32": v3["files"]["fp32"]}  # the FP32 file only
    write(V3_DIR / MANIFEST, {"default": "derain-student-v3", "models": {"derain-student-v3": kept}})
    check_v4_parent()
    v4 = manifest["models"]["derain-student"]
    v4["lineage"] = build_lineage(V4_CKPT, recipe=V4_RECIPE, dev_scores=scores(v4),
                                  aliases={V4_PARENT: str(V3_FILE)})
    write(ENGINES / MANIFEST, manifest)
    assert before == {p: sha256(p) for p in ENGINES.glob("*.onnx")}, "an ONNX file changed"
    for name in ("derain-student-v3", "derain-student"):
        print(f"{name}: lineage {manifest['models'][name]['lineage']['lineage_hash']}")


if __name__ == "__main__":
    main()
