"""The torch smoother matches the CPU smoother (torch on the CPU here; CUDA when present)."""

from __future__ import annotations

import numpy as np
import pytest
from smooth_frames import moving_square, rain_pair, texture

from stream_derain.smooth import DEFAULT_STRENGTH, TemporalSmoother, make_smoother

torch = pytest.importorskip("torch")

# documented tolerance (stream_derain/smooth/gpu.py): uint8 outputs differ by < 0.5 levels
# on average and 99.9% of values by at most 3 levels
MEAN_TOL, MAX_TOL, SHARE = 0.5, 3, 0.999


def sequence(rng: np.random.Generator, n: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rainy, derained) pairs: a panning textured background with a moving square under
    rain that the "network" leaves 40% of, and a cut to another scene at frame 6."""
    big = texture(rng, 140, 200, grain=4.0)
    other = np.clip(texture(rng).astype(int) // 2 + 120, 0, 255).astype(np.uint8)
    patch = np.clip(texture(rng, 32, 32, grain=1.5).astype(int) + 40, 0, 255).astype(np.uint8)
    frames = []
    for i in range(n):
        bg = big[10:130, 3 * i:3 * i + 160].copy() if i < 6 else other
        f, _ = moving_square(bg, patch, 1, 0, x0=8 + 7 * i)
        frames.append(rain_pair(f[0], rng, 0.4))
    return frames


def compare(device: str, rng: np.random.Generator) -> None:
    cpu = TemporalSmoother()
    gpu = make_smoother(DEFAULT_STRENGTH, device if device != "cpu" else "torch-cpu")
    changed = []
    for rainy, derained in sequence(rng):
        a = cpu(derained, rainy)
        to = lambda f: torch.from_numpy(f).permute(2, 0, 1).to(device)  # noqa: E731
        out = gpu(to(derained), to(rainy))
        assert out.dtype == torch.uint8 and out.device.type == torch.device(device).type
        b = out.permute(1, 2, 0).cpu().numpy()
        diff = np.abs(a.astype(int) - b)
        assert diff.mean() < MEAN_TOL
        assert (diff <= MAX_TOL).mean() >= SHARE
        changed.append(np.abs(a.astype(int) - derained).mean())
    assert max(changed) > 1.0  # the smoother did change frames: the agreement is not trivial
    assert cpu.resets == gpu.resets == 1  # both saw the cut


def test_torch_on_cpu_matches_cpu_smoother(rng: np.random.Generator) -> None:
    torch.set_num_threads(1)
    compare("cpu", rng)


@pytest.mark.gpu
def test_torch_on_cuda_matches_cpu_smoother(rng: np.random.Generator) -> None:
    compare("cuda", rng)


def test_torch_float_frames_and_reset(rng: np.random.Generator) -> None:
    smoother = make_smoother(0.7, "torch-cpu")
    bg = texture(rng)
    to = lambda f: torch.from_numpy(f).permute(2, 0, 1).float() / 255  # noqa: E731
    for _ in range(3):
        rainy, derained = rain_pair(bg, rng, 0.4)
        out = smoother(to(derained), to(rainy))
        assert out.dtype == torch.float32 and out.shape == (3, *bg.shape[:2])
    smoother.reset()
    rainy, derained = map(to, rain_pair(bg, rng, 0.4))
    assert torch.allclose(smoother(derained, rainy), derained, atol=1e-6)


def test_torch_rejects_hwc() -> None:
    from stream_derain.errors import InputError

    with pytest.raises(InputError):
        make_smoother(0.5, "torch-cpu")(torch.zeros(8, 8, 3), torch.zeros(8, 8, 3))
