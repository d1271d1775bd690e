"""The GPU check of issue 29 (point 5): torch on CUDA, without TensorRT, PyAV or a network.

One JSON report (``device_check.json`` in ``--out``) with:

- ``engine``: the torch backend's ``infer`` (uint8 frames in and out, host copies
  included: what ``stream-derain bench --mode engine`` times) at 720p and 1080p, batch 1
  and 4, in fp16, bf16 and fp32; rows as the bench writes them (:mod:`stream_derain.bench.engine`).
  The product's torch backend runs fp32 and fp16 only: bf16 is measured here through a
  subclass that casts the same network to bfloat16 (``TorchBF16Backend``);
- ``engine_device``: the network alone on a device tensor (``infer_tensor``, CUDA events):
  the ceiling without the host's pre/post-processing and copies;
- ``accuracy``: each precision's output against fp32 (PSNR on 8-bit frames);
- ``smoother``: the GPU smoother (:class:`~stream_derain.smooth.gpu.TorchTemporalSmoother`,
  frames on the device) and, for reference, the CPU one, per resolution;
- ``pipeline``: the end-to-end pipeline with frames kept on the device
  (:func:`stream_derain.stages.frame_stages` with ``device_frames``: upload once, infer,
  GPU smoother, download) fed with in-memory frames by the pipeline's own decode stage
  and ending in a sink that only counts (there is no PyAV to decode or encode a file),
  with the bench's isolated stages (:mod:`stream_derain.bench.e2e`) on the same frames.
  The frames are synthetic: a textured scene panning under moving streaks.

PyAV: :mod:`stream_derain.io` imports ``av`` at import time, and nothing measured here
calls it. Where it is missing (or with ``--stub-av``) an empty stand-in module is put in
``sys.modules['av']`` so the stages import; ``report['pyav']`` says which.

Every section is timed against ``--budget-s`` (default 390 s): what no longer fits is
recorded as skipped, so the check ends in time (issue 29 asks for under 8 minutes).
``--cpu-dry-run`` runs the same code on the CPU at tiny sizes (fp32 and bf16; fp16 is
recorded as skipped): tests/test_gpu_scripts.py runs it.

    python3 scripts/device_check.py --out "$OUT"        # on the GPU machine
    bash scripts/device_check.sh                        # the same, writing to $OUT
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import time
import traceback
import types
from fractions import Fraction
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

log = logging.getLogger("device_check")
SCHEMA = "stream-derain-device-check/1"
RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
DRY_RESOLUTIONS = {"dry": (128, 72)}  # the smoother needs 64 px a side


def stub_av() -> bool:
    """Put an empty ``av`` module in ``sys.modules`` unless PyAV imports; True if stubbed."""
    if "av" in sys.modules and not getattr(sys.modules["av"], "__device_check_stub__", False):
        return False

    def missing(name: str) -> Any:
        raise AttributeError(f"av.{name}: PyAV is not installed (device_check's stand-in module)")

    mod = types.ModuleType("av")
    mod.__spec__ = None  # importlib.util.find_spec('av') -> ValueError: devices.has_module says absent
    mod.__device_check_stub__ = True
    mod.__getattr__ = missing  # type: ignore[attr-defined]
    sys.modules["av"] = mod
    return True


def pyav_state(force_stub: bool) -> str:
    if force_stub:
        stub_av()
        return "stubbed (--stub-av)"
    if importlib.util.find_spec("av") is not None:
        try:
            import av  # noqa: F401

            return "installed"
        except ImportError:
            pass
    stub_av()
    return "absent: stubbed"


class Deadline:
    """Seconds left of the check's budget; sections ask before they start."""

    def __init__(self, budget_s: float) -> None:
        self.end = time.monotonic() + budget_s

    def left(self) -> float:
        return self.end - time.monotonic()

    def allows(self, need_s: float) -> bool:
        return self.left() >= need_s


# --- frames ----------------------------------------------------------------------------
def synthetic_video(width: int, height: int, frames: int, seed: int = 0) -> list:
    """``frames`` HxWx3 uint8 frames: a textured scene panning (3 px right, 1 px down a
    frame) under bright streaks falling 9 px a frame (a fixed streak field, scrolled)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    ch, cw = height + frames + 8, width + 3 * frames + 8
    scene = np.zeros((ch, cw, 3), np.float32)
    for cells, amp in ((4, 90.0), (16, 50.0), (64, 25.0), (256, 12.0)):
        small = rng.uniform(-1, 1, (max(2, ch * cells // cw), cells, 3)).astype(np.float32)
        scene += amp * cv2.resize(small, (cw, ch), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):  # edges: boxes of flat colour
        x, y = int(rng.integers(0, cw - 40)), int(rng.integers(0, ch - 40))
        cv2.rectangle(scene, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 120))),
                      tuple(float(v) for v in rng.uniform(-60, 60, 3)), -1)
    scene = np.clip(scene + 110.0, 0, 255)
    rh = height + 9 * frames + 8
    rain = np.zeros((rh, width), np.float32)
    for _ in range(max(50, width * rh // 2500)):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, rh))
        length = int(rng.integers(6, 30))
        cv2.line(rain, (x, y), (x + length // 6, y + length), float(rng.uniform(40, 120)), 1)
    rain = cv2.GaussianBlur(rain, (0, 0), 0.7)[..., None]
    out = []
    for t in range(frames):
        bg = scene[t:t + height, 3 * t:3 * t + width]
        streaks = rain[rh - height - 9 * t - 8:rh - 9 * t - 8]
        out.append(np.clip(bg + streaks, 0, 255).astype(np.uint8))
    return out


def frame_items(frames: list) -> list:
    from stream_derain.io.frames import FrameItem

    now = time.monotonic()
    return [FrameItem(index=i, pts=i, time_base=Fraction(1, 25), image=f, duration=1, captured=now)
            for i, f in enumerate(frames)]


# --- backends ------------------------------------------------------------------------------
def bf16_backend_class() -> type:
    """The torch backend with its network cast to bfloat16 (the product's runs fp32/fp16)."""
    import torch

    from stream_derain.backends.base import Capabilities
    from stream_derain.backends.torch import TorchBackend

    class TorchBF16Backend(TorchBackend):
        capabilities = Capabilities(precisions=("bf16",), device_tensors=True)

        def activate(self) -> None:
            self.precision = "fp32"
            try:
                super().activate()
            finally:
                self.precision = "bf16"
            self.net = self.net.to(torch.bfloat16)
            self._dtype = torch.bfloat16

    return TorchBF16Backend


def make_backend(model: Any, precision: str, device: str) -> Any:
    from stream_derain.backends.torch import TorchBackend

    if precision == "bf16":
        return bf16_backend_class()(model, "bf16", device=device)
    return TorchBackend(model, precision, device=device)


def start(model: Any, precision: str, device: str) -> tuple[Any, str | None]:
    """An activated backend, or (None, why not)."""
    if precision == "fp16" and not device.startswith("cuda"):
        return None, "fp16 with the torch backend needs a CUDA device"
    try:
        backend = make_backend(model, precision, device)
        backend.__enter__()
        return backend, None
    except Exception as exc:  # noqa: BLE001 - reported as a row
        return None, f"{type(exc).__name__}: {exc}"


def sync_of(device: str):  # noqa: ANN201
    from stream_derain.devices import cuda_torch

    torch = cuda_torch(device)
    return torch.cuda.synchronize if torch is not None else None


# --- sections --------------------------------------------------------------------------------
def engine_section(model: Any, device: str, precisions: list[str], resolutions: dict[str, tuple[int, int]],
                   batches: tuple[int, ...], budget_s: float, deadline: Deadline) -> dict[str, list]:
    """Rows of the bench's engine mode and of the network alone on device tensors."""
    import torch

    from stream_derain.backends.base import pad_amounts
    from stream_derain.bench.engine import failed_case, run_engine, synthetic_batch
    from stream_derain.bench.timing import LoopPlan, latency_stats, make_timer, measure

    plan = LoopPlan(warmup=3, iters=0, budget_s=budget_s, min_iters=3 if budget_s < 1 else 5, max_iters=2000)
    rows: list[dict] = []
    device_rows: list[dict] = []
    accuracy: list[dict] = []
    reference: dict[str, Any] = {}
    cases = [(w, h) for w, h in resolutions.values()]
    for precision in precisions:
        variant = {"variant": f"torch/{precision}", "backend": "torch", "precision": precision,
                   "device": device}
        need = len(cases) * len(batches) * (budget_s + 3) * 2
        if not deadline.allows(need):
            reason = f"budget: {deadline.left():.0f} s left, about {need:.0f} s needed"
            rows += [{**variant, **failed_case({}, w, h, b, "skipped", reason)}
                     for w, h in cases for b in batches]
            continue
        backend, why = start(model, precision, device)
        if backend is None:
            rows += [{**variant, **failed_case({}, w, h, b, "skipped", why)}
                     for w, h in cases for b in batches]
            continue
        try:
            variant["device"] = str(backend.device)
            rows += run_engine(backend, variant, tuple(cases), batches, plan)
            for w, h in cases:  # accuracy against fp32 on one frame per size (slot 0 of a window)
                frame = synthetic_batch(w, h, 1, seed=7, frames=model.frames)
                out = backend.infer(frame)
                key = f"{w}x{h}"
                if precision == "fp32":
                    reference[key] = out
                elif key in reference:
                    accuracy.append({"precision": precision, "resolution": key,
                                     "psnr_db_vs_fp32": psnr(out, reference[key])})
            timer = make_timer(str(backend.device))
            for w, h in cases:  # the network alone: a padded device tensor in, no host copies
                for b in batches:
                    ph, pw = pad_amounts(h, w, model.multiple)
                    x = torch.rand(b, model.channels, h + ph, w + pw, device=backend.device)
                    try:
                        samples = measure(lambda x=x: backend.infer_tensor(x), plan, timer)
                        fps = b * len(samples) / sum(samples)
                        device_rows.append({**variant, "resolution": f"{w}x{h}", "batch": b, "status": "ok",
                                            "fps": round(fps, 2), "mpix_per_s": round(fps * w * h / 1e6, 1),
                                            "latency_ms": latency_stats(samples), "iters": len(samples),
                                            "timer": timer.kind})
                    except Exception as exc:  # noqa: BLE001
                        device_rows.append({**variant, "resolution": f"{w}x{h}", "batch": b,
                                            "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
                    del x
        finally:
            backend.__exit__(None, None, None)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return {"engine": rows, "engine_device": device_rows, "accuracy": accuracy}


def psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return round(10 * np.log10(255.0 ** 2 / mse), 2) if mse > 0 else 100.0


def smoother_section(model: Any, device: str, videos: dict[str, list], deadline: Deadline) -> list[dict]:
    """The GPU smoother on device frames and the CPU one on host frames, after fp32 inference."""
    from stream_derain.bench.e2e import infer_only, smooth_only

    rows = []
    backend, why = start(model, "fp16" if device.startswith("cuda") else "fp32", device)
    if backend is None:
        return [{"status": "skipped", "reason": why}]
    try:
        for name, frames in videos.items():
            if not deadline.allows(20):
                rows.append({"resolution": name, "status": "skipped", "reason": "budget"})
                continue
            gpu_dev = device if device.startswith("cuda") else "torch-cpu"
            for kind, on_device, smoother_device in (("gpu" if device.startswith("cuda") else "torch-cpu",
                                                      True, gpu_dev), ("cpu", False, "cpu")):
                try:
                    _, derained = infer_only(backend, frame_items(frames), 4, True, on_device)
                    sync = sync_of(device) if on_device else None
                    stats, _ = smooth_only(make_default_smoother(smoother_device), derained, sync)
                    h, w = frames[0].shape[:2]
                    rows.append({"smoother": kind, "device": smoother_device, "resolution": f"{w}x{h}",
                                 **stats})
                except Exception as exc:  # noqa: BLE001
                    rows.append({"smoother": kind, "device": smoother_device, "resolution": name,
                                 "status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                                 "trace": traceback.format_exc(limit=3)})
    finally:
        backend.__exit__(None, None, None)
    return rows


def make_default_smoother(device: str) -> Any:
    from stream_derain.smooth.core import DEFAULT_STRENGTH
    from stream_derain.stages import make_smoother

    return make_smoother(DEFAULT_STRENGTH, device)


def counting_sink(p: Any, inq: Any, shape: tuple[int, int]) -> Any:
    """The pipeline's last stage where the encoder would be: counts the frames and checks
    that each is an HxWx3 uint8 array on the host."""
    import numpy as np

    from stream_derain.io.frames import FrameItem
    from stream_derain.pipeline import Stage

    class Sink(Stage):
        def __init__(self) -> None:
            super().__init__("sink", p.stop, inq, None)
            self.frames, self.bad, self.means = 0, 0, []

        def work(self, item: Any) -> list:
            if isinstance(item, FrameItem):
                img = item.image
                ok = isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == (*shape, 3)
                self.bad += not ok
                if ok and self.frames % 16 == 0:
                    self.means.append(float(img.mean()))
                self.frames += 1
            return []

    return Sink()


def run_pipeline(backend: Any, frames: list, batch: int, smooth: bool, device_frames: bool) -> dict[str, Any]:
    """decode (in-memory frames) -> infer -> smooth -> download -> counting sink."""
    import queue

    from stream_derain.bench.timing import SystemClock, usable_cores
    from stream_derain.pipeline import Pipeline
    from stream_derain.stages import QUEUE_SIZE, DecodeStage, frame_stages

    items = frame_items(frames)
    h, w = frames[0].shape[:2]
    p = Pipeline()
    decoded: queue.Queue = queue.Queue(QUEUE_SIZE)
    p.add(DecodeStage(p.stop, p.source_stop, decoded, lambda: iter(items)))
    out, infer = frame_stages(p, decoded, backend, batch=batch, smooth=smooth, device_frames=device_frames)
    sink = p.add(counting_sink(p, out, (h, w)))
    with SystemClock(sync_of(str(backend.device))) as clock:
        res = p.run(lambda: sink.frames)
    if sink.frames != len(frames) or sink.bad:
        raise RuntimeError(f"pipeline delivered {sink.frames} of {len(frames)} frames, {sink.bad} malformed")
    return {"frames": res.frames, "seconds": round(res.seconds, 4), "fps": round(res.fps, 2),
            **clock.as_dict(usable_cores()),
            "uploads": getattr(infer, "uploads", None),
            "output_mean_levels": round(sum(sink.means) / max(1, len(sink.means)), 2),
            "input_mean_levels": round(float(sum(f.mean() for f in frames[::16]) / len(frames[::16])), 2),
            "stages": [s.as_dict() for s in res.stages]}


def pipeline_section(model: Any, device: str, precisions: list[str], videos: dict[str, list],
                     batches: tuple[int, ...], deadline: Deadline) -> list[dict]:
    """The frames-on-device pipeline per precision, resolution, batch, with and without
    the smoother, after the bench's isolated stages on the same frames."""
    from stream_derain.bench.e2e import download_only, infer_only, smooth_only

    rows = []
    on_gpu = device.startswith("cuda")
    for precision in precisions:
        backend, why = start(model, precision, device)
        if backend is None:
            rows.append({"precision": precision, "status": "skipped", "reason": why})
            continue
        try:
            for name, frames in videos.items():
                h, w = frames[0].shape[:2]
                for batch in batches:
                    base = {"precision": precision, "device": str(backend.device), "resolution": f"{w}x{h}",
                            "batch": batch, "device_frames": True}
                    if not deadline.allows(25):
                        rows.append({**base, "status": "skipped", "reason": "budget"})
                        continue
                    try:
                        sync = sync_of(str(backend.device))
                        stages: dict[str, Any] = {}
                        stages["infer"], derained = infer_only(backend, frame_items(frames), batch, True,
                                                               True)
                        stages["smooth"], derained = smooth_only(make_default_smoother(
                            device if on_gpu else "torch-cpu"), derained, sync)
                        stages["download"], _ = download_only(derained, sync)
                        del derained
                        row = {**base, "status": "ok", "isolated_stages": stages}
                        for smooth in (True, False):
                            row["pipeline" if smooth else "pipeline_no_smooth"] = run_pipeline(
                                backend, frames, batch, smooth, device_frames=True)
                        if batch == max(batches):  # for comparison: host frames, the CPU smoother
                            row["pipeline_host_frames"] = run_pipeline(backend, frames, batch, True,
                                                                       device_frames=False)
                        rows.append(row)
                        log.info("pipeline %s %s batch %d: %.1f fps (%.1f without the smoother)", precision,
                                 name, batch, row["pipeline"]["fps"], row["pipeline_no_smooth"]["fps"])
                    except Exception as exc:  # noqa: BLE001
                        rows.append({**base, "status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                                     "trace": traceback.format_exc(limit=4)})
        finally:
            backend.__exit__(None, None, None)
    return rows


def environment(pyav: str) -> dict[str, Any]:
    import torch

    from stream_derain.bench.machine import machine_info
    from stream_derain.devices import has_module

    cuda = torch.cuda.is_available()
    props = torch.cuda.get_device_properties(0) if cuda else None
    return {"pyav": pyav, "tensorrt": has_module("tensorrt") or has_module("tensorrt_rtx"),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "gpu": props.name if props else None,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1) if props else None,
            "gpu_sms": props.multi_processor_count if props else None,
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "machine": machine_info()}


def summary_table(report: dict[str, Any]) -> list[str]:
    """Short lines for the end of the output."""
    lines = []
    for r in report.get("engine", []):
        if r.get("status") == "ok":
            lines.append(f"engine {r['variant']:<10} {r['resolution']:>9} b{r['batch']}: {r['fps']:8.1f} fps")
    for r in report.get("engine_device", []):
        if r.get("status") == "ok":
            lines.append(f"network {r['variant']:<9} {r['resolution']:>9} b{r['batch']}: {r['fps']:8.1f} fps "
                         "(device tensors)")
    for r in report.get("accuracy", []):
        lines.append(f"accuracy {r['precision']} {r['resolution']}: {r['psnr_db_vs_fp32']} dB vs fp32")
    for r in report.get("smoother", []):
        if r.get("status") == "ok":
            lines.append(f"smoother {r['smoother']:<9} {r['resolution']:>9}: {r['fps']:8.1f} fps")
    for r in report.get("pipeline", []):
        if r.get("status") == "ok":
            host = r.get("pipeline_host_frames")
            lines.append(f"pipeline {r['precision']} {r['resolution']:>9} b{r['batch']}: "
                         f"{r['pipeline']['fps']:8.1f} fps, {r['pipeline_no_smooth']['fps']:8.1f} without "
                         "smoother" + (f", {host['fps']:8.1f} with host frames" if host else ""))
    bad = [r for k in ("engine", "engine_device", "smoother", "pipeline") for r in report.get(k, [])
           if r.get("status") not in ("ok", None)]
    lines += [f"not ok: {r.get('variant') or r.get('precision') or r.get('smoother')} "
              f"{r.get('resolution', '')} {r['status']}: {r.get('reason')}" for r in bad]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / "runs" / "device_check"))
    ap.add_argument("--model", default=None, help="manifest name or ONNX path (default: the shipped default)")
    ap.add_argument("--cpu-dry-run", action="store_true", help="the same code on the CPU at tiny sizes")
    ap.add_argument("--stub-av", action="store_true",
                    help="use the stand-in av module even where PyAV is installed")
    ap.add_argument("--budget-s", type=float, default=0.0,
                    help="start no section after this long (0: 390 s; no limit in a dry run)")
    ap.add_argument("--case-seconds", type=float, default=1.5, help="timed seconds per engine case")
    ap.add_argument("--frames", type=int, default=0,
                    help="pipeline frames per resolution (0: 240, dry run 8)")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.StreamHandler(sys.stderr),
                                  logging.FileHandler(args.out / "device_check.log")], force=True)
    pyav = pyav_state(args.stub_av)
    import torch

    from stream_derain.catalog import resolve_model

    dry = args.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        log.error("torch sees no CUDA GPU: run with --cpu-dry-run to test on the CPU")
        return 2
    if not dry:
        torch.backends.cudnn.benchmark = True  # fixed sizes: let cuDNN pick its kernels
    device = "cpu" if dry else "cuda"
    deadline = Deadline(args.budget_s or (1e9 if dry else 390.0))
    if dry:
        torch.set_num_threads(1)  # tiny sizes: no thread pool to contend for
    model = resolve_model(args.model)
    resolutions = DRY_RESOLUTIONS if dry else RESOLUTIONS
    frames_n = args.frames or (8 if dry else 240)
    batches = (1, 2) if dry else (1, 4)
    precisions = ["fp32", "fp16", "bf16"]  # fp32 first: the accuracy reference
    report: dict[str, Any] = {"schema": SCHEMA, "dry_run": dry, "device": device,
                              "model": {"name": model.name, "version": model.version, "frames": model.frames,
                                        "macs_per_pixel": (model.meta or {}).get("macs_per_pixel")},
                              "environment": environment(pyav), "sections_s": {}}
    log.info("device check on %s (%s), model %s v%s (K=%d), PyAV %s", device, report["environment"]["gpu"] or
             "CPU", model.name, model.version, model.frames, pyav)

    def section(name: str, fn: Any) -> None:
        s0 = time.monotonic()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - one broken section never loses the others
            log.exception("%s failed", name)
            value = {name: [{"status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc(limit=6)}]}
        report.update(value)
        report["sections_s"][name] = round(time.monotonic() - s0, 1)
        (args.out / "device_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")

    section("engine", lambda: engine_section(model, device, precisions, resolutions, batches,
                                             0.2 if dry else args.case_seconds, deadline))
    videos: dict[str, list] = {}
    s0 = time.monotonic()
    for name, (w, h) in resolutions.items():
        videos[name] = synthetic_video(w, h, frames_n, seed=len(videos))
    report["sections_s"]["frames"] = round(time.monotonic() - s0, 1)
    section("smoother", lambda: {"smoother": smoother_section(model, device, videos, deadline)})
    section("pipeline", lambda: {"pipeline": pipeline_section(
        model, device, ["fp16", "bf16"] if not dry else ["fp32", "bf16"], videos, batches, deadline)})
    report["duration_s"] = round(time.monotonic() - t0, 1)
    report["summary"] = summary_table(report)
    (args.out / "device_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print("\n".join(report["summary"]))
    print(f"device check: {report['duration_s']} s; report {args.out / 'device_check.json'}")
    sections = ("engine", "smoother", "pipeline")
    failed = [r for k in sections for r in report.get(k, []) if r.get("status") == "failed"]
    empty = [k for k in sections if not any(r.get("status") == "ok" for r in report.get(k, []))]
    if empty:
        print(f"no case ran in: {', '.join(empty)}", file=sys.stderr)
    return 1 if failed or empty else 0


if __name__ == "__main__":
    sys.exit(main())
