"""The GPU-machine scripts (docs/gpu.md): the device check's dry run on the CPU, the data
subset on a fake data root, and the GPU training config against the subset's layout."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def _script(name: str):  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.torch
def test_device_check_dry_run_without_pyav(tmp_path: Path) -> None:
    """The check's own entry, on the CPU at a tiny size, with PyAV replaced by the
    stand-in module as on the GPU machine: every section runs, fp16 is skipped."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OUT", None)
    res = subprocess.run([sys.executable, str(SCRIPTS / "device_check.py"), "--cpu-dry-run", "--stub-av",
                          "--out", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert report["dry_run"] and report["environment"]["pyav"].startswith("stubbed")
    engine = {(r["precision"], r["batch"]): r["status"] for r in report["engine"]}
    assert engine[("fp32", 1)] == engine[("bf16", 2)] == "ok"
    assert engine[("fp16", 1)] == "skipped"
    assert all(r["status"] == "ok" for r in report["engine_device"])
    assert report["accuracy"] and report["accuracy"][0]["psnr_db_vs_fp32"] > 35
    assert {r["smoother"] for r in report["smoother"] if r["status"] == "ok"} == {"torch-cpu", "cpu"}
    pipes = [r for r in report["pipeline"] if r["status"] == "ok"]
    assert len(pipes) == 4  # fp32 and bf16, batch 1 and 2
    for r in pipes:
        keys = ("pipeline", "pipeline_no_smooth") + (("pipeline_host_frames",) if r["batch"] == 2 else ())
        for key in keys:
            assert r[key]["frames"] == 8 and r[key]["fps"] > 0
        assert r["pipeline"]["uploads"] >= 8  # frames went to the (CPU) device once each
        assert abs(r["pipeline"]["output_mean_levels"] - r["pipeline"]["input_mean_levels"]) < 40
        stages = [s["name"] for s in r["pipeline"]["stages"]]
        assert stages == ["decode", "infer", "smooth", "download", "sink"]
    assert report["summary"]


def test_stub_av_lets_the_stages_import() -> None:
    code = ("import sys; sys.path.insert(0, 'scripts'); import device_check; "
            "assert device_check.stub_av(); import stream_derain.stages, stream_derain.bench.e2e; "
            "from stream_derain.devices import has_module; assert not has_module('av'); print('ok')")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


@pytest.mark.torch
def test_gpu_config_reads_the_subset_layout() -> None:
    """configs/v4_video/gpu.json trains on the folders gpu_subset writes for the trainer's clips."""
    from stream_derain.train.config import load_config
    from stream_derain.train.temporal import TRAIN_CLIPS, TemporalTrainConfig

    subset = _script("gpu_subset")
    cfg = load_config(REPO / "configs" / "v4_video" / "gpu.json", cls=TemporalTrainConfig)
    assert sorted(cfg.video_clips) == sorted(subset.clip_target(s.partition("[")[0]) for s in TRAIN_CLIPS)
    assert not any(Path(c).suffix for c in cfg.video_clips)  # folders: no PyAV on the GPU machine
    assert cfg.device == "cuda" and not cfg.bf16 and cfg.threads == 0
    assert cfg.out_dir == "runs/v4/gpu" and cfg.init == "checkpoints/v3/derain-student-v3.onnx"


def test_gpu_train_refuses_without_the_subset(tmp_path: Path) -> None:
    env = {**os.environ, "STREAM_DERAIN_DATA": str(tmp_path / "none")}
    res = subprocess.run(["bash", str(SCRIPTS / "gpu_train.sh"), "--steps", "1"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert res.returncode == 2 and "gpu_subset.py" in res.stderr


@pytest.mark.torch
def test_gpu_subset_on_a_fake_data_root(tmp_path: Path) -> None:
    """Layout, resizing, the video file as a folder of frames, exclusions, the size limit."""
    av = pytest.importorskip("av")
    import cv2

    from stream_derain.train.temporal import TRAIN_CLIPS

    data, rng = tmp_path / "data", np.random.default_rng(0)

    def image(path: Path, w: int, h: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))

    for spec in TRAIN_CLIPS:
        src = spec.partition("[")[0]
        if src.endswith(".mp4"):
            (data / src).parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(data / src), "w") as c:  # 6 frames of 96x64 noise
                v = c.add_stream("libx264", rate=25)
                v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
                for _ in range(6):
                    img = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
                    for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                        c.mux(packet)
                for packet in v.encode():
                    c.mux(packet)
        else:
            for i in range(3):
                image(data / src / f"{i:05d}.jpg", 960, 540)
    for folder in ("kodak24", "mcmaster", "bsds500_test"):
        image(data / "clean" / folder / "a.png", 500, 500)
    image(data / "clean" / "kodak24" / "dev.png", 300, 200)  # a dev-set background: left out
    (data / "pairs" / "sirr20" / "clean").mkdir(parents=True)
    dev = data / "pairs" / "sirr20" / "clean" / "x.png"
    dev.write_bytes((data / "clean" / "kodak24" / "dev.png").read_bytes())
    for name in ("0001TP_000.png", "0006R0_000.png", "0016E5_000.png", "Seq05VD_000.png", "Seq05VD_001.png"):
        image(data / "clean" / "camvid" / name, 480, 360)
    for i in range(12):
        image(data / "rain_layers" / "garg06" / f"{i}-4.png", 60, 40)
    out = tmp_path / "gpu_data"
    subset = _script("gpu_subset")
    assert subset.main(["--data", str(data), "--out", str(out), "--layers", "5", "--camvid-step", "1"]) == 0
    report = json.loads((out / "SUBSET.json").read_text())
    assert len(list((out / "clean_video" / "udacity" / "solidWhiteRight").glob("*.jpg"))) == 6
    frame = cv2.imread(str(out / "clean_video" / "cityscapes" / "seq0000" / "00000.jpg"))
    assert frame.shape == (270, 480, 3)  # long side 480
    camvid = sorted(p.name for p in (out / "clean" / "camvid").iterdir())
    assert camvid == ["0001TP_000.jpg", "Seq05VD_000.jpg", "Seq05VD_001.jpg"]  # no dev-set drives
    assert sorted(p.name for p in (out / "clean" / "kodak24").iterdir()) == ["a.jpg"]
    assert report["stills"][0]["dev_backgrounds_dropped"] == 1
    assert report["rain_layers"]["layers"] == 5 and report["mib"] < 5
    assert subset.main(["--data", str(data), "--out", str(out), "--limit-mib", "0.01"]) == 1


def test_the_gpu_replacement_head_config_fits_the_budget() -> None:
    """configs/v4_video/gpu_replace.json: the v4.3 design (a head over v4's network) for a
    lent GPU, within 25k MACs/px; the network under the head comes from a committed file."""
    pytest.importorskip("torch")
    from stream_derain.model.student import count_macs_per_pixel
    from stream_derain.model.temporal import TemporalStudent
    from stream_derain.train.config import load_config
    from stream_derain.train.temporal import TemporalTrainConfig

    cfg = load_config(REPO / "configs" / "v4_video" / "gpu_replace.json", cls=TemporalTrainConfig)
    assert cfg.head and cfg.align == "flow" and cfg.device == "cuda"
    model = TemporalStudent(cfg.model_config())
    assert count_macs_per_pixel(model) <= 25_000
    assert cfg.base_evidence and (REPO / cfg.base_init).is_file()
