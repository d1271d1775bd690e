"""The import rules of docs/architecture.md: lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stream_derain"
HIGHER = ("derain", "live", "bench", "cli", "jobs", "cluster")


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
    missing = [p for p in out if not p.is_file()]
    assert not missing, f"no such module: {missing}"  # a rename must update the rules
    return out


@pytest.mark.parametrize("path", _files("io", "pipeline", "stages"), ids=lambda p: p.name)
def test_io_pipeline_and_stages_import_no_higher_layer(path: Path) -> None:
    bad = sorted(m for m in _imports(path) if _top(m) in HIGHER)
    assert not bad, f"{_module(path)} imports {bad}"


@pytest.mark.parametrize("path", _files("devices", "catalog", "errors"), ids=lambda p: p.name)
def test_devices_catalog_errors_sit_at_the_bottom(path: Path) -> None:
    bad = sorted(m for m in _imports(path) if _top(m) not in ("errors", ""))
    assert not bad, f"{_module(path)} imports {bad}"


def test_nothing_imports_the_cli() -> None:
    users = [_module(p) for p in PACKAGE.rglob("*.py")
             if _top(_module(p)) not in ("cli", "__main__") and any(_top(m) == "cli" for m in _imports(p))]
    assert not users


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from .x import name`` counts as ``x``)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for m in _imports(path):
            while m and m not in modules:  # an imported name, not a module: its module
                m = m.rpartition(".")[0]
            if m and m != name:
                deps.add(m)
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle() -> None:
    """A package's ``__init__`` importing its own submodules (to re-export them) is not
    counted: that is how packages are built, not an import back up the layers."""
    graph = {m: {d for d in deps if not d.startswith(f"{m}.")} for m, deps in _graph().items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", _files("trt"), ids=lambda p: p.name)
def test_trt_sits_below_the_backends(path: Path) -> None:
    """The TensorRT backend builds on trt/ (probe, engine, cache); nothing in trt/ imports a
    backend (the engine check, which runs one, lives in backends/trt_check.py)."""
    bad = sorted(m for m in _imports(path) if _top(m) == "backends")
    assert not bad, f"{_module(path)} imports {bad}"


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_no_module_over_400_lines() -> None:
    sizes = {_module(p): p.read_text().count("\n") for p in PACKAGE.rglob("*.py")}
    long = {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not long, long


def test_no_function_over_60_lines() -> None:
    """Counted from ``def`` to the end of the body, decorators and option declarations
    included (the CLI's shared option group keeps the commands short)."""
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{_module(path)}.{node.name}"] = n
    assert not long, long
