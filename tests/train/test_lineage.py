"""Issue 27: an exported model says how it was made (``lineage``), export never touches
engines/ by default, and shipping is an explicit step that will not replace a model
unless told."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from stream_derain.catalog import models_dir  # noqa: E402
from stream_derain.cli import app  # noqa: E402
from stream_derain.errors import ModelError  # noqa: E402
from stream_derain.model.ship import ship  # noqa: E402
from stream_derain.train.config import load_config  # noqa: E402
from stream_derain.train.lineage import build_lineage, lineage_hash  # noqa: E402
from stream_derain.train.supervised import train_supervised  # noqa: E402

SMALL = {"channels": 8, "se_blocks": 1, "ca_blocks": 1}


def folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A parent run and a child run started from it (3 steps each), on 4 tiny images."""
    root = tmp_path_factory.mktemp("lineage")
    clean = root / "clean"
    clean.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(clean / f"{i}.png"), rng.uniform(0, 255, (48, 48, 3)).astype(np.uint8))
    base = {"clean_dirs": [str(clean)], "exclude_like": [], "steps": 3, "batch_size": 2, "crop": 32,
            "warmup": 1, "log_every": 10, "ckpt_every": 10, "student": SMALL}
    (root / "parent.json").write_text(json.dumps({**base, "out_dir": str(root / "parent")}))
    (root / "child.json").write_text(json.dumps({"base": "parent.json", "out_dir": str(root / "child"),
                                                 "init": str(root / "parent" / "last.pt"), "seed": 1}))
    parent = train_supervised(load_config(root / "parent.json"))
    child = train_supervised(load_config(root / "child.json"))
    return {"root": root, "parent": parent, "child": child, "recipe": root / "child.json", "clean": clean}


def test_lineage_walks_parents_by_hash_and_names_the_data(runs):
    lin = build_lineage(runs["child"], recipe=runs["recipe"], dev_scores={"sirr20": {"output_psnr_y": 1.0}})
    ckpt = torch.load(runs["child"], weights_only=False)
    assert lin["train_cfg"] == ckpt["train_cfg"]
    assert lin["checkpoint"]["step"] == 3 and len(lin["checkpoint"]["sha256"]) == 16
    (parent,) = lin["parents"]
    assert parent["role"] == "init" and parent["kind"] == "checkpoint" and parent["verified"] is True
    assert parent["sha256"] == hashlib.sha256(runs["parent"].read_bytes()).hexdigest()[:16]
    assert parent["parents"] == [] and parent["train_cfg"]["seed"] == 0
    assert [Path(c["file"]).name for c in lin["configs"]] == ["parent.json", "child.json"]
    assert lin["configs"][1]["keys"]["seed"] == 1  # each file's own keys
    assert lin["data"]["clean_dirs"] == [str(runs["clean"])]
    assert lin["dev_scores"] == {"sirr20": {"output_psnr_y": 1.0}}


def test_lineage_hash_is_stable_and_ignores_the_scores(runs):
    a = build_lineage(runs["child"])
    b = build_lineage(runs["child"], dev_scores={"x": {"y": 2.0}})
    assert a["lineage_hash"] == b["lineage_hash"] == lineage_hash(a)
    assert build_lineage(runs["parent"])["lineage_hash"] != a["lineage_hash"]


def test_a_parent_replaced_since_the_run_started_is_not_taken_for_it(runs, tmp_path):
    child = tmp_path / "child.pt"
    shutil.copy(runs["child"], child)
    moved = tmp_path / "parent.pt"
    shutil.copy(runs["parent"], moved)
    ckpt = torch.load(child, weights_only=False)
    recorded = ckpt["train_cfg"]["init"]
    ckpt["extra"]["parents"] = {recorded: "0" * 16}  # the run read other content there
    torch.save(ckpt, child)
    (parent,) = build_lineage(child)["parents"]
    assert parent["kind"] == "replaced" and parent["sha256"] == "0" * 16
    ckpt["extra"]["parents"] = {}
    torch.save(ckpt, child)
    (parent,) = build_lineage(child, aliases={recorded: str(moved)})["parents"]
    assert parent["found_at"] == str(moved) and parent["kind"] == "checkpoint" and parent["verified"] is False


def test_export_goes_under_runs_and_leaves_engines_byte_identical(runs, tmp_path, monkeypatch):
    shipped = models_dir()
    before = folder_hash(shipped)
    work = tmp_path / "checkout"
    shutil.copytree(shipped, work / "engines")
    local = folder_hash(work / "engines")
    monkeypatch.chdir(work)
    result = CliRunner().invoke(app, ["export", str(runs["child"]), "--name", "exp", "--version", "9",
                                      "--recipe", str(runs["recipe"])])
    assert result.exit_code == 0, result.output
    out = work / "runs" / "export" / "exp"
    entry = json.loads((out / "manifest.json").read_text())["models"]["exp"]
    assert entry["lineage"]["lineage_hash"] in result.output and (out / "exp.onnx").is_file()
    assert entry["lineage"]["train_cfg"] and "config" not in entry["training"]  # the config once
    assert folder_hash(work / "engines") == local and folder_hash(shipped) == before


def test_a_gate_offset_or_scale_is_part_of_the_lineage_and_needs_a_replacement_head(runs, tmp_path):
    plain = build_lineage(runs["child"])
    shifted = build_lineage(runs["child"], adjustments={"gate_offset": 0.5})
    assert shifted["adjustments"] == {"gate_offset": 0.5} and "adjustments" not in plain
    assert shifted["lineage_hash"] != plain["lineage_hash"]
    result = CliRunner().invoke(app, ["export", str(runs["child"]), "--out", str(tmp_path / "x"),
                                      "--gate-offset", "0.5"])
    assert result.exit_code == 1 and "no replacement head" in result.output, result.output
    result = CliRunner().invoke(app, ["export", str(runs["child"]), "--out", str(tmp_path / "x"),
                                      "--gate-scale", "2"])
    assert result.exit_code == 1 and "no replacement head" in result.output, result.output
    assert not (tmp_path / "x").exists()


def test_export_refuses_the_shipped_models_folder(runs, tmp_path, monkeypatch):
    engines = tmp_path / "engines"
    engines.mkdir()
    (engines / "manifest.json").write_text(json.dumps({"default": "x", "models": {}}))
    before = folder_hash(engines)
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(engines))
    result = CliRunner().invoke(app, ["export", str(runs["child"]), "--out", str(engines)])
    assert result.exit_code == 1 and "stream-derain ship" in result.output, result.output
    assert folder_hash(engines) == before


def export_to(ckpt: Path, out: Path, version: str) -> Path:
    result = CliRunner().invoke(app, ["export", str(ckpt), "--out", str(out), "--name", "m",
                                      "--version", version])
    assert result.exit_code == 0, result.output
    return out


def test_ship_refuses_to_replace_without_replace_and_says_what_it_replaces(runs, tmp_path, monkeypatch):
    first = export_to(runs["parent"], tmp_path / "a", "1")
    second = export_to(runs["child"], tmp_path / "b", "2")
    engines = tmp_path / "engines"
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(engines))
    done = ship(first, engines)
    assert done.replaced_version is None and (engines / "m.onnx").is_file()
    old_hash = done.lineage_hash
    before = folder_hash(engines)
    refused = CliRunner().invoke(app, ["ship", str(second), "--to", str(engines)])
    assert refused.exit_code == 1 and refused.output.startswith("Error: ")
    assert "already ships m v1" in refused.output and old_hash in refused.output
    assert "--replace" in refused.output and folder_hash(engines) == before
    ok = CliRunner().invoke(app, ["ship", str(second), "--replace"])  # --to: the folder the package reads
    assert ok.exit_code == 0, ok.output
    new = json.loads((second / "manifest.json").read_text())["models"]["m"]["lineage"]["lineage_hash"]
    assert f"shipped m v2 (lineage {new})" in ok.output and f"replacing v1 (lineage {old_hash})" in ok.output
    assert json.loads((engines / "manifest.json").read_text())["models"]["m"]["version"] == "2"


def test_ship_refuses_a_model_without_lineage(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="no lineage"):
        ship(tiny_model_dir, tmp_path / "engines")
    assert not (tmp_path / "engines").exists()


def test_a_model_naming_a_stills_model_ships_only_beside_it(runs, tmp_path):
    single = export_to(runs["parent"], tmp_path / "single", "1")
    result = CliRunner().invoke(app, ["export", str(runs["child"]), "--out", str(tmp_path / "multi"),
                                      "--name", "video", "--stills", "m"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "multi" / "manifest.json").read_text())["models"]["video"]["stills"] == "m"
    engines = tmp_path / "engines"
    with pytest.raises(ModelError, match="runs still images on m"):
        ship(tmp_path / "multi", engines)
    assert not (engines / "video.onnx").exists()
    ship(single, engines)
    assert ship(tmp_path / "multi", engines).name == "video"


def test_export_may_run_a_flow_model_with_another_flow_and_records_it(tmp_path):
    """``--align``: a model trained on flow-aligned windows exported to run another flow
    mode says so in its entry and lineage; a model trained without alignment, or an
    unknown mode, is refused before anything is written."""
    from stream_derain.model.temporal import build_temporal, temporal_config_dict
    from stream_derain.train.checkpoint import save_checkpoint
    from stream_derain.train.temporal import ARCH

    model = build_temporal({"channels": 8, "se_blocks": 1, "ca_blocks": 1}, 3, head=8, floor=3.0)
    paths = {}
    for align in ("flow", "none"):
        paths[align] = tmp_path / f"{align}.pt"
        save_checkpoint(paths[align], arch=ARCH, model_cfg=temporal_config_dict(model), model=model,
                        optimizer=None, step=1, train_cfg={"align": align}, data_rng=np.random.default_rng(0))

    def export(ckpt: Path, out: str, *extra: str):
        args = ["export", str(ckpt), "--out", str(tmp_path / out), "--name", "m", *extra]
        return CliRunner().invoke(app, args)

    entries = {}
    for out, extra in (("plain", ()), ("chain", ("--align", "flow-chain"))):
        result = export(paths["flow"], out, *extra)
        assert result.exit_code == 0, result.output
        entries[out] = json.loads((tmp_path / out / "manifest.json").read_text())["models"]["m"]
    assert entries["plain"]["align"] == "flow" and "adjustments" not in entries["plain"]["lineage"]
    assert entries["chain"]["align"] == "flow-chain"
    assert entries["chain"]["lineage"]["adjustments"] == {"align": "flow-chain"}
    assert entries["chain"]["lineage"]["lineage_hash"] != entries["plain"]["lineage"]["lineage_hash"]
    for ckpt, mode, says in ((paths["none"], "flow-chain", "not trained on aligned windows"),
                             (paths["flow"], "optical", "--align must be one of")):
        result = export(ckpt, "refused", "--align", mode)
        assert result.exit_code == 1 and says in result.output, result.output
        assert not (tmp_path / "refused").exists()
