"""A multi-frame model's engine: its profile takes 3K input channels (a 3-channel
profile does not fit the K-frame input). With TensorRT-RTX it builds on the CPU."""

from __future__ import annotations

import pytest

from stream_derain.catalog import load_model_info
from stream_derain.trt.cache import EngineCache
from stream_derain.trt.engine import EngineRequest, get_engine

pytestmark = [pytest.mark.tensorrt, pytest.mark.usefixtures("can_build")]


@pytest.fixture(scope="module")
def multi_dir(tmp_path_factory):
    pytest.importorskip("onnx")
    from multiframe_models import write_models

    return write_models(tmp_path_factory.mktemp("multiframe"), frames=(3,))


def test_multi_frame_engine_builds_with_window_channels(multi_dir, engine_cache: EngineCache) -> None:
    model = load_model_info("max-k3", multi_dir)
    res, key = get_engine(EngineRequest(model, "fp32", height=32, width=48, max_batch=2), engine_cache)
    assert res.built and res.path.is_file() and key.profile.channels == 9
    assert ".c9." in res.path.name
