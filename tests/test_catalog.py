"""The one ``resolve_model``: manifest names, ONNX paths and the errors in between."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_derain.catalog import resolve_model
from stream_derain.errors import ModelError


def test_resolve_model_by_name_and_default(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(tiny_model_dir))
    assert resolve_model("tiny").name == "tiny"
    assert resolve_model(None).name  # the manifest's default model


def test_resolve_model_from_onnx_path(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(tiny_model_dir))
    onnx = next(p for p in tiny_model_dir.glob("*.onnx") if "fp16" not in p.stem)
    as_spec = resolve_model(str(onnx))
    as_onnx = resolve_model(None, onnx, multiple=8)
    assert as_spec.version == as_onnx.version == "custom"
    assert as_spec.path("fp32") == as_onnx.path("fp32") == onnx
    assert (as_spec.multiple, as_onnx.multiple) == (4, 8)


def test_resolve_model_errors(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(tiny_model_dir))
    with pytest.raises(ModelError, match="not both"):
        resolve_model("tiny", tiny_model_dir / "x.onnx")
    with pytest.raises(ModelError, match="not found"):
        resolve_model("missing.onnx")
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model("no-such-model")


def test_an_exported_onnx_file_takes_its_multiple_from_the_manifest_beside_it(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not read here")
    assert resolve_model(onnx).multiple == 4  # no manifest: the student's usual 4
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"default": "m", "models": {"m": {"multiple": 16, "files": {"fp32": {"file": "m.onnx"}}}}}))
    assert resolve_model(onnx).multiple == 16
    assert resolve_model(None, onnx, multiple=8).multiple == 8  # asked for: as asked
    (tmp_path / "other.onnx").write_bytes(b"")
    assert resolve_model(tmp_path / "other.onnx").multiple == 4  # not listed there


def test_a_multi_frame_model_reads_its_window_from_the_manifest(tmp_path: Path) -> None:
    from stream_derain.catalog import load_model_info

    entry = {"version": "4", "multiple": 4, "files": {"fp32": {"file": "m.onnx"}}}
    offsets = {"centred": [0, -1, 1, -2, 2], "causal": [0, -1, -2, -3, -4]}
    models = {"single": entry, "k5": {**entry, "frames": 5, "offsets": offsets}, "k3": {**entry, "frames": 3},
              "bad": {**entry, "frames": 3, "offsets": {"causal": [0, 1, -1]}},
              "short": {**entry, "frames": 3, "offsets": {"centred": [0, -1]}}}
    (tmp_path / "manifest.json").write_text(json.dumps({"default": "single", "models": models}))
    single = load_model_info("single", tmp_path)
    assert (single.frames, single.channels, single.window("centred"), single.window("causal")) == \
        (1, 3, (0,), (0,))
    k5 = load_model_info("k5", tmp_path)
    assert (k5.frames, k5.channels, k5.window("centred"), k5.window("causal")) == \
        (5, 15, (0, -1, 1, -2, 2), (0, -1, -2, -3, -4))
    k3 = load_model_info("k3", tmp_path)  # no offsets listed: the defaults for K
    assert k3.offsets == {"centred": (0, -1, 1), "causal": (0, -1, -2)}
    with pytest.raises(ModelError, match="window mode"):
        k3.window("sideways")
    with pytest.raises(ModelError, match="must not read later frames"):
        load_model_info("bad", tmp_path)
    with pytest.raises(ModelError, match="3 offsets"):
        load_model_info("short", tmp_path)


def test_a_user_onnx_file_gets_its_window_from_the_input_channels(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from multiframe_models import write_models

    listed, alone = tmp_path / "listed", tmp_path / "alone"
    listed.mkdir()
    alone.mkdir()
    write_models(listed, (3,))
    (alone / "x.onnx").write_bytes((listed / "max-k3.onnx").read_bytes())
    from_channels = resolve_model(alone / "x.onnx")  # no manifest: 9 input channels, K=3
    assert (from_channels.frames, from_channels.window("causal")) == (3, (0, -1, -2))
    manifest = json.loads((listed / "manifest.json").read_text())
    manifest["models"]["max-k3"]["offsets"]["centred"] = [0, 1, -1]
    (listed / "manifest.json").write_text(json.dumps(manifest))
    assert resolve_model(listed / "max-k3.onnx").window("centred") == (0, 1, -1)  # the manifest beside it


def test_the_manifest_says_whether_a_model_aligns_its_window(tmp_path: Path) -> None:
    """``"align"``: "flow" or "none"; absent: "none"; anything else: a ModelError. A user's
    file takes it from the manifest beside it; a bare file has none."""
    from stream_derain.catalog import load_model_info

    entry = {"version": "4", "multiple": 4, "frames": 5, "files": {"fp32": {"file": "m.onnx"}}}
    models = {"flow": {**entry, "align": "flow"}, "none": {**entry, "align": "none"}, "absent": entry,
              "bad": {**entry, "align": "raft", "files": {"fp32": {"file": "b.onnx"}}}}
    (tmp_path / "manifest.json").write_text(json.dumps({"default": "flow", "models": models}))
    aligns = [load_model_info(n, tmp_path).align for n in ("flow", "none", "absent")]
    assert aligns == ["flow", "none", "none"]
    with pytest.raises(ModelError, match="align 'raft'"):
        load_model_info("bad", tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"not read here")
    (tmp_path / "b.onnx").write_bytes(b"")
    assert resolve_model(tmp_path / "m.onnx").align == "flow"  # the first entry listing it
    with pytest.raises(ModelError, match="align"):
        resolve_model(tmp_path / "b.onnx")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "m.onnx").write_bytes(b"")
    assert resolve_model(bare / "m.onnx").align == "none"


def test_write_entry_merges_or_replaces_and_sets_the_default_as_asked(tmp_path) -> None:
    """The one manifest writer (export merges, ship and quantize replace)."""
    from stream_derain.catalog import read_manifest, write_entry

    write_entry(tmp_path, "a", {"version": "1", "stills": "s"}, default="never")
    assert "default" not in read_manifest(tmp_path)
    write_entry(tmp_path, "a", {"version": "2"}, merge=True)  # if-none: a becomes the default
    m = read_manifest(tmp_path)
    assert m["models"]["a"] == {"version": "2", "stills": "s"} and m["default"] == "a"
    write_entry(tmp_path, "b", {"version": "1"})  # a default exists: kept
    assert read_manifest(tmp_path)["default"] == "a"
    write_entry(tmp_path, "a", {"version": "3"}, default="make")  # replaced, not merged
    m = read_manifest(tmp_path)
    assert m["models"]["a"] == {"version": "3"} and m["default"] == "a"
    write_entry(tmp_path, "b", {"version": "2"}, default="make")
    assert read_manifest(tmp_path)["default"] == "b"
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError):
        write_entry(tmp_path, "b", {}, default="sometimes")


def test_the_align_modes_are_none_and_the_flows():
    """catalog sits below align (no OpenCV there), so it lists the modes itself: the same."""
    from stream_derain.align import FLOWS
    from stream_derain.catalog import ALIGN_MODES

    assert ALIGN_MODES == ("none", *FLOWS)


def test_the_live_default_is_the_manifests_where_it_names_one(tmp_path: Path):
    """default_name: files take ``default``; live takes ``live_default`` where the manifest
    names one; write_entry sets it only when asked."""
    from stream_derain.catalog import default_name, write_entry

    assert default_name({"default": "a"}) == default_name({"default": "a"}, "live") == "a"
    assert default_name({"default": "a", "live_default": "b"}, "live") == "b"
    assert default_name({"default": "a", "live_default": "b"}) == "a"
    with pytest.raises(ValueError):
        default_name({"default": "a"}, "camera")
    write_entry(tmp_path, "a", {"version": "1"}, default="make")
    write_entry(tmp_path, "b", {"version": "1"})
    assert "live_default" not in json.loads((tmp_path / "manifest.json").read_text())
    write_entry(tmp_path, "b", {"version": "1"}, live_default=True)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (manifest["default"], manifest["live_default"]) == ("a", "b")
