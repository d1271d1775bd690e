"""The import rules of docs/architecture.md: lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stream_derain"
HIGHER = ("derain", "device_frames", "live", "bench", "cli", "batch", "cluster")


def _module(path: Path) -> str:
    parts = ["stream_derain", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The stream_derain modules ``path`` imports (relative imports resolved)."""
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)  # `from . import x`
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.split(".")[0] == "stream_derain"}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _files(*tops: str) -> list[Path]:
    out = []
    for top in tops:
        folder, file = PACKAGE / top, PACKAGE / f"{top}.py"
        out += sorted(folder.rglob("*.py")) if folder.is_dir() else [file]
    return out


@pytest.mark.parametrize("path", _files("io", "pipeline"), ids=lambda p: p.name)
def test_io_and_pipeline_import_no_higher_layer(path: Path) -> None:
    bad = sorted(m for m in _imports(path) if _top(m) in HIGHER)
    assert not bad, f"{_module(path)} imports {bad}"


@pytest.mark.parametrize("path", _files("devices", "models", "errors"), ids=lambda p: p.name)
def test_devices_models_errors_sit_at_the_bottom(path: Path) -> None:
    bad = sorted(m for m in _imports(path) if _top(m) not in ("errors", ""))
    assert not bad, f"{_module(path)} imports {bad}"


def test_nothing_imports_the_cli() -> None:
    users = [_module(p) for p in PACKAGE.rglob("*.py")
             if _top(_module(p)) not in ("cli", "__main__") and any(_top(m) == "cli" for m in _imports(p))]
    assert not users
