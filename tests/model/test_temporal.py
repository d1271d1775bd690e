"""The multi-frame student: v3 at step 0, what its evidence says, budget, and export."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from stream_derain.model.evidence import TemporalEvidence, kth_brightest  # noqa: E402
from stream_derain.model.export import export_model, export_onnx  # noqa: E402
from stream_derain.model.student import build_student, count_macs_per_pixel  # noqa: E402
from stream_derain.model.temporal import OFFSETS, build_temporal  # noqa: E402


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if not name.startswith("temporal."):
            p.data = torch.randn(p.shape, generator=g) * 0.05
    return model.eval()


@pytest.mark.parametrize("frames", [3, 5])
def test_zero_initialised_temporal_input_reproduces_the_single_frame_student(frames):
    single = _randomised(build_student(channels=12, se_blocks=1, ca_blocks=1))
    multi = build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, frames).eval()
    missing, unexpected = multi.load_state_dict(single.state_dict(), strict=False)
    assert set(missing) == {"temporal.weight", "temporal.bias"} and not unexpected
    window = torch.rand(2, 3 * frames, 32, 48)
    with torch.no_grad():
        assert torch.equal(multi(window), single(window[:, :3]))
        # and the neighbours matter once the evidence convolution is trained
        torch.nn.init.normal_(multi.temporal.weight, std=0.5)
        assert not torch.allclose(multi(window), single(window[:, :3]))


def test_evidence_sees_light_that_only_the_target_has():
    k = 5
    frames = torch.full((1, 3 * k, 8, 8), 0.4)
    frames[0, 0:3, 2, 3] = 0.9  # a streak in the target only
    frames[0, 0:3, 5, 5] = 0.9  # a bright spot in the target and in one neighbour
    frames[0, 6:9, 5, 5] = 0.9
    ev = TemporalEvidence(k)(frames)[0]
    least, middle = ev[:3], ev[3:]
    half = torch.tensor(0.5)
    assert torch.allclose(least[:, 2, 3], half) and torch.allclose(middle[:, 2, 3], half)
    assert torch.allclose(least[:, 5, 5], torch.tensor(0.0))  # one neighbour shares it: not all-new light
    assert torch.allclose(middle[:, 5, 5], torch.tensor(0.5))  # the trimmed mean drops that neighbour
    assert float(ev[:, 0, 0].abs().max()) < 1e-6  # a static scene gives no evidence (float rounding)


def test_within_the_issue_budget():
    for k in OFFSETS:
        assert count_macs_per_pixel(build_temporal(frames=k)) <= 25_000
    assert count_macs_per_pixel(build_temporal(frames=5)) < count_macs_per_pixel(build_student()) * 1.05


def test_export_records_the_window_and_checks_against_torch(tmp_path):
    model = _randomised(build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, 3))
    torch.nn.init.normal_(model.temporal.weight, std=0.05)
    entry = export_model(model, tmp_path, "tiny-k3", "4")
    assert entry["frames"] == 3 and entry["offsets"] == {"centred": [0, -1, 1], "causal": [0, -1, -2]}
    assert entry["export_check_psnr_db"]["fp32"] >= 60 and entry["export_check_psnr_db"]["fp16"] >= 40
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["models"]["tiny-k3"]["temporal"]["frames"] == 3
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "tiny-k3.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": np.random.rand(1, 9, 32, 40).astype(np.float32)})[0]
    assert out.shape == (1, 3, 32, 40)


def test_the_gate_starts_nearly_closed_and_takes_the_temporal_background_where_open():
    single = _randomised(build_student(channels=12, se_blocks=1, ca_blocks=1))
    gated = build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, 3, gate=True).eval()
    gated.load_state_dict(single.state_dict(), strict=False)
    window = torch.rand(1, 9, 32, 48)
    with torch.no_grad():
        base = single(window[:, :3])
        assert float((gated(window) - base).abs().max()) < 1 / 255  # v3 within a grey level
        torch.nn.init.constant_(gated.gate.bias, 30.0)  # wide open: min(O, T) everywhere
        background = window[:, :3] - torch.relu(gated.evidence(window)[:, 3:])
        assert torch.allclose(gated(window), torch.minimum(base, background), atol=1e-6)


def test_the_replacement_head_starts_closed_and_removes_only_what_the_neighbours_lack():
    """v5's design: v3 untouched, a head of its own decides where the aligned neighbours'
    median replaces the output (only where it is darker)."""
    single = _randomised(build_student(channels=12, se_blocks=1, ca_blocks=1))
    model = build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, 5, head=8).eval()
    model.load_state_dict(single.state_dict(), strict=False)
    window = torch.full((1, 15, 32, 48), 0.4)
    window[0, 0:3, 10, 7] = 0.95  # a streak in the target only: the neighbours are darker there
    with torch.no_grad():
        base = single(window[:, :3])
        assert float((model(window) - base).abs().max()) < 1 / 255  # closed: v3 within a grey level
        torch.nn.init.constant_(model.head.body[-1].bias, 30.0)  # wide open everywhere
        out = model(window)
        background = window[:, :3] - torch.relu(model.evidence(window)[:, 3:])
        assert torch.allclose(out, torch.minimum(base, background), atol=1e-6)
        assert float(out[0, :, 10, 7].max()) <= 0.4 + 1e-6  # the streak is gone
    with pytest.raises(ValueError, match="not both"):
        build_temporal(frames=3, gate=True, head=8)


def test_replacement_head_budget_and_export(tmp_path):
    for k in OFFSETS:
        assert count_macs_per_pixel(build_temporal(frames=k, head=24)) <= 25_000
        assert count_macs_per_pixel(build_temporal(frames=k, head=24, context=2)) <= 25_000
    for scale in (2, 4):
        model = _randomised(build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, 3, head=8,
                                           head_scale=scale))
        torch.nn.init.normal_(model.head.body[-1].weight, std=0.5)
        entry = export_model(model, tmp_path / str(scale), "tiny-head", "5")
        assert entry["temporal"]["head"] == 8 and entry["temporal"]["head_scale"] == scale
        assert entry["export_check_psnr_db"]["fp32"] >= 60 and entry["export_check_psnr_db"]["fp16"] >= 40


def test_only_the_head_trains():
    pytest.importorskip("cv2")
    from stream_derain.train.temporal import replace_loss

    model = build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, 3, head=8)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("head."))
    window, clean = torch.rand(2, 9, 32, 32), torch.rand(2, 3, 32, 32)
    loss, parts = replace_loss(model, window, clean, 0.5, 1.0)
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads and all(n.startswith("head.") for n in grads)
    assert {"l1", "bce", "open"} <= set(parts)


def test_the_floor_leaves_noise_sized_differences_alone():
    """``floor``: with the gate wide open, a target 2 levels above its neighbours keeps
    its value (noise), one 40 levels above them loses the streak."""
    model = build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, 3, head=8, floor=3.0).eval()
    for name, p in model.named_parameters():  # a single-frame part that returns its input
        if not name.startswith("head."):
            torch.nn.init.zeros_(p)
    single = lambda x: x  # noqa: E731
    torch.nn.init.constant_(model.head.body[-1].bias, 30.0)
    window = torch.full((1, 9, 32, 48), 0.4)
    window[0, 0:3] += 2 / 255  # the whole target 2 levels brighter: sensor noise, a flicker
    window[0, 0:3, 10, 7] = 0.4 + 40 / 255
    with torch.no_grad():
        base, out = single(window[:, :3]), model(window)
        removal = base - out
    assert float(removal[0, :, 20, 30].abs().max()) == 0.0
    assert float(removal[0, :, 10, 7].min()) > 30 / 255


def test_head_weights_saved_over_the_unshuffled_picture_load_as_the_strided_convolution():
    """The first head convolution was a 3x3 over the picture pixel-unshuffled by 2; the
    stride-2 6x6 convolution that replaced it computes the same, from the same weights."""
    from stream_derain.model.temporal import HEAD_INPUTS, ReplaceHead

    g = torch.Generator().manual_seed(1)
    w3, b = torch.randn(8, HEAD_INPUTS * 4, 3, 3, generator=g), torch.randn(8, generator=g)
    x = torch.rand(1, HEAD_INPUTS, 20, 28, generator=g)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pixel_unshuffle(x, 2), w3, b, padding=1)
    head = ReplaceHead(8)
    state = {k: v.clone() for k, v in head.state_dict().items()}
    state["body.0.weight"], state["body.0.bias"] = w3, b
    head.load_state_dict(state)
    assert torch.allclose(head.body[0](x), expected, atol=1e-5)


def test_every_keeps_light_that_one_neighbour_also_has():
    """``every``: a bright spot the next frame shares (a misaligned edge, a lamp) is kept
    even with the gate wide open; one that only the target has is replaced."""
    model = build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, 3, head=8, floor=3.0,
                           every=True).eval()
    for name, p in model.named_parameters():  # a single-frame part that returns its input
        if not name.startswith("head."):
            torch.nn.init.zeros_(p)
    torch.nn.init.constant_(model.head.body[-1].bias, 30.0)
    window = torch.full((1, 9, 32, 48), 0.4)
    window[0, 0:3, 10, 7] = 0.8  # target only: a streak
    window[0, 0:3, 20, 30] = 0.8  # target and the next frame (slot 2): not transient
    window[0, 6:9, 20, 30] = 0.8
    with torch.no_grad():
        out = model(window)
    assert float(out[0, :, 10, 7].max()) <= 0.4 + 1e-6
    assert torch.allclose(out[0, :, 20, 30], torch.tensor(0.8))


def test_shared_lets_one_neighbour_hold_the_light_but_not_two():
    """``shared`` 1 (with ``every``): light one neighbour also has (another streak there)
    is still replaced; light two neighbours have is kept. K = 5; the gate wide open."""
    model = build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, 5, head=8, floor=3.0,
                           every=True, shared=1).eval()
    for name, p in model.named_parameters():  # a single-frame part that returns its input
        if not name.startswith("head."):
            torch.nn.init.zeros_(p)
    torch.nn.init.constant_(model.head.body[-1].bias, 30.0)
    window = torch.full((1, 15, 32, 48), 0.4)
    window[0, 0:3, 10, 7] = window[0, 3:6, 10, 7] = 0.8  # the target and one neighbour
    window[0, 0:3, 20, 30] = window[0, 3:6, 20, 30] = window[0, 9:12, 20, 30] = 0.8  # and two
    with torch.no_grad():
        out = model(window)
    assert float(out[0, :, 10, 7].max()) <= 0.4 + 1e-6
    assert torch.allclose(out[0, :, 20, 30], torch.tensor(0.8))
    model.tcfg = replace(model.tcfg, shared=0)  # every neighbour must lack it: both kept
    with torch.no_grad():
        assert torch.allclose(model(window)[0, :, 10, 7], torch.tensor(0.8))
    with pytest.raises(ValueError, match="shared"):
        build_temporal(frames=3, head=8, every=True, shared=2)


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_kth_brightest_is_topk_without_a_topk(n, tmp_path):
    """The shared rule's (shared + 1)-th brightest neighbour, by maxima and minima: the
    same values as torch.topk for every k, ties included, and no TopK in the exported
    graph (ONNX Runtime ran it at a fifth of the v4.3.1 graph's time)."""
    g = torch.Generator().manual_seed(n)
    x = torch.randint(0, 5, (n, 2, 3, 7, 9), generator=g).float() / 4  # many ties
    for k in range(1, n + 1):
        assert torch.equal(kth_brightest(x.unbind(0), k), torch.topk(x, k, dim=0).values[k - 1])
    with pytest.raises(ValueError, match="k must be"):
        kth_brightest(x.unbind(0), n + 1)
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    export_onnx(build_temporal(TINY, 5, head=8, floor=3.0, every=True, shared=1), path)
    assert "TopK" not in {node.op_type for node in onnx.load(str(path)).graph.node}


def test_context_layers_widen_what_the_head_sees():
    """``context``: dilated layers (4, 8) widen the head's receptive field from 18 px to
    66 px; a change 30 px from a pixel reaches its logit only with them."""
    for context, reaches in ((0, False), (2, True)):
        model = _randomised(build_temporal({"channels": 12, "se_blocks": 1, "ca_blocks": 1}, 3, head=8,
                                           context=context))
        torch.nn.init.normal_(model.head.body[-1].weight, std=0.5)
        picture = torch.rand(1, 13, 96, 96)
        moved = picture.clone()
        moved[..., 48, 78] += 1.0  # 30 px to the right of (48, 48)
        with torch.no_grad():
            a, b = model.head(picture)[0, 0, 48, 48], model.head(moved)[0, 0, 48, 48]
        assert bool(a != b) == reaches, (context, float(a), float(b))


def test_a_gate_offset_shifts_and_a_scale_sharpens_the_head_logits_and_only_a_head_has_them():
    from stream_derain.model.temporal import shift_gate

    torch.manual_seed(0)
    model = build_temporal(frames=3, head=8, floor=3.0, every=True).eval()
    torch.nn.init.normal_(model.head.body[-1].weight, std=0.1)
    window = torch.rand(1, 9, 32, 32)
    with torch.no_grad():
        before = model.replace_terms(window)[2]
        shift_gate(model, 0.5)
        after = model.replace_terms(window)[2]
    assert torch.allclose(after - before, torch.full_like(before, 0.5), atol=1e-5)
    with torch.no_grad():
        shift_gate(model, -0.25, scale=3.0)  # sharper: 3 (l + 0.5 - 0.25)
        sharp = model.replace_terms(window)[2]
    assert torch.allclose(sharp, 3.0 * (before + 0.25), atol=1e-5)
    with pytest.raises(ValueError, match="replacement head"):
        shift_gate(build_temporal(frames=3), 0.5)
    with pytest.raises(ValueError, match="positive"):
        shift_gate(model, 0.0, scale=0.0)


def test_a_head_grown_to_read_the_rain_layer_starts_as_its_parent(tmp_path):
    """``rain_input``: a head given v3's rain layer as three more inputs, initialised from
    a checkpoint without them (their weights at zero), gives its parent's output; once
    those weights move, the rain layer reaches the gate."""
    pytest.importorskip("cv2")
    from stream_derain.model.temporal import temporal_config_dict
    from stream_derain.train.checkpoint import save_checkpoint
    from stream_derain.train.temporal import ARCH, init_temporal

    tiny = {"channels": 12, "se_blocks": 1, "ca_blocks": 1}
    parent = _randomised(build_temporal(tiny, 3, head=8, floor=3.0, every=True))
    torch.nn.init.normal_(parent.head.body[-1].weight, std=0.5)
    path = tmp_path / "parent.pt"
    save_checkpoint(path, arch=ARCH, model_cfg=temporal_config_dict(parent), model=parent, optimizer=None,
                    step=1, train_cfg={}, data_rng=np.random.default_rng(0))
    grown = build_temporal(tiny, 3, head=8, floor=3.0, every=True, rain_input=True).eval()
    init_temporal(grown, path)
    assert grown.head.body[0].weight.shape[1] == parent.head.body[0].weight.shape[1] + 3
    window = torch.rand(1, 9, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(grown(window), parent(window))
        torch.nn.init.normal_(grown.head.body[0].weight[:, -3:], std=0.5)
        assert not torch.equal(grown.replace_terms(window)[2], parent.replace_terms(window)[2])


TINY = {"channels": 12, "se_blocks": 1, "ca_blocks": 1}


@pytest.mark.parametrize("options", [
    {}, {"kernel": 3}, {"gate": True},
    {"head": 8, "floor": 3.0, "every": True, "shared": 1, "context": 1, "rain_input": True},
    {"head": 8, "student": {**TINY, "refine": 4}},  # a full-resolution part: forward_all's graph
    {"head": 8, "head_scale": 4, "floor": 3.0, "every": True, "shared": 1, "context": 2, "rain_input": True,
     "base_evidence": True},
], ids=["implicit", "kernel3", "gate", "head", "refine", "quarter-head"])
def test_the_exported_forward_is_forward_alls_output(options):
    """forward (the exported graph: v3's network on the packed target, the evidence
    unshuffled) computes what training's forward_all does, with every weight random."""
    options = {"student": TINY, **options}
    g = torch.Generator().manual_seed(3)
    model = build_temporal(frames=5, **options).eval()
    for p in model.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.1
    x = torch.rand(2, 15, 24, 40, generator=g)
    with torch.no_grad():
        out, full = model(x), model.forward_all(x)[0]
    assert out.std() > 0.05
    torch.testing.assert_close(out, full, rtol=0, atol=1e-6)


def test_a_head_model_leaves_the_frozen_evidence_convolution_out_of_its_graph():
    assert build_temporal(head=8).outside_graph == ("temporal.",)
    assert build_temporal().outside_graph == ()


@pytest.mark.parametrize("kernel", [1, 3])
def test_evidence_weights_saved_over_the_unshuffled_evidence_load_as_the_strided_convolution(kernel):
    """Checkpoints before stop 36 hold the evidence convolution over the evidence
    pixel-unshuffled by 4; the stride-4 convolution that replaced it computes the same."""
    from stream_derain.model.evidence import EVIDENCE_CHANNELS

    g = torch.Generator().manual_seed(4)
    model = build_temporal(TINY, 5, kernel=kernel).eval()
    w = torch.randn(12, EVIDENCE_CHANNELS * 16, kernel, kernel, generator=g)
    b = torch.randn(12, generator=g)
    evidence = torch.rand(1, EVIDENCE_CHANNELS, 24, 32, generator=g)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pixel_unshuffle(evidence, 4), w, b,
                                          padding=kernel // 2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["temporal.weight"], state["temporal.bias"] = w, b
    model.load_state_dict(state)
    assert model.temporal.weight.shape == (12, EVIDENCE_CHANNELS, 4 * kernel, 4 * kernel)
    torch.testing.assert_close(model.temporal(evidence), expected, rtol=1e-5, atol=1e-4)


def test_a_head_over_v4_starts_as_v4_and_keeps_its_evidence_convolution_in_the_graph():
    """``base_evidence``: the network under the head is v4's (evidence convolution in the
    rain stem); with the head closed the output is that network's."""
    g = torch.Generator().manual_seed(5)
    v4 = build_temporal(TINY, 5).eval()
    for p in v4.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.1
    over = build_temporal(TINY, 5, head=8, every=True, floor=3.0, base_evidence=True).eval()
    missing, unexpected = over.load_state_dict(v4.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("head.") for k in missing)
    assert over.outside_graph == ()
    x = torch.rand(1, 15, 24, 32, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(over(x), v4(x), rtol=0, atol=2.6e-3)  # head closed at bias -6: g = 0.0025
        over.head.body[-1].bias.fill_(-30.0)
        torch.testing.assert_close(over(x), v4(x), rtol=0, atol=1e-6)
        torch.testing.assert_close(over(x), over.forward_all(x)[0], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="head"):
        build_temporal(TINY, 5, base_evidence=True)


def test_base_init_puts_v4s_network_under_the_head_that_init_gave(tmp_path):
    pytest.importorskip("cv2")
    from stream_derain.model.temporal import temporal_config_dict
    from stream_derain.train.checkpoint import save_checkpoint
    from stream_derain.train.lineage import parent_paths
    from stream_derain.train.temporal import ARCH, init_base, init_temporal

    def saved(model, name):
        save_checkpoint(tmp_path / name, arch=ARCH, model_cfg=temporal_config_dict(model), model=model,
                        optimizer=None, step=1, train_cfg={}, data_rng=np.random.default_rng(0))
        return tmp_path / name

    v4 = _randomised(build_temporal(TINY, 5), seed=1)
    torch.nn.init.normal_(v4.temporal.weight, std=0.1)
    head = _randomised(build_temporal(TINY, 5, head=8, every=True), seed=2)
    over = build_temporal(TINY, 5, head=8, every=True, base_evidence=True)
    init_temporal(over, saved(head, "head.pt"))
    init_base(over, saved(v4, "v4.pt"))
    for key, value in over.state_dict().items():
        source = head if key.startswith("head.") else v4
        assert torch.equal(value, source.state_dict()[key]), key
    roles = parent_paths(ARCH, {"init": "head.pt", "base_init": "v4.pt"})
    assert roles == [("init", "head.pt"), ("base_init", "v4.pt")]


def test_base_init_refuses_a_checkpoint_that_does_not_fit_under_the_head(tmp_path):
    pytest.importorskip("cv2")
    from stream_derain.errors import ConfigError
    from stream_derain.model.temporal import temporal_config_dict
    from stream_derain.train.checkpoint import save_checkpoint
    from stream_derain.train.temporal import ARCH, init_base

    other = build_temporal({"channels": 16, "se_blocks": 1, "ca_blocks": 1}, 5)  # another width
    save_checkpoint(tmp_path / "wide.pt", arch=ARCH, model_cfg=temporal_config_dict(other), model=other,
                    optimizer=None, step=1, train_cfg={}, data_rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="does not fit the network under the head"):
        init_base(build_temporal(TINY, 5, head=8, base_evidence=True), tmp_path / "wide.pt")


def test_a_quarter_resolution_head_starts_closed_is_cheaper_and_sees_each_pixel():
    """head_scale 4: the head's first convolution is one 1x1 over packed pixels, the rest
    at a quarter of the positions; it starts closed (the network under it unchanged) and
    its logits are per pixel, not per 4x4 block."""
    half = build_temporal(frames=5, head=24, context=2, rain_input=True, every=True, base_evidence=True)
    quarter = build_temporal(frames=5, head=32, context=2, rain_input=True, every=True, base_evidence=True,
                             head_scale=4)
    base = count_macs_per_pixel(build_temporal(frames=5))
    assert count_macs_per_pixel(quarter) - base < 0.6 * (count_macs_per_pixel(half) - base)
    quarter = _randomised(quarter)
    x = torch.rand(1, 15, 32, 48)
    with torch.no_grad():
        quarter.head.body[-1].weight.zero_()  # as built: closed
        quarter.head.body[-1].bias.fill_(-6.0)
        closed = quarter(x)
        quarter.head.body[-1].bias.fill_(-30.0)
        torch.testing.assert_close(closed, quarter(x), rtol=0, atol=2.6e-3)
        torch.nn.init.normal_(quarter.head.body[-1].weight, std=0.5)
        logits = quarter.replace_terms(x)[2]
    block = logits[0, 0, :4, :4]
    assert logits.shape[-2:] == x.shape[-2:] and float(block.std()) > 0.01
    with pytest.raises(ValueError, match="scale 2 or 4"):
        build_temporal({"scale": 8}, head=8, head_scale=8)
    with pytest.raises(ValueError, match="multiple"):
        build_temporal({"scale": 2}, head=8, head_scale=4)


def test_a_head_learns_another_heads_logits_where_the_replacement_removes_anything(tmp_path):
    """distil_loss: next to nothing for a head that computes its teacher's logits, far more
    for one that does not, and only the head gets gradients; a teacher over another picture is
    refused."""
    pytest.importorskip("cv2")
    from stream_derain.errors import ConfigError
    from stream_derain.model.temporal import temporal_config_dict
    from stream_derain.train.checkpoint import save_checkpoint
    from stream_derain.train.temporal import ARCH, TemporalTrainConfig, distil_loss, teacher_head

    options = {"frames": 5, "head": 8, "floor": 3.0, "every": True, "rain_input": True}
    teacher = _randomised(build_temporal(TINY, **options), seed=4)
    torch.nn.init.normal_(teacher.head.body[-1].weight, std=0.5)
    save_checkpoint(tmp_path / "teacher.pt", arch=ARCH, model_cfg=temporal_config_dict(teacher),
                    model=teacher, optimizer=None, step=1, train_cfg={}, data_rng=np.random.default_rng(0))
    student = build_temporal(TINY, **options, head_scale=4)
    student.load_state_dict({k: v for k, v in teacher.state_dict().items() if not k.startswith("head.")},
                            strict=False)
    for name, p in student.named_parameters():
        p.requires_grad_(name.startswith("head."))
    cfg = TemporalTrainConfig(head_teacher=str(tmp_path / "teacher.pt"), **options)
    head = teacher_head(cfg, student)
    window, clean = torch.rand(2, 15, 32, 32), torch.rand(2, 3, 32, 32)
    window[:, :3, 8:12, 8:24] += 0.3  # light only the target has: something to remove
    loss, parts = distil_loss(student, head, window, clean)
    assert float(loss.detach()) > 0.1 and {"l1", "distil", "open"} <= set(parts)
    loss.backward()
    grads = {n for n, p in student.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads and all(n.startswith("head.") for n in grads)
    # its own head: nothing left to learn but logits beyond the clamp (+-8) pulled to it
    assert float(distil_loss(teacher, head, window, clean)[0].detach()) < 0.02 * float(loss.detach())
    with pytest.raises(ConfigError, match="differs in shared"):
        teacher_head(TemporalTrainConfig(head_teacher=cfg.head_teacher, **{**options, "shared": 1}),
                     build_temporal(TINY, **options, shared=1))


@pytest.mark.parametrize("scale", [2, 4])
def test_the_head_in_bf16_computes_what_it_does_in_fp32(scale):
    """Training runs under bf16 autocast, the runtimes in fp32/bf16 of their own: the head
    must compute the same logits either way (torch 2.13's CPU bf16 convolution with kernel
    = stride = 4 got 16 input channels wrong by more than its output's range)."""
    head = build_temporal(frames=5, head=32, context=2, rain_input=True, head_scale=scale).head
    g = torch.Generator().manual_seed(5)
    for p in head.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.1
    picture = torch.rand(2, 16, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        full = head(picture)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = head(picture).float()
    assert float((full - half).abs().max()) < 0.05 * float(full.abs().max())
