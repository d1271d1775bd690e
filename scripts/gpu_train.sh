#!/usr/bin/env bash
# Train the multi-frame student (v4) on an NVIDIA GPU machine for about 9 minutes
# (issue 26, point 7). One command, run from anywhere in the checkout:
#
#   bash scripts/gpu_train.sh [CONFIG] [--minutes M | --steps N] [--device D] [--workers W]
#                             [--batch-size B] [--crop C] [--out-dir DIR] [--grace S]
#
# CONFIG (relative to the checkout) defaults to configs/v4_video/gpu.json (out_dir runs/v4/gpu, batch 64, crop 192,
# init from v3's weights in checkpoints/v3, device cuda). The data come from the subset that
# scripts/gpu_subset.py writes (runs/gpu_data: carry it to the machine); the script sets
# STREAM_DERAIN_DATA to it unless the variable is already set.
#
# Time mode (the default, --minutes 9): a few short chunks measure seconds per step, then
# the run's step count is set so that training ends about M minutes after the script
# started, the cosine schedule reaching min_lr at the end (TemporalTrainConfig has no
# time budget: chunks are `stop_at` invocations of train_temporal, each resuming from
# out_dir/last.pt, and `steps` is re-aimed between chunks). --steps N: exactly N steps in
# one invocation (the CPU check: --device cpu --steps 3). A watchdog stops training
# --grace (30) seconds past the budget at its last checkpoint, should the speed fall.
#
# Windows are rendered on the CPU (numpy/OpenCV, one window at a time in the trainer);
# on a GPU that is the bottleneck, so here W worker processes (default: CPUs - 2 on
# CUDA, 0 on the CPU) each run the trainer's own window stream with a seed drawn from
# the run's data RNG and hand whole batches over (torch DataLoader, shared memory). If
# the workers fail (e.g. too little /dev/shm), the run goes on from its last checkpoint
# with the trainer's own single-process stream.
#
# Needs no PyAV (the subset's clips are folders of JPEGs; stream_derain.cli imports av,
# so the trainer is called as a function). Writes to $OUT (default: OUT_DIR/out):
# last.pt, train.log, gpu_train.json (config, steps, speed, machine), the checkpoint and
# the summary after every chunk. docs/gpu.md: the device tool's call, resuming on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=configs/v4_video/gpu.json
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then CONFIG=$1; shift; fi
export STREAM_DERAIN_DATA=${STREAM_DERAIN_DATA:-runs/gpu_data}
if [ ! -d "$STREAM_DERAIN_DATA/clean_video" ]; then
  echo "training data not found at $STREAM_DERAIN_DATA: build it with" \
       "'python scripts/gpu_subset.py' and carry runs/gpu_data" >&2
  exit 2
fi
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT_ARG=${OUT:-}

"$PYTHON" - "$CONFIG" "$OUT_ARG" "$@" <<'PY'
import argparse
import json
import logging
import os
import platform
import shutil
import signal
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

T0 = time.time()
ap = argparse.ArgumentParser(prog="gpu_train.sh")
ap.add_argument("config", type=Path)
ap.add_argument("out", help="where last.pt, train.log and gpu_train.json go ('' = OUT_DIR/out)")
ap.add_argument("--minutes", type=float, default=9.0, help="wall-clock budget from the script's start")
ap.add_argument("--steps", type=int, default=0, help="train exactly this many steps instead (no time budget)")
ap.add_argument("--device", default=None)
ap.add_argument("--workers", type=int, default=-1, help="window-rendering processes (-1: CPUs - 2 on CUDA)")
ap.add_argument("--batch-size", type=int, default=None)
ap.add_argument("--crop", type=int, default=None)
ap.add_argument("--out-dir", default=None)
ap.add_argument("--chunk-seconds", type=float, default=60.0, help="time mode: training between re-aims")
ap.add_argument("--grace", type=float, default=30.0,
                help="time mode: seconds past --minutes after which the watchdog stops training")
args = ap.parse_args()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from stream_derain.train import temporal  # noqa: E402
from stream_derain.train.checkpoint import read_checkpoint  # noqa: E402
from stream_derain.train.config import load_config  # noqa: E402

overrides = {"device": args.device, "batch_size": args.batch_size, "crop": args.crop, "out_dir": args.out_dir}
cfg = load_config(args.config, overrides, cls=temporal.TemporalTrainConfig)
out = Path(args.out) if args.out else Path(cfg.out_dir) / "out"
out.mkdir(parents=True, exist_ok=True)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                    handlers=[logging.StreamHandler(sys.stderr), logging.FileHandler(out / "train.log")],
                    force=True)
log = logging.getLogger("gpu_train")
LOSSES = []  # the training loop's log lines (step, running losses, LR, s/step)


class KeepLosses(logging.Handler):
    def emit(self, record):
        LOSSES.append(record.getMessage())


logging.getLogger("stream_derain.train.loop").addHandler(KeepLosses())
cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
if cfg.device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu_train: the config asks for CUDA but torch sees no GPU (--device cpu to test on the CPU)")
if cuda:
    torch.backends.cudnn.benchmark = True  # one input size all run long
workers = args.workers if args.workers >= 0 else (max(0, (os.cpu_count() or 2) - 2) if cuda else 0)
try:
    shm_free = shutil.disk_usage("/dev/shm").free
except OSError:
    shm_free = 0
bytes_per_batch = cfg.batch_size * (3 * cfg.frames + 3) * cfg.crop * cfg.crop * 4
if workers and shm_free < 4 * bytes_per_batch * (workers + 2):
    fit = max(0, int(shm_free // (4 * bytes_per_batch)) - 2)
    log.warning("/dev/shm has %.1f GiB free: %d worker(s) instead of %d", shm_free / 2**30, fit, workers)
    workers = fit
log.info("config %s (batch %d, crop %d, device %s), data %s, %d window worker(s)", args.config,
         cfg.batch_size, cfg.crop, cfg.device, os.environ["STREAM_DERAIN_DATA"], workers)

# --- windows rendered by worker processes, whole batches at a time -----------------------
ORIG_STREAM, ORIG_BATCH = getattr(temporal, "_window_stream", None), getattr(temporal, "batch_windows", None)


class Windows(torch.utils.data.IterableDataset):
    """Each worker runs the trainer's own window stream with its own seed."""

    def __init__(self, cfg, seeds):
        self.cfg, self.seeds = cfg, seeds

    def __iter__(self):
        import cv2

        info = torch.utils.data.get_worker_info()
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        stream = ORIG_STREAM(self.cfg, np.random.default_rng(self.seeds[info.id if info else 0]))
        while True:
            x, y = ORIG_BATCH(stream, self.cfg.batch_size)
            yield torch.from_numpy(x), torch.from_numpy(y)


class ParallelStream:
    def __init__(self, cfg, rng):
        seeds = [int(s) for s in rng.integers(0, 2**62, size=workers)]
        loader = torch.utils.data.DataLoader(Windows(cfg, seeds), batch_size=None, num_workers=workers,
                                             pin_memory=cuda, prefetch_factor=2, multiprocessing_context="fork")
        self.batch, self.it = cfg.batch_size, iter(loader)
        self.loader = loader

    def next(self, n):
        if n != self.batch:
            raise ValueError(f"batch of {n} asked from a stream of {self.batch}")
        x, y = next(self.it)
        return x.numpy(), y.numpy()


STREAM = None  # one window stream for all chunks: data loaded (and workers started) once


def cached_stream(cfg, rng):
    global STREAM
    if STREAM is None:
        STREAM = ParallelStream(cfg, rng) if workers else ORIG_STREAM(cfg, rng)
    return STREAM


def batches(stream, n):
    return stream.next(n) if isinstance(stream, ParallelStream) else ORIG_BATCH(stream, n)


PATCHED = ORIG_STREAM is not None and ORIG_BATCH is not None
if PATCHED:
    temporal._window_stream, temporal.batch_windows = cached_stream, batches
elif workers:
    log.warning("train.temporal has no _window_stream/batch_windows any more: single-process windows")
    workers = 0


# --- training -----------------------------------------------------------------------------
last = Path(cfg.out_dir) / "last.pt"
chunks = []
ran = cfg  # the config of the last invocation (its steps)
stopped = None  # why training ended before its plan (the watchdog)


class Overtime(BaseException):
    """Raised by the watchdog (SIGALRM) inside the training loop: past the hard limit."""


def alarm(signum, frame):
    raise Overtime()


def state() -> tuple[int, float]:
    """(step, train_seconds) of the run's checkpoint; (0, 0) before the first."""
    if not last.is_file():
        return 0, 0.0
    ckpt = read_checkpoint(last)
    return int(ckpt["step"]), float(ckpt["extra"].get("train_seconds", 0.0))


def deliver() -> None:
    """The checkpoint and the summary to OUT (after every chunk: a killed run keeps them)."""
    if not last.is_file():
        return
    step, seconds = state()
    tmp = out / "last.pt.tmp"
    shutil.copyfile(last, tmp)
    os.replace(tmp, out / "last.pt")
    trained = sum(c["to"] - c["from"] for c in chunks)
    summary = {"config": str(args.config), "train_cfg": asdict(replace(ran, stop_at=0)), "steps_done": step,
               "train_seconds": seconds, "wall_seconds": round(time.time() - T0, 1), "stopped": stopped,
               "workers": workers, "chunks": chunks, "losses": LOSSES[-12:],
               "windows_per_s": round(trained * cfg.batch_size / max(1e-9, sum(c["train_s"] for c in chunks)), 2),
               "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
               "cpus": os.cpu_count(), "host": platform.node(), "data": os.environ["STREAM_DERAIN_DATA"],
               "shm_free_gib": round(shm_free / 2**30, 1)}
    (out / "gpu_train.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")


def train(steps: int, stop_at: int = 0) -> None:
    """One train_temporal invocation; worker failure: the rest single-process."""
    global workers, STREAM, ran
    step0, sec0 = state()
    t = time.time()
    c = ran = replace(cfg, steps=steps, stop_at=stop_at)
    try:
        temporal.train_temporal(c)
    except Exception as exc:  # noqa: BLE001 - not Overtime (a BaseException)
        if workers == 0:
            raise
        log.warning("window workers failed (%s: %s): going on single-process from %s", type(exc).__name__,
                    exc, last)
        workers, STREAM = 0, None
        temporal.train_temporal(c)
    step1, sec1 = state()
    chunks.append({"from": step0, "to": step1, "steps_target": steps, "wall_s": round(time.time() - t, 2),
                   "train_s": round(sec1 - sec0, 2), "workers": workers})
    log.info("chunk %d -> %d: %.1f s training, %.1f s wall", step0, step1, sec1 - sec0, time.time() - t)
    deliver()


def seconds_per_step() -> float:
    """From the latest chunks (at least 20 s of training where there is): the speed now."""
    steps = secs = 0.0
    for c in reversed(chunks[1:]):  # the first chunk holds the start-up
        if c["to"] > c["from"]:
            steps, secs = steps + c["to"] - c["from"], secs + c["train_s"]
            if secs >= 20:
                break
    if not steps:
        sys.exit("gpu_train: no step was trained while measuring the speed")
    return secs / steps


def time_budget() -> None:
    deadline = T0 + 60 * args.minutes - 10  # the last checkpoint and the copy to OUT after it
    start, _ = state()
    # two short chunks inside the warm-up (where the LR does not depend on ``steps``) measure
    # the speed; a resumed run past its warm-up restarts its cosine here (a warm restart)
    first = max(cfg.steps, start + 100)
    train(first, start + 5)  # workers up, cuDNN tuned, data loaded: not timed
    train(first, start + 30)
    while True:
        per_step = seconds_per_step()
        overhead = max(c["wall_s"] - c["train_s"] for c in chunks[1:])  # a restart's cost
        now_step, left = state()[0], deadline - time.time() - overhead
        if left < 5 * per_step:
            break
        target = now_step + int(left / per_step)  # where the schedule ends
        chunk = max(10, int(args.chunk_seconds / per_step))
        stop = target if target - now_step < 1.5 * chunk else now_step + chunk  # no stub of a last chunk
        log.info("%.3f s/step: aiming at step %d (%.0f s left), this chunk to %d", per_step, target, left, stop)
        train(target, stop)
        if stop >= target:
            break


# the watchdog: training that runs past the budget (the speed fell) is cut at the last
# checkpoint (every ckpt_every steps), which still goes to OUT
signal.signal(signal.SIGALRM, alarm)
if not args.steps:
    signal.alarm(max(1, int(60 * args.minutes + args.grace - (time.time() - T0))))
try:
    if args.steps:
        train(args.steps)
    else:
        time_budget()
except Overtime:
    stopped = f"watchdog: past {args.minutes:g} min + {args.grace:g} s; the last checkpoint is kept"
    log.warning("%s", stopped)
finally:
    signal.alarm(0)
deliver()
step, seconds = state()
log.info("done: step %d after %.0f s of training (%.0f s wall); %s and the log in %s", step, seconds,
         time.time() - T0, last, out)
PY
