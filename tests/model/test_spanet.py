"""SPANet, the real-rain teacher: it builds without data, and with the published weights
it reproduces the authors' reference output."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stream_derain.devsets import DATA_ROOT  # noqa: E402
from stream_derain.model.spanet import IRNN, SPANet, derain_rgb, load_spanet  # noqa: E402

TEACHER = DATA_ROOT.parent / "teachers" / "spanet"


def test_builds_and_keeps_shape_and_range():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = SPANet().eval()
    assert sum(p.numel() for p in model.parameters()) == 283_716  # as the published weights
    x = torch.rand(1, 3, 12, 17)
    with torch.no_grad():
        mask, out = model(x)
    assert mask.shape == (1, 1, 12, 17) and out.shape == x.shape
    assert float(mask.min()) > 0 and float(mask.max()) < 1
    img = np.random.default_rng(0).integers(0, 256, (12, 17, 3), dtype=np.uint8)
    rgb = derain_rgb(model, img)
    assert rgb.shape == img.shape and rgb.dtype == np.uint8  # clamped to [0, 1] before uint8


def test_irnn_scans_each_direction_from_its_own_edge():
    irnn = IRNN(channels=1)
    for conv in (irnn.up_weight, irnn.right_weight, irnn.down_weight, irnn.left_weight):
        torch.nn.init.ones_(conv.weight)  # w = 1, b = 0: a running sum of a positive input
        torch.nn.init.zeros_(conv.bias)
    f = torch.rand(1, 1, 4, 5)
    up, right, down, left = irnn(f)
    assert torch.allclose(right, f.cumsum(3))
    assert torch.allclose(down, f.cumsum(2))
    assert torch.allclose(left, f.flip(3).cumsum(3).flip(3))
    assert torch.allclose(up, f.flip(2).cumsum(2).flip(2))


@pytest.mark.data
def test_matches_the_published_reference():
    if not (TEACHER / "spanet_spa_state_dict.pth").is_file():
        pytest.skip(f"SPANet weights not found in {TEACHER}")
    torch.set_num_threads(1)
    model = load_spanet(TEACHER / "spanet_spa_state_dict.pth")
    ref = np.load(TEACHER / "reference_128x160.npz")
    with torch.no_grad():
        mask, out = model(torch.from_numpy(ref["input_bgr01"])[None])
    d_out = float(np.abs(out[0].numpy() - ref["output_bgr"]).max())
    d_mask = float(np.abs(mask[0].numpy() - ref["attention1"]).max())
    print(f"SPANet vs reference: max |output diff| {d_out:.2e}, max |attention diff| {d_mask:.2e}")
    assert d_out < 1e-4, d_out
    assert d_mask < 1e-4, d_mask
