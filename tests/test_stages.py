"""The stages (stream_derain.stages): the device frame path (frames stay on the backend's
device) gives the same video as the host path. Runs with torch on the CPU here, and on
CUDA when there is a GPU."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from stream_derain.backends import create_backend
from stream_derain.derain import DerainConfig, derain_video
from stream_derain.engine_spec import EngineSpec
from stream_derain.io.video import EncodeOptions, FrameItem, VideoReader
from stream_derain.stages import InferStage


def frames(path):
    return np.stack([it.image for it in VideoReader(path).items()])


@pytest.mark.parametrize("smooth", [False, True], ids=["raw", "smoothed"])
def test_device_path_matches_host_path(make_clip, tiny_model, tmp_path, smooth):
    pytest.importorskip("torch")
    src = make_clip("in.mp4", frames=8, size=(70, 46), audio=False)
    outs = {}
    for device_frames in (False, True):
        out = tmp_path / f"out_{device_frames}.mkv"
        cfg = DerainConfig(input=src, output=out, encode=EncodeOptions(codec="ffv1"),
                           engine=EngineSpec(smooth=smooth, batch=3, device_frames=device_frames))
        with create_backend("torch", tiny_model) as be:
            result = derain_video(cfg, be)
        assert result.frames == 8
        outs[device_frames] = frames(out)
        names = [s.name for s in result.stages]
        assert ("download" in names) == device_frames
    diff = np.abs(outs[True].astype(int) - outs[False])
    if smooth:  # the smoothers' documented tolerance (stream_derain/smooth/gpu.py)
        assert diff.mean() < 0.5 and np.mean(diff <= 3) > 0.995, (diff.mean(), diff.max())
    else:
        assert diff.max() <= 2 and diff.mean() < 0.1


@pytest.mark.gpu
def test_cuda_backend_uses_the_device_path(make_clip, tiny_model, tmp_path):
    pytest.importorskip("torch")
    src = make_clip("in.mp4", frames=4, audio=False)
    with create_backend("torch", tiny_model) as be:
        assert be.device.startswith("cuda")
        result = derain_video(DerainConfig(input=src, output=tmp_path / "o.mp4"), be)
    assert "download" in [s.name for s in result.stages]


class Identity:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        return batch


def items(n: int, start: float = 1000.0) -> list[FrameItem]:
    rng = np.random.default_rng(1)
    return [FrameItem(i, None, None, rng.integers(0, 255, (48, 64, 3), np.uint8), captured=start + i / 25)
            for i in range(n)]


def test_latency_policy_drops_a_late_frame_and_hands_on_its_discontinuity() -> None:
    """Live: a reconnect's first frame may be dropped for latency: the smoother must still reset."""
    inq: queue.Queue = queue.Queue()
    stage = InferStage(threading.Event(), inq, queue.Queue(), Identity(), max_latency_s=0.5)
    old, new = items(2, start=time.monotonic() - 5.0)
    old.discontinuity = True
    inq.put(new)
    assert stage.work(old) == [] and stage.dropped_late == 1  # too old, a newer one waits
    assert stage.work(inq.get_nowait()) == [new] and new.discontinuity


def test_files_never_drop_and_batch_what_waits() -> None:
    inq: queue.Queue = queue.Queue()
    backend = Identity()
    stage = InferStage(threading.Event(), inq, queue.Queue(), backend, batch=3, keep_input=False)
    frames_ = items(5, start=time.monotonic() - 60.0)  # very old: no latency policy, nothing dropped
    for it in frames_[1:]:
        inq.put(it)
    out = stage.work(frames_[0])
    while not inq.empty():
        out += stage.work(inq.get_nowait())
    out += stage.finish()
    assert out == frames_ and stage.dropped_late == 0 and backend.calls == [3, 2]
    assert all(it.rainy is None for it in out)


# --- multi-frame models: the window on the host and device paths ----------------------------------

@pytest.fixture(scope="module")
def multi_dir(tmp_path_factory):
    pytest.importorskip("onnx")
    from multiframe_models import write_models

    return write_models(tmp_path_factory.mktemp("multiframe"))


def multi_model(folder, name):
    from stream_derain.catalog import load_model_info

    return load_model_info(name, folder)


def distinct(n: int, size: tuple[int, int] = (18, 26), start: float | None = None) -> list[FrameItem]:
    """Frames each of its own (random) content; ``captured`` now unless given."""
    rng = np.random.default_rng(7)
    t = time.monotonic() if start is None else start
    return [FrameItem(i, i * 40, None, rng.integers(0, 256, (*size, 3), np.uint8), captured=t)
            for i in range(n)]


def drive(stage: InferStage, stream: list) -> list:
    """What the stage passes on for ``stream``, all of it queued at once (as a fast decoder)."""
    for it in stream:
        stage.inq.put(it)
    out = []
    while not stage.inq.empty():
        out += stage.work(stage.inq.get_nowait())
    return out + stage.finish()


@pytest.mark.parametrize("mode", ["centred", "causal"])
@pytest.mark.parametrize("slot", [0, 1, 2, 3, 4])
def test_each_slot_holds_the_frame_at_its_offset(multi_dir, mode, slot) -> None:
    """slot{j}-k5 outputs the frame of slot j: each frame comes out as the input at its
    offset, clamped into the video (nearest frame at the start and end)."""
    model = multi_model(multi_dir, f"slot{slot}-k5")
    offset = model.window(mode)[slot]
    src = distinct(9)
    inputs = [it.image for it in src]
    with create_backend("onnxruntime", model) as be:
        stage = InferStage(threading.Event(), queue.Queue(), queue.Queue(), be, batch=3, mode=mode)
        out = drive(stage, src)
    assert [it.index for it in out] == list(range(9))
    for i, it in enumerate(out):
        assert np.array_equal(it.image, inputs[min(max(i + offset, 0), 8)]), (mode, slot, i)
        assert it.rainy is inputs[i]  # the target's input, for the smoother


@pytest.mark.parametrize("mode, shows", [("causal", range(6, 11)), ("centred", range(4, 9))])
def test_causal_windows_never_read_a_later_frame(multi_dir, mode, shows) -> None:
    """max-k5 shows a bright marker wherever the window read the frame holding it."""
    src = distinct(12)
    for it in src:
        it.image = (it.image // 4).astype(np.uint8)
    src[6].image[5:8, 5:8] = 255
    with create_backend("onnxruntime", multi_model(multi_dir, "max-k5")) as be:
        out = drive(InferStage(threading.Event(), queue.Queue(), queue.Queue(), be, batch=2, mode=mode), src)
    marked = [it.index for it in out if it.image[5:8, 5:8].min() == 255]
    assert marked == list(shows)


def test_packets_keep_their_place_among_multi_frame_windows(multi_dir) -> None:
    src = distinct(6)
    stream = [x for it in src for x in (f"packet{it.index}", it)]
    with create_backend("onnxruntime", multi_model(multi_dir, "slot2-k5")) as be:
        out = drive(InferStage(threading.Event(), queue.Queue(), queue.Queue(), be, batch=4), stream)
    assert out == stream


def test_a_frame_dropped_for_latency_cuts_the_window(multi_dir) -> None:
    """Live: frame 2 is skipped for latency; frame 3's window (causal, slot 1 = offset -1)
    starts afresh instead of reading frame 1 across the gap."""
    src = distinct(4)
    src[2].captured -= 10.0
    inputs = [it.image for it in src]
    with create_backend("onnxruntime", multi_model(multi_dir, "slot1-k5")) as be:
        stage = InferStage(threading.Event(), queue.Queue(), queue.Queue(), be, max_latency_s=1.0,
                           mode="causal")
        out = drive(stage, src)
    assert [it.index for it in out] == [0, 1, 3] and stage.dropped_late == 1
    assert np.array_equal(out[1].image, inputs[0]) and np.array_equal(out[2].image, inputs[3])


def test_single_frame_models_have_no_window(tiny_model) -> None:
    with create_backend("onnxruntime", tiny_model) as be:
        stage = InferStage(threading.Event(), queue.Queue(), queue.Queue(), be, batch=2, mode="causal")
        assert stage.window is None
        assert stage.work("packet") == ["packet"]  # straight on, as before


def decoded(path):
    reader = VideoReader(path)
    try:
        return [it for it in reader.items() if isinstance(it, FrameItem)]
    finally:
        reader.close()


@pytest.mark.parametrize("window, offset", [("auto", 1), ("causal", -2)])
def test_file_pipeline_with_a_multi_frame_model(multi_dir, make_clip, tmp_path, window, offset) -> None:
    """Frame count, timestamps (variable frame rate) and audio come through unchanged; each
    output frame is the input at the model's slot offset (slot 2: +1 centred, -2 causal)."""
    import av

    src = make_clip("vfr.mp4", frames=10, size=(64, 48), pts_steps=[40, 40, 80])
    out = tmp_path / f"out_{window}.mkv"
    cfg = DerainConfig(input=src, output=out, engine=EngineSpec(smooth=False, batch=3, window=window),
                       encode=EncodeOptions(codec="ffv1"))
    with create_backend("onnxruntime", multi_model(multi_dir, "slot2-k5")) as be:
        assert derain_video(cfg, be).frames == 10
    ins, outs = decoded(src), decoded(out)
    def times(items):  # relative to the first frame (the containers' start offsets differ)
        return [round(float(it.pts * it.time_base - items[0].pts * items[0].time_base), 6) for it in items]

    assert times(outs) == times(ins) and len(set(np.diff(times(ins)).round(6))) == 2  # VFR kept
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1
    for i, it in enumerate(outs):
        j = min(max(i + offset, 0), 9)  # the nearest frame of the video
        near, far = (np.abs(it.image - ins[k].image.astype(int)).mean() for k in (j, i))
        assert near < 2.5 and (j == i or near < far / 3), (i, near, far)


class TorchSlot:
    """A device-tensor backend on the CPU whose output is the frame of one slot (as the
    slot models), with the host path through the same slicing."""

    name, precision = "torch-slot", "fp32"

    def __init__(self, model, slot: int) -> None:
        from stream_derain.backends.base import Capabilities

        self.model, self.slot, self.device = model, slot, "cpu"
        self.capabilities = Capabilities(device_tensors=True)

    def infer_tensor(self, x):
        assert x.shape[1] == self.model.channels
        return x[:, 3 * self.slot:3 * self.slot + 3].clone()


@pytest.mark.parametrize("mode", ["centred", "causal"])
def test_device_path_windows_upload_each_frame_once(multi_dir, mode) -> None:
    torch = pytest.importorskip("torch")
    from stream_derain.stages import DeviceInferStage

    model = multi_model(multi_dir, "slot4-k5")
    offset = model.window(mode)[4]
    src = distinct(10, size=(17, 22))
    inputs = [it.image for it in src]
    stage = DeviceInferStage(threading.Event(), queue.Queue(), queue.Queue(), TorchSlot(model, 4), batch=3,
                             mode=mode)
    out = drive(stage, src)
    assert [it.index for it in out] == list(range(10)) and stage.uploads == 10
    for i, it in enumerate(out):
        assert isinstance(it.image, torch.Tensor) and tuple(it.image.shape) == (3, 17, 22)
        want = inputs[min(max(i + offset, 0), 9)]
        assert np.array_equal(it.image.permute(1, 2, 0).numpy(), want)
        assert np.array_equal(it.rainy.permute(1, 2, 0).numpy(), inputs[i])


@pytest.mark.parametrize("smooth", [False, True], ids=["raw", "smoothed"])
def test_device_and_host_paths_agree_on_a_multi_frame_model(multi_dir, make_clip, tmp_path, smooth) -> None:
    pytest.importorskip("torch")
    src = make_clip("in.mp4", frames=9, size=(70, 46), audio=False)
    model = multi_model(multi_dir, "slot2-k5")
    outs = {}
    for device_frames in (False, True):
        out = tmp_path / f"out_{device_frames}.mkv"
        cfg = DerainConfig(input=src, output=out, encode=EncodeOptions(codec="ffv1"),
                           engine=EngineSpec(smooth=smooth, batch=2, device_frames=device_frames))
        if device_frames:
            result = derain_video(cfg, TorchSlot(model, 2))
        else:
            with create_backend("onnxruntime", model) as be:
                result = derain_video(cfg, be)
        assert result.frames == 9 and ("download" in [s.name for s in result.stages]) == device_frames
        outs[device_frames] = frames(out)
    diff = np.abs(outs[True].astype(int) - outs[False])
    if smooth:  # the smoothers' documented tolerance (stream_derain/smooth/gpu.py)
        assert diff.mean() < 0.5 and np.mean(diff <= 3) > 0.995, (diff.mean(), diff.max())
    else:
        assert diff.max() <= 1


# --- explicit alignment ("align": "flow"): neighbours warped onto the target --------------------

def pan(n: int = 8, size: tuple[int, int] = (96, 128), step: int = 3) -> list[FrameItem]:
    """A steady pan over a textured picture (blurred noise): frame i is the crop ``step * i``
    pixels further right."""
    import cv2

    rng = np.random.default_rng(11)
    h, w = size
    noise = cv2.GaussianBlur(rng.random((h + 8, w + step * n + 8, 3)).astype(np.float32), (0, 0), 2.0)
    pic = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    t = time.monotonic()
    return [FrameItem(i, i * 40, None, np.ascontiguousarray(pic[4:4 + h, 4 + step * i:4 + step * i + w]),
                      captured=t) for i in range(n)]


def host_image(image) -> np.ndarray:
    """An output frame as HxWx3 uint8 numpy (device frames: 3xHxW tensors)."""
    return image if isinstance(image, np.ndarray) else image.permute(1, 2, 0).numpy()


def run_slot1(model, device: bool, src: list[FrameItem]) -> tuple[list, InferStage]:
    """``src`` through the infer stage (centred: slot 1 is the previous frame)."""
    from stream_derain.stages import DeviceInferStage

    if device:
        backend = TorchSlot(model, 1)
        stage = DeviceInferStage(threading.Event(), queue.Queue(), queue.Queue(), backend, batch=3)
        return drive(stage, src), stage
    with create_backend("onnxruntime", model) as be:
        stage = InferStage(threading.Event(), queue.Queue(), queue.Queue(), be, batch=3)
        return drive(stage, src), stage


@pytest.mark.parametrize("mode", ["flow", "flow-medium", "flow-chain"])
@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
def test_flow_alignment_brings_the_previous_frame_onto_the_target(multi_dir, device, mode) -> None:
    """slot1-k5 outputs the previous frame: 3 px away on a pan; slot1-k5-flow (the same
    model, "align": "flow") the previous frame warped onto the target, which is close to
    it away from the borders; likewise with the medium flow. The device path aligns on the
    host and uploads each window."""
    if device:
        pytest.importorskip("torch")
    errors, outs = {}, {}
    aligned = f"slot1-k5-{mode}"
    for name in ("slot1-k5", aligned):
        src = pan()
        inputs = [it.image for it in src]
        out, stage = run_slot1(multi_model(multi_dir, name), device, src)
        assert [it.index for it in out] == list(range(8))  # frame count and order unchanged
        assert stage.align == (mode if name == aligned else None)
        assert all(np.array_equal(host_image(it.rainy), inputs[i]) for i, it in enumerate(out))
        outs[name] = [host_image(it.image) for it in out]
        b = 16  # border: the warp replicates the edge where the previous frame has no content
        errors[name] = np.mean([np.abs(o.astype(int) - inputs[i])[b:-b, b:-b].mean()
                                for i, o in enumerate(outs[name]) if i > 0])
        if device:  # each frame uploaded once, aligned or not
            assert stage.uploads == 8
    assert errors["slot1-k5"] > 10 and errors[aligned] < errors["slot1-k5"] / 2, errors
    assert np.array_equal(outs[aligned][0], pan()[0].image)  # frame 0's slot 1 is itself
    if device:  # the host path's frames, but for grid_sample's arithmetic against cv2.remap's
        host, _ = run_slot1(multi_model(multi_dir, aligned), False, pan())
        diff = np.stack([np.abs(o.astype(int) - h.image) for o, h in zip(outs[aligned], host)])
        assert diff.mean() < 0.5 and (diff <= 3).mean() > 0.999, (diff.mean(), diff.max())


def test_a_one_frame_video_computes_no_flow(multi_dir, monkeypatch) -> None:
    """A lone frame's window is that frame in every slot: nothing to align."""
    import stream_derain.window as window

    def fail(slots):
        raise AssertionError("align_window called on a still window")

    monkeypatch.setattr(window, "align_window", fail)
    src = pan(1)
    out, stage = run_slot1(multi_model(multi_dir, "slot1-k5-flow"), False, src)
    assert stage.align and [it.index for it in out] == [0]
    assert np.array_equal(out[0].image, out[0].rainy)
