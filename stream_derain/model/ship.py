"""``stream-derain ship``: an exported model into the shipped models folder (``engines/``).

Export writes to ``runs/export/<name>``; shipping is the one explicit step that
changes what users run. It copies the entry's files after checking their hashes,
refuses a model without a ``lineage`` (a shipped model says how it was made), and
refuses to replace a model already there unless told (``replace``), saying what it
would replace: name, version and lineage hash of the old and the new.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import MANIFEST, read_manifest, sha256, write_entry
from ..errors import ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shipped:
    """What :func:`ship` did: the model shipped, and the one it replaced (if any)."""

    name: str
    version: str
    lineage_hash: str
    dest: Path
    replaced_version: str | None = None
    replaced_lineage: str | None = None

    def describe(self) -> str:
        new = f"{self.name} v{self.version} (lineage {self.lineage_hash})"
        if self.replaced_version is None:
            return f"shipped {new} to {self.dest}"
        return (f"shipped {new} to {self.dest}, replacing v{self.replaced_version} "
                f"(lineage {self.replaced_lineage or 'unrecorded'})")


def _lineage_of(entry: dict[str, Any]) -> str | None:
    lineage = entry.get("lineage")
    return lineage.get("lineage_hash") if isinstance(lineage, dict) else None


def _checked_entry(src: Path, name: str | None) -> tuple[str, dict[str, Any]]:
    """The export's entry (``name``, else the export's default) with its files verified."""
    manifest = read_manifest(src)
    name = name or manifest.get("default")
    entry = manifest.get("models", {}).get(name)
    if entry is None:
        raise ModelError(f"{src} exports no model {name!r} (has {', '.join(manifest.get('models', {}))})")
    if not _lineage_of(entry):
        raise ModelError(f"{name} in {src} has no lineage: export it again with this stream-derain")
    for rec in entry.get("files", {}).values():
        path = src / rec["file"]
        if not path.is_file() or sha256(path) != rec.get("sha256"):
            raise ModelError(f"{path} is missing or does not match its manifest hash; export again")
    return name, entry


def _clashes(dest: Path, name: str, entry: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """Why shipping would overwrite something (None: it would not)."""
    old = manifest.get("models", {}).get(name)
    if old is not None:
        was = _lineage_of(old) or "unrecorded"
        return (f"{dest} already ships {name} v{old.get('version')} (lineage {was}); "
                f"shipping v{entry.get('version')} (lineage {_lineage_of(entry)}) would replace it")
    for rec in entry.get("files", {}).values():
        target = dest / rec["file"]
        if target.exists() and sha256(target) != rec.get("sha256"):
            return f"{target} exists and holds another model"
    return None


def _copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def ship(src: Path, dest: Path, name: str | None = None, replace: bool = False,
         make_default: bool = False, live_default: bool = False) -> Shipped:
    """Copy the exported model ``name`` from ``src`` into ``dest`` and enter it in
    ``dest``'s manifest (its entry replaced whole: an old entry's scores must not stay
    beside new weights). ModelError, before anything is written, when it would replace a
    model (or file) there and ``replace`` is false. The model becomes ``dest``'s default
    when asked or when it already was; ``live_default``: the default of live streams."""
    if src.resolve() == dest.resolve():
        raise ModelError(f"{src} is already the shipped models folder")
    name, entry = _checked_entry(src, name)
    manifest = read_manifest(dest) if (dest / MANIFEST).is_file() else {"models": {}}
    stills = entry.get("stills")
    if stills and stills not in manifest.get("models", {}):
        raise ModelError(f"{name} runs still images on {stills}, which {dest} does not ship; ship it first")
    clash = _clashes(dest, name, entry, manifest)
    if clash and not replace:
        raise ModelError(f"{clash}; pass --replace to replace it")
    old = manifest.get("models", {}).get(name) or {}
    dest.mkdir(parents=True, exist_ok=True)
    for rec in entry.get("files", {}).values():
        _copy(src / rec["file"], dest / rec["file"])
    stale = {r["file"] for r in old.get("files", {}).values()} - {r["file"] for r in entry["files"].values()}
    if stale:
        log.warning("files of the replaced %s left in %s: %s", name, dest, ", ".join(sorted(stale)))
    write_entry(dest, name, entry, default="make" if make_default else "if-none", live_default=live_default)
    done = Shipped(name, str(entry.get("version")), str(_lineage_of(entry)), dest,
                   str(old["version"]) if old else None, _lineage_of(old) if old else None)
    log.info("%s", done.describe())
    return done
