"""INT8 by post-training quantization: the export round trip and its gate on a tiny
K-frame model, the manifest record, and how ``auto`` chooses int8 (8-bit dot products
and a passed gate) on ONNX Runtime and OpenVINO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from int8_models import dev_sets, windows, write_model

from stream_derain import catalog as models
from stream_derain.devices import cpu_from_text
from stream_derain.engine_spec import EngineSpec

pytest.importorskip("onnx")
VNNI = cpu_from_text("model name: Xeon\nflags: avx2 avx512f avx512_vnni avx512_bf16 amx_int8\n", "x86_64")
NO_DOT = cpu_from_text("model name: EPYC 7B13\nflags: avx2 fma\n", "x86_64")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-frame tiny model quantized into another folder, checked on both CPU backends."""
    pytest.importorskip("nncf")
    from stream_derain.quantize import quantize_model

    src = write_model(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("int8")
    result = quantize_model(str(src / "qtiny.onnx"), out, windows=windows(3), sets=dev_sets(3))
    assert result.path == out / "qtiny.int8.onnx" and result.path.is_file()
    return out


def test_output_tail_keeps_the_head_and_what_follows() -> None:
    import onnx
    from int8_models import _model

    from stream_derain.quantize import output_tail

    assert output_tail(_model(3)) == ["/head/Conv", "/rain", "/target", "/Sub", "/Clip"]
    assert onnx.checker.check_model(_model(1)) is None


def test_round_trip_records_the_file_and_passes_its_gate(quantized: Path) -> None:
    manifest = json.loads((quantized / "manifest.json").read_text())
    entry = manifest["models"]["qtiny"]
    assert entry["files"]["int8"]["file"] == "qtiny.int8.onnx" and (quantized / "qtiny.onnx").is_file()
    assert entry["files"]["int8"]["sha256"] == models.sha256(quantized / "qtiny.int8.onnx")
    rec = entry["int8"]
    assert rec["fp32_sha256"] == entry["files"]["fp32"]["sha256"] and rec["format"]["int8"] == "onnx-qdq"
    if "openvino" in rec["checks"]:  # the IR of NNCF's OpenVINO path, beside the QDQ file
        ir = entry["files"][models.OPENVINO_INT8]
        assert ir["file"] == "qtiny.int8.xml" and (quantized / ir["weights"]).is_file()
        assert rec["format"][models.OPENVINO_INT8] == "openvino-ir"
    assert rec["settings"]["ignored"] == ["/head/Conv", "/rain", "/target", "/Sub", "/Clip"]
    assert rec["calibration"] == {"windows": 16, "frames_per_window": 3, "sources": "given"}
    assert "onnxruntime" in rec["checks"]
    for backend, check in rec["checks"].items():
        assert check["passed"], (backend, check)
        assert check["min_agreement_db"] >= rec["gate"]["min_agreement_db"]
    assert rec["sets"]["dry_clean"]["rain_free"] and rec["sets"]["rain"]["onnxruntime"]["agreement_db"] >= 45
    info = models.load_model_info("qtiny", quantized)
    assert info.frames == 3 and info.path("int8").name == "qtiny.int8.onnx"
    assert models.int8_record(info) is rec or models.int8_record(info) == rec
    assert models.int8_passed(info, "onnxruntime")[0]


def test_int8_runs_close_to_fp32(quantized: Path) -> None:
    from stream_derain.backends import create_backend

    info = models.load_model_info("qtiny", quantized)
    batch = np.concatenate(windows(3, 2)[1].frames, axis=2)[None]
    with create_backend("onnxruntime", info, "fp32") as ref, create_backend("onnxruntime", info, "int8") as q:
        assert q.precision == "int8" and q.precision_check["passed"]
        diff = np.abs(ref.infer(batch).astype(int) - q.infer(batch).astype(int))
    assert diff.max() <= 2


def test_a_stale_or_failed_record_is_not_trusted(quantized: Path) -> None:
    info = models.load_model_info("qtiny", quantized)
    meta = json.loads(json.dumps(info.meta))
    meta["files"]["fp32"]["sha256"] = "0" * 64  # re-exported since: the record is stale
    stale = models.ModelInfo(info.name, info.version, info.files, info.multiple, meta=meta, frames=3,
                             offsets=info.offsets)
    assert models.int8_record(stale) is None
    ok, why = models.int8_passed(stale, "onnxruntime")
    assert not ok and "stale" in why
    meta = json.loads(json.dumps(info.meta))
    meta["int8"]["checks"]["onnxruntime"].update(passed=False, failures=["rain: 40.00 dB vs fp32 < 45.0"])
    failed = models.ModelInfo(info.name, info.version, info.files, info.multiple, meta=meta, frames=3,
                              offsets=info.offsets)
    ok, why = models.int8_passed(failed, "onnxruntime")
    assert not ok and "40.00 dB" in why
    no_file = models.ModelInfo(info.name, info.version, {"fp32": info.files["fp32"]}, info.multiple,
                               meta=info.meta, frames=3, offsets=info.offsets)
    assert not models.int8_passed(no_file, "openvino")[0]


@pytest.mark.parametrize("cpu, want", [(VNNI, "int8"), (NO_DOT, "fp32")])
def test_onnxruntime_auto_takes_int8_only_with_dot_products(quantized: Path, monkeypatch: pytest.MonkeyPatch,
                                                            cpu, want: str) -> None:  # noqa: ANN001
    import stream_derain.backends.onnxruntime as ort_backend
    from stream_derain.backends import create_backend

    monkeypatch.setattr(ort_backend, "cpu_info", lambda: cpu)
    info = models.load_model_info("qtiny", quantized)
    with create_backend("onnxruntime", info, "auto") as be:
        assert be.precision == want
        assert ("8-bit dot products" in be.choice_reason) if want == "int8" else \
            ("no 8-bit dot-product units" in be.choice_reason)


@pytest.mark.parametrize("cpu, want_int8", [(VNNI, True), (NO_DOT, False)])
def test_openvino_auto_takes_int8_only_with_dot_products(quantized: Path, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path, cpu, want_int8: bool) -> None:  # noqa: ANN001
    pytest.importorskip("openvino")
    import stream_derain.backends.openvino as ov_backend

    monkeypatch.setattr(ov_backend, "cpu_info", lambda: cpu)
    info = models.load_model_info("qtiny", quantized)
    with ov_backend.OpenVINOBackend(info, "auto", cache=tmp_path) as be:
        assert (be.precision == "int8") == want_int8, be.choice_reason
        assert ("auto: int8" in be.choice_reason) == want_int8
        if not want_int8:
            assert "not int8: no 8-bit dot-product units" in be.choice_reason
        out = be.infer(np.concatenate(windows(3, 1)[0].frames, axis=2)[None])
    assert out.shape == (1, 32, 48, 3)


def test_int8_is_refused_where_it_does_not_run(quantized: Path) -> None:
    from stream_derain.backends import resolve_precision
    from stream_derain.errors import BackendError

    assert resolve_precision("onnxruntime", "int8") == "int8"
    assert resolve_precision("onnxruntime", "auto") == "auto"
    with pytest.raises(BackendError, match="int8 runs on --backend openvino or onnxruntime"):
        resolve_precision("torch", "int8")


def test_bench_rows_carry_the_precision_and_its_psnr(quantized: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_derain.bench import BenchConfig, run_bench, validate_report

    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(quantized))
    cfg = BenchConfig(mode="engine", engine=EngineSpec(model="qtiny"), backends=("onnxruntime",),
                      precisions=("fp32", "int8"), resolutions=((64, 48),), warmup=1, iters=2)
    rep = run_bench(cfg)
    assert validate_report(rep) == []
    rows = {r["variant"]: r for r in rep["engine"]}
    assert rows["onnxruntime/int8"]["status"] == "ok" and rows["onnxruntime/int8"]["precision_used"] == "int8"
    assert rows["onnxruntime/int8"]["precision_psnr_db"] >= 30
    assert rows["onnxruntime/int8"]["precision_gate"] == "passed"
    assert rows["onnxruntime/int8"]["precision_dev_psnr_db"] >= 45
    fp32 = rows["onnxruntime/fp32"]
    assert fp32["precision_used"] == "fp32" and "precision_gate" not in fp32
    from stream_derain.bench.report import precision_text

    assert precision_text(rows["onnxruntime/int8"]).startswith("int8, ")
    assert "gate passed" in precision_text(rows["onnxruntime/int8"])


def test_the_gate_reads_every_figure() -> None:
    from stream_derain.quantize import GATE, verdict

    def row(psnr: float, agree: float = 50.0, bias: float = 0.0, detail: float = 1.0, fp32: float = 30.0):
        return {"psnr_y": psnr, "agreement_db": agree, "delta_db": round(psnr - fp32, 4), "bias": bias,
                "detail": detail}

    sets = {"rain": {"rain_free": False, "fp32": row(30.0), "openvino": row(29.95)},
            "dry": {"rain_free": True, "fp32": row(73.0, fp32=73.0), "openvino": row(71.0, 74.0, fp32=73.0)}}
    good = verdict(sets, "openvino", GATE)
    assert good["passed"] and good["min_agreement_db"] == 50.0 and good["max_abs_delta_db"] == 2.0
    sets["dry"]["openvino"] = row(71.0, 74.0, bias=0.2, fp32=73.0)  # brighter: harm done
    sets["rain"]["openvino"] = row(29.8, 44.0)
    bad = verdict(sets, "openvino", GATE)
    assert not bad["passed"] and len(bad["failures"]) == 3
    assert any("44.00 dB vs fp32 < 45.0" in f for f in bad["failures"])
    sets["dry"] = {"rain_free": True, "fp32": row(49.4, fp32=49.4), "openvino": row(49.2, 60.0, fp32=49.4)}
    assert any(f.startswith("dry: PSNR-Y -0.200 dB") for f in verdict(sets, "openvino", GATE)["failures"])


def test_another_folder_gets_the_stills_model_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nncf")
    from stream_derain.quantize import quantize_model

    src = write_model(tmp_path / "src", "qtiny", 3)
    write_model(tmp_path / "one", "still1", 1)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["models"]["qtiny"]["stills"] = "still1"  # as v4 names v3 for still images
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())
    manifest["models"]["still1"] = one["models"]["still1"]
    (tmp_path / "one" / "still1.onnx").rename(src / "still1.onnx")
    (src / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(src))
    out = tmp_path / "out"
    quantize_model("qtiny", out, windows=windows(3, 8), sets=dev_sets(3), backends=("onnxruntime",),
                   openvino_ir=False)
    written = json.loads((out / "manifest.json").read_text())
    assert written["default"] == "qtiny" and set(written["models"]) == {"qtiny", "still1"}
    assert (out / "still1.onnx").is_file() and "int8" not in written["models"]["still1"]["files"]
    assert models.load_model_info("still1", out).frames == 1
    assert models.OPENVINO_INT8 not in written["models"]["qtiny"]["files"]


def test_accuracy_control_keeps_more_layers_in_floating_point(tmp_path: Path) -> None:
    """Asked for agreement with FP32 that plain quantization does not reach, NNCF's accuracy
    control keeps convolutions in floating point; they are recorded by their ONNX names,
    and both files (ONNX and OpenVINO) are made with them kept."""
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    import onnx

    from stream_derain.quantize import QuantizeSettings, quantize_model

    src = write_model(tmp_path / "src", head=0.1)  # a stronger rain layer: plain INT8 at ~50 dB from FP32
    plain = quantize_model(str(src / "qtiny.onnx"), tmp_path / "plain", windows=windows(3), sets=dev_sets(3),
                           backends=("openvino",)).record
    rec = quantize_model(str(src / "qtiny.onnx"), tmp_path / "ac", QuantizeSettings(accuracy_db=56.0),
                         windows=windows(3), sets=dev_sets(3), backends=("openvino",)).record
    tail = ["/head/Conv", "/rain", "/target", "/Sub", "/Clip"]
    kept = rec["settings"]["ignored"]
    assert kept[:5] == tail and {"/conv1/Conv", "/conv2/Conv"} & set(kept[5:])
    assert set(kept) <= {n.name for n in onnx.load(str(src / "qtiny.onnx")).graph.node}
    assert rec["settings"]["accuracy_db"] == 56.0 and plain["settings"]["accuracy_db"] is None
    worst = {r["checks"]["openvino"]["min_agreement_db"] for r in (plain, rec)}
    assert rec["checks"]["openvino"]["min_agreement_db"] == max(worst)
    def quantizers(folder: str) -> int:  # activation and weight quantizers left in the OpenVINO IR
        return (tmp_path / folder / "qtiny.int8.xml").read_text().count('type="FakeQuantize"')

    assert quantizers("ac") < quantizers("plain")  # the IR is NNCF's controlled model
    qdq = onnx.load(str(tmp_path / "ac" / "qtiny.int8.onnx"))
    quantized_inputs = {n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"}
    for node in qdq.graph.node:
        if node.name in kept and node.op_type == "Conv":  # no 8-bit input reaches a kept convolution
            assert not set(node.input) & quantized_inputs, node.name


def test_cli_refuses_a_backend_without_int8() -> None:
    from typer.testing import CliRunner

    from stream_derain.cli import app

    result = CliRunner().invoke(app, ["quantize", "--backend", "torch"])
    assert result.exit_code == 1 and "int8 runs on openvino or onnxruntime, not torch" in result.output
    assert "--bias-correction" in CliRunner().invoke(app, ["quantize", "-h"]).output
    assert "--accuracy-db" in CliRunner().invoke(app, ["quantize", "-h"]).output
    refused = CliRunner().invoke(app, ["quantize", "--accuracy-db", "70"])
    assert refused.exit_code == 1 and "--accuracy-db must be within 20-60 dB" in refused.output


@pytest.mark.data
def test_calibration_windows_from_the_data_avoid_the_dev_frames() -> None:
    from stream_derain.quantize import CALIBRATION_SOURCES, EXCLUDED, calibration_files, calibration_windows

    info = models.ModelInfo("k5", "test", {}, 4, frames=5, offsets=models.default_offsets(5))
    wins = calibration_windows(info, count=20, size=(90, 160))
    assert len(wins) == 20 and all(len(w.frames) == 5 for w in wins)
    assert wins[0].nchw().shape == (1, 15, 90, 160) and wins[0].nchw().max() <= 1.0
    assert any(w.frames[0] is not w.frames[1] for w in wins)  # video windows read neighbours
    for src in CALIBRATION_SOURCES:
        files = calibration_files(src)
        assert files and not any(x in p.as_posix() for p in files for x in EXCLUDED)
