"""The grown teacher: it starts as its student, costs ~10x, and exports like one."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stream_derain.model.export import check_against_torch, export_onnx  # noqa: E402
from stream_derain.model.grown_teacher import build_teacher  # noqa: E402
from stream_derain.model.student import build_student, count_macs_per_pixel  # noqa: E402

SMALL = {"channels": 8, "se_blocks": 1, "ca_blocks": 1}


def test_starts_as_its_student_and_learns_beside_it():
    teacher = build_teacher(SMALL, {"channels": 8, "blocks": 1}).eval()
    torch.nn.init.normal_(teacher.student.rain_head.weight, std=0.05)  # a "trained" student
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        assert torch.allclose(teacher(x), teacher.student(x))
        out, rain, detail = teacher.forward_all(x)
    assert out.shape == rain.shape == detail.shape == x.shape
    teacher.train()
    loss = (teacher(x) - x * 0.5).abs().mean()
    loss.backward()
    assert teacher.refiner.head.weight.grad.abs().sum() > 0  # the refiner is trained


def test_default_teacher_has_about_ten_times_the_students_compute():
    ratio = count_macs_per_pixel(build_teacher()) / count_macs_per_pixel(build_student())
    assert 10 <= ratio <= 30  # the 10-30x


def test_export_is_checked_against_torch(tmp_path):
    teacher = build_teacher(SMALL, {"channels": 8, "blocks": 1})
    torch.nn.init.normal_(teacher.refiner.head.weight, std=0.05)
    path = tmp_path / "t.onnx"
    export_onnx(teacher, path)
    assert check_against_torch(teacher, path) > 60
