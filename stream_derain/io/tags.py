"""Metadata tags copied from the input, as ffmpeg's ``-map_metadata 0`` does."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# tags that describe the old file rather than its content: the muxer writes its own
NOT_COPIED = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "_statistics_tags",
              "number_of_frames", "number_of_bytes", "bps", "_statistics_writing_app",
              "_statistics_writing_date_utc"}


def copyable_tags(obj: Any) -> dict[str, str]:
    """The tags of a container or stream worth copying; {} when they cannot be read
    (a corrupt header can hold undecodable bytes)."""
    try:
        tags = dict(obj.metadata)
    except (UnicodeDecodeError, ValueError, AttributeError) as exc:
        log.warning("metadata not readable, not copied: %s", exc)
        return {}
    return {k: v for k, v in tags.items()
            if k.lower() not in NOT_COPIED and not k.lower().startswith("duration")}
