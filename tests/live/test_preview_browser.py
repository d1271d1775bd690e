"""Issue 28: the live preview page, as a real headless browser renders it, shows the run's
figures (its script fills them in from /stats.json) beside the video."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from browsers import browser

from stream_derain.io.video import FrameItem
from stream_derain.live.outputs import PreviewServer
from stream_derain.live.run import LiveStats


@pytest.mark.browser
def test_the_page_shows_the_run_figures_in_a_headless_browser(tmp_path: Path) -> None:
    preview = PreviewServer(0)
    try:
        image = np.zeros((120, 160, 3), np.uint8)
        image[:, :80] = (40, 160, 220)
        preview.write(FrameItem(0, None, None, image, captured=time.monotonic()))
        stats = LiveStats(seconds=4.0, fps_in=25.0, fps_out=24.5, latency_s=0.21, latency_p95_s=0.3,
                          dropped_queue=2, dropped_late=1, reconnects=1, connected=True, backend="openvino")
        preview.publish(stats.as_dict())
        url = f"http://127.0.0.1:{preview.port}/"
        common = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=60).stdout
        shot = tmp_path / "preview.png"
        subprocess.run([*common, f"--screenshot={shot}", "--window-size=480,320", url], capture_output=True,
                       timeout=60)
    finally:
        preview.close()
    for figure in ("in 25.0 fps", "out 24.5 fps", "latency 210 ms", "p95 300", "dropped 3", "reconnects 1",
                   "connected", "openvino"):
        assert figure in dom, dom
    assert shot.is_file() and shot.stat().st_size > 1000
