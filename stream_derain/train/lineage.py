"""How a model was made: its checkpoint, recipe, parents and data, as one record.

``stream-derain export`` writes :func:`build_lineage`'s record into the model's
manifest entry as ``lineage``, so a shipped file says what produced it even after the
run folders are gone:

- ``checkpoint``: the exported checkpoint (path, short sha256, arch, step, seconds),
  or None when only the weights survive (v3);
- ``train_cfg``: its training config as the checkpoint stored it;
- ``configs``: the recipe files it was trained through, root first, each with its own
  keys and hash (:func:`~.config.config_chain`: in ``configs/shipped/`` each file's
  ``base`` is the stage before it);
- ``parents``: what it started from (``init``; a distilled student's teachers), each
  by content hash, walked recursively through checkpoints, and through an exported
  ONNX file's manifest entry when that records a lineage of its own;
- ``data``: the data folders every stage of the walk trained on, and those it held out;
- ``dev_scores``: the scores the entry records, by their manifest key (``dev_scores``,
  ``dev_video`` ...);
- ``lineage_hash``: a hash over all of it but the scores, so scoring a model again
  does not make it another model.

A checkpoint written since this module exists records the hash of each parent file
when its run began (``extra.parents``): a parent file replaced since (a model
re-exported over the one a run started from) is then reported as ``replaced``, not
mistaken for the parent. Older checkpoints give unverified paths; ``aliases`` says
where a file they name lives now.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..catalog import MANIFEST, read_manifest, sha256
from ..devsets import DATA_ROOT
from .config import config_chain

log = logging.getLogger(__name__)
SHORT = 16  # hex digits of a content hash kept in the record
# data keys of the stages' configs; a key counts only where the stage used it
DATA_KEYS = {
    "clean_dirs": lambda cfg: True,
    "video_clips": lambda cfg: True,
    "rain_layers": lambda cfg: True,
    "rainy_dirs": lambda cfg: True,
    "real_dirs": lambda cfg: bool(cfg.get("teacher")),
    "teacher_sources": lambda cfg: float(cfg.get("teacher_share") or 0) > 0,
}
HELD_OUT_KEYS = ("exclude_like", "exclude_names")
MAX_DEPTH = 32


def short_hash(path: Path) -> str:
    return sha256(path)[:SHORT]


def parent_paths(arch: str, train_cfg: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(role, path) of the files a stage started from: ``init`` (and ``base_init``, the
    network under a replacement head), a teacher whose outputs it learnt (``teacher``),
    a head whose logits a head learnt (``head_teacher``), and a distilled student's two
    teachers (the distillation stage is the one with a ``reconstruction`` key)."""
    distilled = ["recognition", "reconstruction"] if "reconstruction" in train_cfg else []
    roles = ["init", "base_init", "teacher", "head_teacher", *distilled]
    return [(role, str(train_cfg[role])) for role in roles if train_cfg.get(role)]


def parent_hashes(arch: str, train_cfg: Mapping[str, Any]) -> dict[str, str]:
    """Short hashes of the parent files that exist now: what a run records when it starts."""
    return {path: short_hash(Path(path)) for _, path in parent_paths(arch, train_cfg) if Path(path).is_file()}


def _onnx_parent(node: dict[str, Any], path: Path) -> dict[str, Any]:
    """An exported ONNX parent: the lineage of its manifest entry, when one lists it."""
    node["kind"] = "onnx"
    if not (path.parent / MANIFEST).is_file():
        return node
    try:
        entries = read_manifest(path.parent).get("models", {})
    except Exception:  # noqa: BLE001 - an unreadable manifest: the hash still names the file
        return node
    for name, entry in entries.items():
        files = [f.get("file") for f in (entry.get("files") or {}).values() if isinstance(f, dict)]
        if path.name in files and isinstance(entry.get("lineage"), dict):
            made = {k: v for k, v in entry["lineage"].items() if k != "dev_scores"}  # the entry's own
            node.update(model=name, version=entry.get("version"), lineage_hash=made.get("lineage_hash"),
                        lineage=made)
    return node


def _parent(role: str, recorded: str, expected: str | None, aliases: Mapping[str, str],
            depth: int) -> dict[str, Any]:
    path = Path(aliases.get(recorded, recorded))
    node: dict[str, Any] = {"role": role, "path": recorded}
    if str(path) != recorded:
        node["found_at"] = str(path)
    if not path.is_file():
        return {**node, "kind": "missing", "sha256": expected}
    digest = short_hash(path)
    if expected and expected != digest:  # the file was replaced after the run read it
        return {**node, "kind": "replaced", "sha256": expected, "now": digest}
    node.update(sha256=digest, verified=expected == digest)
    if path.suffix == ".onnx":
        return _onnx_parent(node, path)
    return _checkpoint_node(node, path, aliases, depth + 1)


def _checkpoint_node(node: dict[str, Any], path: Path, aliases: Mapping[str, str],
                     depth: int) -> dict[str, Any]:
    from .checkpoint import read_checkpoint

    if depth > MAX_DEPTH:
        return {**node, "kind": "truncated"}
    ckpt = read_checkpoint(path)
    cfg, extra = ckpt.get("train_cfg") or {}, ckpt.get("extra") or {}
    recorded = extra.get("parents") or {}
    node.update(kind="checkpoint", arch=ckpt["arch"], step=ckpt.get("step"),
                train_seconds=extra.get("train_seconds"), train_cfg=cfg)
    node["parents"] = [_parent(role, p, recorded.get(p), aliases, depth)
                       for role, p in parent_paths(ckpt["arch"], cfg)]
    return node


def _data_path(p: str) -> str:
    """A data folder relative to the data root when under it (the record then holds on
    any machine); as given otherwise."""
    try:
        return str(Path(p).relative_to(DATA_ROOT))
    except ValueError:
        return p


def _configs_of(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every training config in a walk: its own and its parents' (and theirs), and the
    data of ONNX parents' recorded lineages."""
    found = [node["train_cfg"]] if node.get("train_cfg") else []
    for parent in node.get("parents", []):
        found += _configs_of(parent)
        if isinstance(parent.get("lineage"), dict):
            found.append({f"_seen_{k}": v for k, v in parent["lineage"].get("data", {}).items()})
    return found


def data_seen(configs: list[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The data folders (by key) that the configs trained on, and ``held_out``."""
    out: dict[str, list[str]] = {}

    def add(key: str, values: Any) -> None:
        items = list(values.values()) if isinstance(values, dict) else [values] if isinstance(values, str) \
            else values
        bucket = out.setdefault(key, [])
        bucket += [_data_path(str(v)) for v in items or [] if v and _data_path(str(v)) not in bucket]

    for cfg in configs:
        for key, used in DATA_KEYS.items():
            if key in cfg and used(cfg):
                add(key, cfg[key])
        for key in HELD_OUT_KEYS:
            add("held_out", cfg.get(key) or [])
        for key, values in cfg.items():  # an ONNX parent's recorded data, already relative
            if key.startswith("_seen_"):
                add(key[len("_seen_"):], values)
    return {k: v for k, v in out.items() if v}


def lineage_hash(lineage: Mapping[str, Any]) -> str:
    """sha256 (short) of the canonical JSON of the record without its scores and hash."""
    body = {k: v for k, v in lineage.items() if k not in ("dev_scores", "lineage_hash")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:SHORT]


def recipe_configs(recipe: Path | None) -> list[dict[str, Any]]:
    """The recipe's files, root first: path, short hash and own keys (``base`` aside)."""
    if recipe is None:
        return []
    chain = config_chain(recipe)
    return [{"file": os.path.normpath(f), "sha256": short_hash(f), "keys": keys} for f, keys in chain]


def build_lineage(checkpoint: Path | None = None, *, recipe: Path | None = None,
                  train_cfg: Mapping[str, Any] | None = None, dev_scores: Mapping[str, Any] | None = None,
                  aliases: Mapping[str, str] | None = None,
                  stage_cfgs: Sequence[Mapping[str, Any]] = (),
                  adjustments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``lineage`` record (module docstring) of a checkpoint, or of weights whose
    checkpoint is gone (``checkpoint`` None: ``train_cfg`` and ``recipe`` say how they
    were trained, the recipe's ``init`` is their parent). ``stage_cfgs``: the full
    configs of earlier stages known only by their recipe (their data counts too).
    ``adjustments``: what export changed in the trained weights (e.g. ``gate_offset``);
    part of the hash, as the model differs from the checkpoint's."""
    aliases = dict(aliases or {})
    if checkpoint is not None:
        top = {"path": str(checkpoint), "sha256": short_hash(checkpoint)}
        node = _checkpoint_node(top, checkpoint, aliases, 0)
        head = {k: node.get(k) for k in ("path", "sha256", "arch", "step", "train_seconds")}
        train_cfg, parents = node["train_cfg"], node["parents"]
    else:
        head, train_cfg = None, dict(train_cfg or {})
        parents = [_parent(role, p, None, aliases, 0) for role, p in parent_paths("", train_cfg)]
    lineage: dict[str, Any] = {"checkpoint": head, "train_cfg": dict(train_cfg),
                               "configs": recipe_configs(recipe), "parents": parents}
    lineage["data"] = data_seen([*stage_cfgs, *_configs_of({"train_cfg": train_cfg, "parents": parents})])
    if adjustments:
        lineage["adjustments"] = dict(adjustments)
    lineage["dev_scores"] = dict(dev_scores or {})
    lineage["lineage_hash"] = lineage_hash(lineage)
    log.info("lineage %s: %d parent(s), %d recipe file(s)", lineage["lineage_hash"], len(parents),
             len(lineage["configs"]))
    return lineage
