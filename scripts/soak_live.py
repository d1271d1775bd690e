"""Soak test of ``stream-derain live`` against a local RTSP server, sampling RSS.

    python scripts/soak_live.py --minutes 10

Generates a 320x240 clip, serves it on 127.0.0.1 with gst-rtsp-server (the test
helper; the clip ends every ``--clip-seconds`` so the run also reconnects that often),
runs ``stream-derain live URL --record DIR --preview-port P --max-latency L`` as a
subprocess for the given time, samples its RSS from /proc every ``--every`` seconds,
then SIGTERMs it and prints min / max / growth of RSS, and the run's own summary.
Needs the packages of ``tests/live/rtsp_server.py``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "live"))
from streams import RtspServer, free_port, make_clip  # noqa: E402


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=10.0, help="RSS sampling period, seconds")
    ap.add_argument("--clip-seconds", type=float, default=60.0)
    ap.add_argument("--max-latency", type=float, default=0.5)
    ap.add_argument("--model", default=None, help="model name or .onnx (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-live-") as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", seconds=args.clip_seconds)
        server = RtspServer(clip).start()
        cmd = [sys.executable, "-c", "from stream_derain.cli import main; main()", "live", server.url,
               "--record", str(Path(tmp) / "rec"), "--segment-minutes", "2",
               "--preview-port", str(free_port()),
               "--max-latency", str(args.max_latency), "--backend", "onnxruntime", "--threads",
               str(args.threads), "--status-every", "60", "--max-seconds", str(args.minutes * 60 + 60)]
        if args.model:
            cmd += ["--model", args.model]
        log_path = Path(tmp) / "live.log"
        samples: list[tuple[float, float]] = []
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            t0 = time.monotonic()
            try:
                time.sleep(min(5.0, args.every))  # past the interpreter start
                while time.monotonic() - t0 < args.minutes * 60 and proc.poll() is None:
                    rss = rss_mib(proc.pid)
                    if rss is not None:
                        samples.append((time.monotonic() - t0, rss))
                        print(f"{samples[-1][0]:7.0f}s  RSS {rss:7.1f} MiB", flush=True)
                    time.sleep(args.every)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                server.stop()
        report(samples, proc.returncode, log_path.read_text(errors="replace"), Path(tmp) / "rec")
    return 0 if proc.returncode in (0, 130) else 1


def report(samples: list[tuple[float, float]], rc: int | None, log: str, rec: Path) -> None:
    rss = [r for _, r in samples]
    if not rss:
        print("no RSS samples")
        return
    warm = [r for t, r in samples if t >= 60] or rss  # after the first minute (model, buffers)
    print(f"samples {len(rss)}  RSS min {min(rss):.1f}  max {max(rss):.1f}"
          f"  first {rss[0]:.1f}  last {rss[-1]:.1f}"
          f" MiB  growth after 1 min {warm[-1] - warm[0]:+.1f} MiB  exit code {rc}")
    segments = sorted(rec.glob("*.mp4")) if rec.is_dir() else []
    print(f"segments {len(segments)}  total {sum(p.stat().st_size for p in segments) / 2**20:.1f} MiB")
    for line in log.splitlines():
        if "live run ended" in line or "frames out" in line or "Error" in line or "Traceback" in line:
            print(line)
    print("reconnect lines:", sum("reconnected to" in line for line in log.splitlines()),
          "| drop lines:", sum("stream dropped" in line for line in log.splitlines()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
