"""The student: shapes, budget, identity start, and the ONNX export check."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from stream_derain.errors import ModelError  # noqa: E402
from stream_derain.model.export import check_against_torch, export_onnx  # noqa: E402
from stream_derain.model.student import build_student, count_macs_per_pixel, count_parameters  # noqa: E402


def test_shapes_and_branches():
    model = build_student().eval()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        out, rain, detail = model.forward_all(x)
    assert out.shape == rain.shape == detail.shape == x.shape
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0  # clamped


def test_starts_as_identity():
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(build_student()(x), x)


def test_within_the_mac_budget():
    model = build_student()
    macs = count_macs_per_pixel(model)
    assert 10_000 < macs <= 20_000
    assert count_parameters(model) < 1_000_000


def test_export_is_checked_against_torch(tmp_path):
    model = build_student(channels=12, se_blocks=1, ca_blocks=1)
    torch.nn.init.normal_(model.rain_head.weight, std=0.05)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    assert check_against_torch(model, path) > 60
    # a model that does not match the file must fail the check
    other = build_student(channels=12, se_blocks=1, ca_blocks=1)
    torch.nn.init.normal_(other.rain_head.weight, std=0.5)
    with pytest.raises(ModelError, match="disagrees"):
        check_against_torch(other, path)


def test_manifest_records_the_export(tiny_model_dir):
    import json

    entry = json.loads((tiny_model_dir / "manifest.json").read_text())["models"]["tiny"]
    assert entry["multiple"] == 4 and entry["files"]["fp16"]["file"] == "tiny.fp16.onnx"
    assert entry["export_check_psnr_db"]["fp16"] >= 40
    assert np.isclose(entry["macs_per_pixel"], count_macs_per_pixel(build_student(**entry["student"])),
                      atol=0.1)


def test_refinement_starts_as_identity_and_fits_the_budget():
    model = build_student(refine=8)
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(model(x), x)
    assert count_macs_per_pixel(model) <= 20_000


def test_veil_head_starts_as_its_former_self_fits_the_budget_and_exports(tmp_path):
    plain = build_student(channels=12, se_blocks=1, ca_blocks=1)
    torch.nn.init.normal_(plain.rain_head.weight, std=0.05)
    grown = build_student(channels=12, se_blocks=1, ca_blocks=1, veil=8)
    missing, _ = grown.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("veil.") for k in missing)
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(plain(x), grown(x))
    assert count_macs_per_pixel(build_student(veil=16)) <= 20_000
    torch.nn.init.normal_(grown.veil[2].weight, std=0.05)
    path = tmp_path / "veil.onnx"
    export_onnx(grown, path)
    assert check_against_torch(grown, path) > 60


def test_veil_head_set_by_hand_undoes_a_veil_exactly():
    """A veil I = t B + (1 - t) A is undone by gain 1/t - 1 and offset -A (1/t - 1):
    set by hand, the head inverts it exactly, and its rain layer is all of I - B."""
    model = build_student(channels=12, se_blocks=1, ca_blocks=1, veil=8).eval()
    t, airlight = 0.6, 0.9
    gain = 1 / t - 1
    with torch.no_grad():
        model.veil[2].bias.copy_(torch.tensor([gain, *[-airlight * gain] * 3]))
        clean = torch.rand(1, 3, 32, 32) * 0.8
        hazy = t * clean + (1 - t) * airlight
        out, rain, _ = model.forward_all(hazy)
    assert torch.allclose(out, clean, atol=1e-5)
    assert torch.allclose(rain, hazy - clean, atol=1e-5)


def test_coarse_context_starts_as_its_former_self_widens_the_view_and_exports(tmp_path):
    torch.manual_seed(0)
    plain = build_student(channels=12, se_blocks=1, ca_blocks=1)
    torch.nn.init.normal_(plain.rain_head.weight, std=0.05)
    grown = build_student(channels=12, se_blocks=1, ca_blocks=1, context=8)
    missing, _ = grown.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("context.") for k in missing)
    assert grown.multiple == plain.multiple == 4  # the 1/16 context takes any multiple of 4
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(plain(x), grown(x))
    assert count_macs_per_pixel(build_student(context=48)) - count_macs_per_pixel(build_student()) < 250
    torch.nn.init.normal_(grown.context.body[4].weight, std=0.05)
    # the rain layer at one pixel now depends on input far beyond the body's ~70 px
    # (before, only through the SE gates' global means: a trace), past column 40
    x.requires_grad_(True)
    far = []
    for model in (plain, grown):
        _, rain, _ = model.forward_all(x)
        (grad,) = torch.autograd.grad(rain[0, :, 8, 8].sum(), x)
        far.append(float(grad[0, :, :, 40:].abs().sum()))
    assert far[1] > 10 * far[0]  # measured 22-63x over three seeds
    path = tmp_path / "context.onnx"
    export_onnx(grown, path)
    assert check_against_torch(grown, path) > 60
    odd = torch.rand(1, 3, 36, 52)  # 9 x 13 at 1/4: partial pooling windows
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = grown(odd).numpy()
    assert np.abs(session.run(None, {"input": odd.numpy()})[0] - expected).max() < 1e-5


@pytest.mark.parametrize("overrides", [{}, {"refine": 4}, {"veil": 4}, {"context": 4}])
def test_the_exported_forward_is_forward_alls_output(overrides):
    """forward runs v3's network on packed pixels (one unshuffle in, one shuffle out) where
    nothing works at full resolution, and forward_all's graph otherwise: the same output."""
    g = torch.Generator().manual_seed(2)
    model = build_student(channels=12, se_blocks=1, ca_blocks=1, **overrides).eval()
    for p in model.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.1
    x = torch.rand(2, 3, 24, 40, generator=g)
    with torch.no_grad():
        out, full = model(x), model.forward_all(x)[0]
    assert model.packs == (not overrides.get("refine") and not overrides.get("veil"))
    assert out.std() > 0.05
    torch.testing.assert_close(out, full, rtol=0, atol=1e-6)
