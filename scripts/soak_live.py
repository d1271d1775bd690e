"""Soak run of ``stream-derain live`` against a local RTSP server, sampling memory (RSS).

    nice -n 10 python scripts/soak_live.py --minutes 10 --json soak.json

Serves a looping clip on ``rtsp://127.0.0.1:PORT/live`` (the test server of
``tests/live/rtsp_server.py``: ffmpeg streaming the clip in real time), runs the CLI as
a subprocess with a recording (time-segmented MP4s) and the MJPEG preview (a client
reads ``/stream.mjpg`` the whole time), samples the CLI's RSS from ``/proc/PID/status``
every ``--every`` seconds, kills the server once mid-run and restarts it after
``--down-seconds`` (a reconnect; ``--restart-at 0`` skips it), then sends SIGTERM and
checks that every recorded segment plays. Prints a JSON summary (also written to
``--json``): frames in / out, drops, reconnects, latency, RSS at start, after the
warm-up, max, end, growth after the warm-up and its slope. Exits 1 when the run failed
or RSS grew by more than ``--max-growth-mib`` after the warm-up.

The default clip is ``samples/rainy_cafe_table_360p.mp4`` scaled to 320x180 at 15 fps
(modest on a CPU); ``--clip generated`` streams a generated 320x240 clip instead.
Everything stays on 127.0.0.1. Needs ffmpeg on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "live"))
from streams import RtspServer, free_port, make_clip  # noqa: E402

SAMPLE = ROOT / "samples" / "rainy_cafe_table_360p.mp4"
ENDED = re.compile(r"live run ended after ([\d.]+)s: (\d+) frames in, (\d+) out, (\d+) dropped, "
                   r"(\d+) reconnect")
LATENCY = re.compile(r"latency p95 (\d+) ms, max (\d+) ms")


def rss_mib(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (VmRSS), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def prepare_clip(spec: str, folder: Path, size: str, fps: int) -> Path:
    """The clip to serve: a generated one, or ``spec`` scaled to ``size`` at ``fps``
    (H.264, a keyframe every second, no B-frames, no audio)."""
    w, h = (int(v) for v in size.split("x"))
    if spec == "generated":
        return make_clip(folder / "clip.mp4", seconds=10.0, fps=fps, size=(w, h))
    out = folder / "clip.mp4"
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
                    "-i", spec, "-an", "-vf", f"scale={w}:{h},fps={fps}", "-c:v", "libx264",
                    "-preset", "veryfast", "-g", str(fps), "-bf", "0", "-pix_fmt", "yuv420p", str(out)],
                   check=True, timeout=300)
    return out


class PreviewReader(threading.Thread):
    """Watches ``/stream.mjpg`` like a browser and counts the JPEGs; reconnects while
    the preview is not up yet. Every wait is bounded by the socket timeout."""

    def __init__(self, port: int) -> None:
        super().__init__(name="preview-reader", daemon=True)
        self.url, self.stop = f"http://127.0.0.1:{port}/stream.mjpg", threading.Event()
        self.frames = self.connections = 0

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                with urllib.request.urlopen(self.url, timeout=30) as r:
                    self.connections += 1
                    while not self.stop.is_set():
                        chunk = r.read(65536)
                        if not chunk:
                            break
                        self.frames += chunk.count(b"--frame\r\n")
            except OSError:
                continue


def live_command(args: argparse.Namespace, url: str, rec: Path, preview_port: int) -> list[str]:
    cmd = [sys.executable, "-c", "from stream_derain.cli import main; main()", "live", url,
           "--record", str(rec), "--segment-minutes", str(args.segment_minutes),
           "--preview-port", str(preview_port), "--max-latency", str(args.max_latency),
           "--backend", args.backend, "--threads", str(args.threads), "--status-every", "30",
           "--max-seconds", str(args.minutes * 60 + 120)]
    return cmd + (["--model", args.model] if args.model else [])


def sample_loop(args: argparse.Namespace, proc: subprocess.Popen, server: RtspServer) -> dict[str, Any]:
    """RSS samples until the duration is over; kills and restarts the server once."""
    samples: list[tuple[float, float]] = []
    restart_at = args.restart_at if args.restart_at is not None else args.minutes * 30
    restarted_at = None
    t0 = time.monotonic()
    time.sleep(min(args.every, 5.0))  # past the interpreter's start
    while (elapsed := time.monotonic() - t0) < args.minutes * 60 and proc.poll() is None:
        rss = rss_mib(proc.pid)
        if rss is not None:
            samples.append((round(elapsed, 1), round(rss, 1)))
            print(f"{elapsed:7.0f}s  RSS {rss:7.1f} MiB", file=sys.stderr, flush=True)
        if restart_at > 0 and restarted_at is None and elapsed >= restart_at:
            print(f"{elapsed:7.0f}s  killing the RTSP server for {args.down_seconds:g}s", file=sys.stderr)
            server.stop()
            time.sleep(args.down_seconds)
            server.start()
            restarted_at = round(elapsed, 1)
        time.sleep(max(0.0, min(args.every, args.minutes * 60 - (time.monotonic() - t0))))
    return {"samples": samples, "server_restarted_at_s": restarted_at}


def rss_summary(samples: list[tuple[float, float]], warmup_s: float) -> dict[str, Any]:
    if not samples:
        return {}
    warm = [s for s in samples if s[0] >= warmup_s] or samples[-1:]
    slope = 0.0
    if len(warm) >= 2:  # least squares, MiB per hour
        mt = sum(t for t, _ in warm) / len(warm)
        mr = sum(r for _, r in warm) / len(warm)
        var = sum((t - mt) ** 2 for t, _ in warm)
        slope = sum((t - mt) * (r - mr) for t, r in warm) / var * 3600 if var else 0.0
    rss = [r for _, r in samples]
    return {"rss_start_mib": rss[0], "rss_after_warmup_mib": warm[0][1], "rss_max_mib": max(rss),
            "rss_max_after_warmup_mib": max(r for _, r in warm), "rss_end_mib": rss[-1],
            "rss_growth_after_warmup_mib": round(rss[-1] - warm[0][1], 1),
            "rss_slope_after_warmup_mib_per_hour": round(slope, 2), "warmup_s": warmup_s}


def check_segments(rec: Path) -> dict[str, Any]:
    """Every segment must open and decode (playable on its own)."""
    files, frames, bad = sorted(rec.glob("*.mp4")) if rec.is_dir() else [], [], []
    for f in files:
        try:
            with av.open(str(f)) as c:
                frames.append(sum(1 for _ in c.decode(video=0)))
        except av.error.FFmpegError as exc:
            bad.append(f"{f.name}: {exc}")
            frames.append(0)
    return {"segments": len(files), "segment_frames": frames, "segments_unplayable": bad,
            "segments_mib": round(sum(f.stat().st_size for f in files) / 2**20, 1)}


def parse_log(text: str) -> dict[str, Any]:
    errors = [ln for ln in text.splitlines() if "ERROR" in ln or "Traceback" in ln]
    out: dict[str, Any] = {"log_stream_drops": text.count("stream dropped"),
                           "log_reconnects": text.count("reconnected to"), "log_errors": errors[:10]}
    if m := ENDED.search(text):
        keys = ("run_seconds", "frames_in", "frames_out", "dropped", "reconnects")
        out.update({k: (float(v) if k == "run_seconds" else int(v)) for k, v in zip(keys, m.groups())})
    if m := LATENCY.search(text):  # p95 of the last 100 frames, max of the whole run
        out["latency_p95_last100_ms"], out["latency_max_ms"] = int(m.group(1)), int(m.group(2))
    status = [ln.split("live: ", 1)[1] for ln in text.splitlines() if " live: in " in ln]
    out["last_status_line"] = status[-1] if status else None
    return out


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    clip = prepare_clip(args.clip, work, args.size, args.fps)
    server = RtspServer(clip, lifetime_s=args.minutes * 60 + 600).start()
    rec, log_path, preview_port = work / "rec", work / "live.log", free_port()
    cmd = live_command(args, server.url, rec, preview_port)
    reader = PreviewReader(preview_port)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        reader.start()
        sampled = sample_loop(args, proc, server)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        reader.stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        server.stop()
    reader.join(timeout=10)
    return {"command": " ".join(cmd[3:]), "minutes": args.minutes,
            "clip": f"{args.clip} as {args.size}@{args.fps}",
            "exit_code": rc, **parse_log(log_path.read_text(errors="replace")),
            "preview_frames_read": reader.frames, "preview_connections": reader.connections,
            "server_restarted_at_s": sampled["server_restarted_at_s"], **check_segments(rec),
            **rss_summary(sampled["samples"], args.warmup), "rss_samples": sampled["samples"]}


def verdict(summary: dict[str, Any], max_growth: float) -> list[str]:
    problems = []
    if summary["exit_code"] != 130:
        problems.append(f"exit code {summary['exit_code']} (expected 130 after SIGTERM)")
    if summary.get("segments_unplayable") or not summary.get("segments"):
        problems.append("a segment is missing or unplayable")
    if summary.get("server_restarted_at_s") is not None and not summary.get("reconnects"):
        problems.append("the server restart led to no reconnect")
    if summary.get("rss_max_after_warmup_mib", 0) - summary.get("rss_after_warmup_mib", 0) > max_growth:
        problems.append(f"RSS grew by more than {max_growth} MiB after the warm-up")
    if summary.get("log_errors"):
        problems.append("errors in the log")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=5.0, help="RSS sampling period, seconds")
    ap.add_argument("--warmup", type=float, default=120.0, help="seconds before RSS counts as settled")
    ap.add_argument("--max-growth-mib", type=float, default=32.0, help="allowed RSS growth after the warm-up")
    ap.add_argument("--clip", default=str(SAMPLE) if SAMPLE.exists() else "generated")
    ap.add_argument("--size", default="320x180", help="WxH the clip is scaled to")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--restart-at", type=float, default=None, help="kill the server at this second "
                    "(default: half-way; 0: never)")
    ap.add_argument("--down-seconds", type=float, default=5.0)
    ap.add_argument("--segment-minutes", type=float, default=2.0)
    ap.add_argument("--max-latency", type=float, default=1.0)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--model", default=None, help="model name or .onnx (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the summary here")
    ap.add_argument("--keep", type=Path, default=None, help="keep the clip, log and segments in this folder")
    args = ap.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        summary = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="soak-live-") as tmp:
            summary = run(args, Path(tmp))
    summary["problems"] = verdict(summary, args.max_growth_mib)
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
