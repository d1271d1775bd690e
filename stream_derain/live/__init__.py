"""Live streams: a reconnecting source, bounded latency, push / preview / segment outputs.

``run_live(LiveConfig(SourceConfig("rtsp://..."), record_dir=Path("rec")))`` runs until
stopped; see :mod:`.run`.
"""

from __future__ import annotations

from .outputs import CallbackOutput, PreviewServer, PushOutput, SegmentRecorder
from .run import LiveConfig, LiveStats, run_live
from .source import ReconnectingSource, SourceConfig

__all__ = ["CallbackOutput", "LiveConfig", "LiveStats", "PreviewServer", "PushOutput", "ReconnectingSource",
           "SegmentRecorder", "SourceConfig", "run_live"]
