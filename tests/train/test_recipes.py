"""Issue 27: training recipes with inheritance (``"base"``), and the committed configs:
every one loads, none starts from engines/ (which shipping replaces), and the shipped
chain reproduces the configs that made the shipped models."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from stream_derain.errors import ConfigError
from stream_derain.train.config import TrainConfig, config_chain, load_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_a_config_overrides_its_base_and_nested_objects_merge_key_by_key(tmp_path):
    write(tmp_path / "root.json", {"steps": 100, "lr": 0.01, "student": {"channels": 8, "se_blocks": 1}})
    write(tmp_path / "mid" / "mid.json", {"base": "../root.json", "lr": 0.02, "student": {"channels": 12}})
    leaf = write(tmp_path / "mid" / "leaf.json", {"base": "mid.json", "seed": 3, "clean_dirs": ["a"]})
    cfg = load_config(leaf)
    assert (cfg.steps, cfg.lr, cfg.seed, cfg.clean_dirs) == (100, 0.02, 3, ("a",))
    assert cfg.student == {"channels": 12, "se_blocks": 1}
    assert [p.name for p, _ in config_chain(leaf)] == ["root.json", "mid.json", "leaf.json"]
    assert load_config(leaf, {"steps": 7}).steps == 7  # the command line still wins


def test_toml_and_json_mix_in_a_chain(tmp_path):
    write(tmp_path / "root.json", {"steps": 100})
    leaf = tmp_path / "leaf.toml"
    leaf.write_text('base = "root.json"\nlr = 0.5\n')
    cfg = load_config(leaf)
    assert (cfg.steps, cfg.lr) == (100, 0.5)


def test_an_unknown_key_in_a_base_names_the_file(tmp_path):
    write(tmp_path / "root.json", {"stepz": 100})
    leaf = write(tmp_path / "leaf.json", {"base": "root.json"})
    with pytest.raises(ConfigError, match=r"stepz") as err:
        load_config(leaf)
    assert "root.json" in str(err.value)


@pytest.mark.parametrize("links", [
    {"a.json": "a.json"},                                 # itself
    {"a.json": "b.json", "b.json": "c.json", "c.json": "a.json"},  # a loop of three
])
def test_a_base_cycle_is_an_error(tmp_path, links):
    for name, base in links.items():
        write(tmp_path / name, {"base": base, "steps": 1})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.json")


def test_a_missing_or_malformed_base_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(write(tmp_path / "a.json", {"base": "gone.json"}))
    with pytest.raises(ConfigError, match="base must be"):
        load_config(write(tmp_path / "b.json", {"base": 3}))


def all_configs() -> list[Path]:
    return sorted(p for p in CONFIGS.rglob("*") if p.suffix in (".json", ".toml"))


def config_class(path: Path) -> type:
    """The stage class a committed config is for (the CLI command that takes it)."""
    from stream_derain.train.temporal import TemporalTrainConfig
    from stream_derain.train.transfer.distill import DistillConfig
    from stream_derain.train.transfer.finetune import FinetuneConfig
    from stream_derain.train.transfer.teachers import RecognitionTrainConfig, ReconstructionTrainConfig

    rel = path.relative_to(CONFIGS).as_posix()
    if rel.startswith("v4_video/") or rel == "shipped/v4.json":
        return TemporalTrainConfig
    by_name = {"recognition": RecognitionTrainConfig, "judge": RecognitionTrainConfig,
               "reconstruction": ReconstructionTrainConfig, "distill": DistillConfig,
               "distill_features": DistillConfig}
    if rel.startswith("transfer/"):
        if path.stem.startswith("finetune_"):
            return FinetuneConfig
        return by_name.get(path.stem, TrainConfig)
    return TrainConfig


@pytest.mark.parametrize("path", all_configs(), ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_every_committed_config_loads(path):
    pytest.importorskip("torch")
    load_config(path, cls=config_class(path))


def test_no_config_and_no_training_default_starts_from_engines():
    pytest.importorskip("torch")
    from stream_derain.train.temporal import TemporalTrainConfig

    named = [p.relative_to(CONFIGS).as_posix() for p in all_configs() if "engines/" in p.read_text()]
    assert not named, named
    for cls in (TrainConfig, TemporalTrainConfig):
        defaults = [f.name for f in fields(cls) if "engines" in str(asdict(cls()).get(f.name))]
        assert not defaults, f"{cls.__name__}: {defaults}"


def test_the_shipped_chain_reads_as_stages_and_v4s_recipe_is_its_checkpoints_config():
    pytest.importorskip("torch")
    from stream_derain.train.checkpoint import read_checkpoint
    from stream_derain.train.temporal import TemporalTrainConfig

    chain = [p.name for p, _ in config_chain(CONFIGS / "shipped" / "v3.json")]
    assert chain == ["baseline.json", "v2_student.json", "v2_faint.json", "v3_dense3.json",
                     "v3_long.json", "v3.json"]
    # each stage after v2's first says only what changed (out_dir, init and a few keys)
    assert all(len(keys) <= 8 for _, keys in config_chain(CONFIGS / "shipped" / "v3.json")[2:])
    recipe = asdict(load_config(CONFIGS / "shipped" / "v4.json", cls=TemporalTrainConfig))
    stored = read_checkpoint(REPO / "checkpoints" / "v4" / "implicit_k5_6k.pt")["train_cfg"]
    def plain(v):  # noqa: ANN001, ANN202
        """Lists as lists; a data folder by its path under the data root (the checkpoint
        recorded the training machine's root, the recipe names this checkout's)."""
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v.rpartition("/data/")[2] if isinstance(v, str) and v.startswith("/") else v

    differ = {k for k in stored if k in recipe and plain(recipe[k]) != plain(stored[k])}
    assert differ == {"init"}  # v3's weights: then engines/derain-student.onnx, now under checkpoints/
