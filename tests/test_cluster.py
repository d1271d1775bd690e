"""Derain a batch across a local 2-CPU Ray cluster: outputs, a bad file, a killed worker,
resume with skip_existing, and the CLI's --ray. One Ray instance serves the module."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest

from stream_derain.derain import DerainConfig
from stream_derain.engine_spec import EngineSpec
from stream_derain.errors import InputError, MissingExtraError
from stream_derain.jobs import plan_jobs

ray = pytest.importorskip("ray")
cluster = pytest.importorskip("stream_derain.cluster")

pytestmark = pytest.mark.slow
STEPS = [40, 40, 80]  # variable frame durations (ms): timestamps must survive
CFG = DerainConfig(input=Path("."), engine=EngineSpec(smooth=False))


@pytest.fixture(scope="module")
def local_ray():
    cluster.init_ray(ray, cluster.ClusterOptions(num_cpus=2))  # retries a start that times out
    yield ray
    ray.shutdown()


def write_clip(path: Path, frames: int, size: tuple[int, int], seed: int = 0) -> Path:
    """A silent H.264 clip of moving noisy gradients with variable frame durations (STEPS, ms).
    (Not conftest's writer: ``import conftest`` is ambiguous in a run with several conftest.py.)"""
    import numpy as np

    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i in range(frames):
            img = np.stack([(xx * 3 + i * 5) % 256, (yy * 3) % 256, (xx + yy + i * 9) % 256], -1)
            img = np.clip(img + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = pts, Fraction(1, 1000)
            pts += STEPS[i % len(STEPS)]
            for packet in v.encode(f):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
    return path


def clip(folder: Path, name: str, frames: int = 20, seed: int = 0) -> Path:
    return write_clip(folder / name, frames, (64, 48), seed)


def video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(float(f.pts * f.time_base) for f in c.decode(s))


def same_timeline(a: Path, b: Path) -> bool:
    pa, pb = video_pts(a), video_pts(b)
    return len(pa) == len(pb) and all(abs(x - y) < 1e-3 for x, y in zip(pa, pb))


def jobs_for(src: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    out_dir.mkdir(exist_ok=True)
    return [(p, out_dir / f"{p.stem}.derained.mp4") for p in src]


@pytest.fixture(scope="module")
def batch(local_ray, tmp_path_factory):
    """Four clips derained once; the tests below read what it left."""
    root = tmp_path_factory.mktemp("batch")
    src = [clip(root, f"c{i}.mp4", frames=18 + 3 * i, seed=i) for i in range(4)]
    jobs = [(j.input, j.output) for j in plan_jobs(src, root / "out")]
    return jobs, cluster.run_cluster(plan_jobs(src, root / "out"), CFG, cluster.ClusterOptions(poll=0.2))


def test_four_clips_frames_and_timestamps(batch):
    jobs, result = batch
    assert [f.status for f in result.files] == ["done"] * 4, result.as_dict()
    for (inp, out), f in zip(jobs, result.files):
        assert same_timeline(inp, out), (out, video_pts(inp), video_pts(out))
        assert f.frames == len(video_pts(inp)) and f.attempts == 1 and f.pid > 0 and f.node, f
    assert not [p for p in jobs[0][1].parent.iterdir() if p.name.startswith(".")]  # no temporaries left
    assert result.ok and result.frames == sum(f.frames for f in result.files)
    json.dumps(result.as_dict())


def test_skip_existing_redoes_nothing(batch):
    jobs, _ = batch
    before = {out: out.stat().st_mtime_ns for _, out in jobs}
    planned = plan_jobs([inp for inp, _ in jobs], jobs[0][1].parent, skip_existing=True)  # as the CLI does
    again = cluster.run_cluster(planned, CFG, cluster.ClusterOptions(skip_existing=True))
    assert [f.status for f in again.files] == ["skipped"] * 4
    again = cluster.run_cluster(jobs, CFG, cluster.ClusterOptions(skip_existing=True))  # plain pairs
    assert [f.status for f in again.files] == ["skipped"] * 4
    assert {out: out.stat().st_mtime_ns for _, out in jobs} == before
    refused = cluster.run_cluster(jobs[:1], CFG)  # neither --skip-existing nor --overwrite
    assert refused.files[0].status == "failed" and "exists" in refused.files[0].error


def test_corrupt_input_fails_alone(local_ray, tmp_path):
    good = [clip(tmp_path, "a.mp4"), clip(tmp_path, "b.mp4", seed=1)]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(good[0].read_bytes()[:300] + os.urandom(3000))
    jobs = jobs_for([good[0], bad, good[1]], tmp_path / "out")
    result = cluster.run_cluster(jobs, CFG)
    assert [f.status for f in result.files] == ["done", "failed", "done"], result.as_dict()
    assert result.files[1].attempts == 1  # bad input is never retried
    assert "bad.mp4" in result.files[1].error and not jobs[1][1].exists()
    assert same_timeline(good[1], jobs[2][1]) and not result.ok


def test_worker_killed_mid_task(local_ray, tmp_path, caplog):
    """SIGKILL the worker running the long clip (its PID as the task reported it through
    the tracker actor); Ray reruns the task and every output is complete."""
    src = [write_clip(tmp_path / "long.mp4", 120, (160, 120)),
           clip(tmp_path, "short.mp4", frames=20, seed=3)]
    jobs = jobs_for(src, tmp_path / "out")
    killed: list[int] = []

    def kill_once(p: cluster.ClusterProgress) -> None:
        st = p.running.get(0)
        if not killed and st and st["attempts"] == 1 and st.get("frames", 0) >= 5:
            killed.extend([st["pid"], st["frames"], st["total"]])
            logging.getLogger("test").warning("SIGKILL worker pid %d at frame %d/%d of long.mp4",
                                              st["pid"], st["frames"], st["total"])
            os.kill(st["pid"], signal.SIGKILL)

    with caplog.at_level(logging.INFO):
        result = cluster.run_cluster(jobs, DerainConfig(input=Path("."), engine=EngineSpec(smooth=True)),
                                     cluster.ClusterOptions(poll=0.1), kill_once)
    print("\n".join(r.getMessage() for r in caplog.records))
    assert killed and killed[1] < killed[2], f"not killed mid-task: {killed}"
    assert [f.status for f in result.files] == ["done", "done"], result.as_dict()
    assert result.files[0].attempts == 2 and result.files[0].pid != killed[0]
    for inp, out in jobs:
        assert same_timeline(inp, out)
    assert not [p for p in jobs[0][1].parent.iterdir() if p.name.startswith(".")]
    assert any("previous attempt's worker was lost" in r.getMessage() for r in caplog.records)


def test_ctrl_c_cancels_the_rest(local_ray, tmp_path):
    """Ctrl-C (a KeyboardInterrupt in the driver) once the short file is done, one file at
    a time: the long one is cancelled and leaves nothing behind, the queued ones never start."""
    src = [clip(tmp_path, "short.mp4", frames=10),
           write_clip(tmp_path / "long.mp4", 120, (160, 120)),
           clip(tmp_path, "q1.mp4", seed=1), clip(tmp_path, "q2.mp4", seed=2)]
    jobs = jobs_for(src, tmp_path / "out")

    def interrupt(p: cluster.ClusterProgress) -> None:
        if p.files >= 1 and p.running.get(1, {}).get("frames", 0) >= 1:
            raise KeyboardInterrupt

    result = cluster.run_cluster(jobs, DerainConfig(input=Path("."), engine=EngineSpec(smooth=True)),
                                 cluster.ClusterOptions(workers=1, poll=0.1), interrupt)
    assert result.interrupted and not result.ok
    assert [f.status for f in result.files] == ["done"] + ["cancelled"] * 3, result.as_dict()
    assert [f.error for f in result.files[2:]] == ["not started"] * 2
    done = {Path(f.output).name for f in result.files if f.status == "done"}
    assert {p.name for p in (tmp_path / "out").iterdir()} == done  # no torn or temporary files


def test_cli_ray_json(local_ray, tmp_path):
    from typer.testing import CliRunner

    from stream_derain.cli import app

    src = [clip(tmp_path, "x.mp4"), clip(tmp_path, "y.mp4", seed=2)]
    report = tmp_path / "r.json"
    args = ["derain", *map(str, src), "-o", str(tmp_path / "out"), "--ray", "--no-smooth", "-q",
            "--json", str(report)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["done"] == 2 and {Path(f["output"]).parent.name for f in data["files"]} == {"out"}


def test_transient_errors_retried_bad_input_not():
    assert issubclass(OSError, cluster.RETRY_EXCEPTIONS)
    assert not issubclass(InputError, cluster.RETRY_EXCEPTIONS)
    assert issubclass(InputError, cluster.PERMANENT_ERRORS)
    assert cluster.task_resources("tensorrt", cluster.ClusterOptions(), 0) == (1.0, 1.0)
    assert cluster.task_resources("auto", cluster.ClusterOptions(), 0) == (1.0, 0.0)
    assert cluster.task_resources("auto", cluster.ClusterOptions(), 2) == (1.0, 1.0)
    assert cluster.task_resources("onnxruntime", cluster.ClusterOptions(), 2) == (1.0, 0.0)


def test_local_start_that_times_out_is_tried_again():
    class FakeRay:
        calls: list[str] = []

        def init(self, **kw):
            self.calls.append("init")
            if len(self.calls) == 1:
                raise Exception("The current node timed out during startup.")

        def shutdown(self):
            self.calls.append("shutdown")

    fake = FakeRay()
    cluster.init_ray(fake, cluster.ClusterOptions(num_cpus=1))
    assert fake.calls == ["init", "shutdown", "init"]
    fake.calls[:] = ["x"]  # from now on every init fails
    fake.init = lambda **kw: (_ for _ in ()).throw(ConnectionError("no cluster"))
    with pytest.raises(cluster.ConfigError, match="cannot start or reach Ray.*no cluster"):
        cluster.init_ray(fake, cluster.ClusterOptions(address="auto"))  # joining: no retry


def test_missing_ray_is_a_clean_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"\[ray\] extra"):
        cluster.import_ray()


def test_single_machine_path_never_imports_ray(tmp_path):
    """The CLI without --ray (one file, then a batch of two) runs without importing ray."""
    src = [clip(tmp_path, "s.mp4", frames=4), clip(tmp_path, "t.mp4", frames=4, seed=1)]
    code = ("import sys; from stream_derain.cli import app\n"
            "for argv in sys.argv[1:]:\n"
            "    try: app(argv.split('|'))\n"
            "    except SystemExit as e: assert e.code in (0, None), e.code\n"
            "assert 'ray' not in sys.modules, 'ray was imported'")
    one = f"derain|{src[0]}|-o|{tmp_path / 'one.mp4'}|--no-smooth|-q"
    two = f"derain|{src[0]}|{src[1]}|-o|{tmp_path / 'two'}|--no-smooth|-q"
    subprocess.run([sys.executable, "-c", code, one, two], check=True, timeout=120)
    assert (tmp_path / "one.mp4").exists() and len(list((tmp_path / "two").iterdir())) == 2
