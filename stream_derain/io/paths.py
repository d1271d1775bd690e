"""Output paths that never lose data: identity checks and write-then-rename.

- :func:`same_file` compares by identity (device and inode, so hard links count),
  not by resolved name;
- :func:`partial_path` is the temporary name an output is written under, beside it
  (same folder, so the final rename is atomic; hidden, and with the same extension,
  so PyAV and OpenCV still pick the format from it), shortened (with a hash of the
  name) where the filesystem could not hold it;
- :func:`atomic_output` renames the temporary file onto the output only when the
  body succeeds, and removes it otherwise: a failed or killed run never leaves a
  torn file at the output path, and an older output stays as it was. It never
  replaces a file that appeared at the output path during the run (the final link
  is exclusive), and removes the temporary files that killed runs (their PID gone)
  left for the same output;
- :func:`av_name` is the name to give FFmpeg for a local file: ``file:x.mp4`` is the
  file of that name, never a protocol.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputError

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


def av_name(path: Path | str) -> str:
    """The name FFmpeg opens as the local file ``path`` itself: its ``file:`` protocol
    (``x:y.mp4`` or ``file:y.mp4`` would otherwise pick a protocol, or another file)."""
    return "file:" + os.fspath(path)


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the filesystem of ``folder`` (or of the nearest
    folder above it that exists) holds; 255 when it does not say."""
    for f in [folder, *folder.parents]:
        try:
            return int(os.pathconf(f, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return 255


def check_name(path: Path, what: str = "output") -> None:
    """OutputError when the file name of ``path`` is longer than its filesystem holds."""
    size, limit = len(os.fsencode(path.name)), name_max(path.parent)
    if size > limit:
        raise OutputError(f"the {what} name is too long for the filesystem ({size} bytes, at most {limit}): "
                          f"{path.name[:40]}...; give a shorter name with -o")


def partial_path(out: Path, pid: int | None = None) -> Path:
    """``dir/.name.partial-PID.ext`` for ``dir/name.ext``; the name part shortened (and
    a hash of the whole name added) where that would pass the filesystem's limit."""
    pid = os.getpid() if pid is None else pid
    name = f".{out.stem}{PARTIAL}{pid}{out.suffix}"
    limit = name_max(out.parent)
    if len(os.fsencode(name)) <= limit:
        return out.with_name(name)
    tail = f"~{_digest(out)}{PARTIAL}{pid}{out.suffix}"
    room = max(limit - 1 - len(os.fsencode(tail)), 0)
    stem = os.fsencode(out.stem)[:room].decode("utf-8", "ignore")
    return out.with_name(f".{stem}{tail}")


def _digest(out: Path) -> str:
    return hashlib.sha1(os.fsencode(out.name)).hexdigest()[:8]


def _partial_pid(out: Path, name: str) -> int | None:
    """The PID in ``name`` if it is a temporary file of ``out`` (:func:`partial_path`)."""
    pid, ext = r"(\d+)", re.escape(out.suffix)
    full = re.fullmatch(re.escape(f".{out.stem}{PARTIAL}") + pid + ext, name)
    short = re.fullmatch(r"\.(.*)" + re.escape(f"~{_digest(out)}{PARTIAL}") + pid + ext, name)
    if full:
        return int(full.group(1))
    if short and out.stem.startswith(short.group(1)):
        return int(short.group(2))
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return True
    return True


_PARTIALS_SEEN: dict[str, set[str]] = {}  # folder -> temporary names found there (one listing a run)


def _partial_names(folder: Path) -> set[str]:
    """The temporary-looking names in ``folder``, listed once per process: the files of
    runs killed before this one started are all there at the first look."""
    key = os.path.abspath(folder)
    if key not in _PARTIALS_SEEN:
        try:
            _PARTIALS_SEEN[key] = {e.name for e in os.scandir(folder)
                                   if e.name.startswith(".") and PARTIAL in e.name}
        except OSError:
            return set()
    return _PARTIALS_SEEN[key]


def remove_stale_partials(out: Path) -> list[Path]:
    """Remove the temporary files of ``out`` that runs killed before they finished left
    (their PID is gone); returns them."""
    names = _partial_names(out.parent)
    stale = []
    for name in sorted(names):
        pid = _partial_pid(out, name)
        if pid is not None and pid != os.getpid() and not pid_alive(pid):
            stale.append(out.with_name(name))
            remove_quietly(stale[-1])
            names.discard(name)
    if stale:
        log.info("removed %d temporary file(s) of killed runs: %s", len(stale),
                 ", ".join(p.name for p in stale))
    return stale


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove the temporary file %s: %s", path, exc)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _refuse(tmp: Path, out: Path) -> OutputError:
    remove_quietly(tmp)
    return OutputError(f"{out} was created by something else while this run was writing it: not replaced "
                       "(this run's result is discarded; use --overwrite to replace it)")


NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV, errno.ENOSYS)


def _link_exclusive(tmp: Path, out: Path) -> None:
    """``tmp`` becomes ``out`` unless ``out`` exists (a hard link cannot replace a file);
    on a filesystem without hard links, a check and a rename."""
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise _refuse(tmp, out) from None
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
        if os.path.lexists(out):
            raise _refuse(tmp, out) from None
        os.replace(tmp, out)
        return
    remove_quietly(tmp)


@contextmanager
def atomic_output(out: Path, overwrite: bool | None = None) -> Iterator[Path]:
    """Yields the temporary path to write; on success it becomes ``out``, on any exception
    it is removed and ``out`` is untouched. ``overwrite``: True replaces whatever is at
    ``out`` at the end; None (default) replaces only the file that was there when the
    run began (the caller has checked that it may go), and False nothing: a file that
    appears at ``out`` during the run is never replaced (OutputError)."""
    remove_stale_partials(out)
    existed = _identity(out) if overwrite is None else None
    tmp = partial_path(out)
    remove_quietly(tmp)
    try:
        yield tmp
    except BaseException:
        remove_quietly(tmp)
        raise
    if not tmp.exists():
        return
    if overwrite or (existed is not None and _identity(out) == existed):
        os.replace(tmp, out)
    else:
        _link_exclusive(tmp, out)
