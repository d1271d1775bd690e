"""Output paths that never lose data: identity checks and write-then-rename.

- :func:`same_file` compares by identity (device and inode, so hard links count),
  not by resolved name;
- :func:`partial_path` is the temporary name an output is written under, beside it
  (same folder, so the final rename is atomic; hidden, and with the same extension,
  so PyAV and OpenCV still pick the format from it);
- :func:`atomic_output` renames the temporary file onto the output only when the
  body succeeds, and removes it otherwise: a failed or killed run never leaves a
  torn file at the output path, and an older output stays as it was.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)
PARTIAL = ".partial-"  # marker in temporary names (listings skip hidden files anyway)
# the one list of stream URL schemes: the file front door, the video reader and live/ all use it
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
URL_SCHEMES = tuple(f"{s}://" for s in STREAM_SCHEMES)


def has_stream_scheme(text: str) -> bool:
    """Whether ``text`` starts with a stream scheme and a colon (``rtsp:``, ``srt:``...),
    the way FFmpeg picks a protocol: such an input is opened, not looked for on disk."""
    return str(text).lower().startswith(tuple(f"{s}:" for s in STREAM_SCHEMES))


def is_url(text: str) -> bool:
    """Whether ``text`` is a stream URL (``rtsp://host/...``); also the one-slash form
    (``rtsp:/host``) that ``Path`` makes of one."""
    return str(text).lower().startswith(tuple(f"{s}:/" for s in STREAM_SCHEMES))


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same name, or the same inode (hard or
    symbolic links); False when either does not exist yet and the names differ."""
    try:
        if a.resolve() == b.resolve():
            return True
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_regular_or_fifo(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


def partial_path(out: Path) -> Path:
    """``dir/.name.partial-PID.ext`` for ``dir/name.ext``."""
    return out.with_name(f".{out.stem}{PARTIAL}{os.getpid()}{out.suffix}")


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove the temporary file %s: %s", path, exc)


@contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """Yields the temporary path to write; on success it is renamed onto ``out``
    (replacing an older one), on any exception it is removed and ``out`` is untouched."""
    tmp = partial_path(out)
    remove_quietly(tmp)
    try:
        yield tmp
    except BaseException:
        remove_quietly(tmp)
        raise
    if tmp.exists():
        os.replace(tmp, out)
