"""The house's shape, checked from the source: no import cycles, no room too big.

Imports are read from the code (every ``import``, at any depth, except
those under ``if TYPE_CHECKING:``, which never run), so a cycle hidden in a
function body counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "offline_build"
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 450, 150, 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, skipping the bodies of ``if TYPE_CHECKING:``."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def imports_of(name: str) -> set[str]:
    """The package's modules that *name* imports."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if not node.module:
                found.add(base)  # ``from . import x`` runs the package's __init__ first: an edge to it
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in MODULES else base)
    # Importing ``a.b.c`` runs ``a/b/__init__.py`` first: an edge to each package above a module found (but not
    # to *name*'s own packages, which are already importing when *name* runs).
    found |= {p for m in found for p in _packages_above(m)} - _packages_above(name)
    return {m for m in found if m in MODULES and m != name}


def _packages_above(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_is_read_from_the_imports() -> None:
    """The reader sees relative, nested and package imports (else the cycle test proves nothing)."""
    assert "offline_build.executor" in imports_of("offline_build.export")
    assert "offline_build.runners" in imports_of("offline_build.runners.build")  # from . import Runtime
    assert "offline_build.runners.build" in imports_of("offline_build.executor")  # from .runners import build
    assert "offline_build.captures" in imports_of("offline_build.variant")  # from .captures.apt import ...: __init__
    assert "offline_build.captures" not in imports_of("offline_build.captures.apt")  # its own package
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_modules() -> None:
    graph = {name: imports_of(name) for name in MODULES}
    assert find_cycle(graph) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_room_is_too_big(name: str) -> None:
    text = MODULES[name].read_text()
    assert len(text.splitlines()) <= MAX_MODULE, f"{name} has over {MAX_MODULE} lines"
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        if isinstance(node, ast.ClassDef):
            assert size <= MAX_CLASS, f"class {name}.{node.name} has {size} lines"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert size <= MAX_FUNCTION, f"function {name}.{node.name} has {size} lines"


def test_the_captures_are_the_ones_the_registry_names_in_its_order() -> None:
    """capture_names is the one list: the bundle's member check and the project file's ``captures:`` keys are
    read from it, so a capture missing there would make setup refuse every bundle that carries it."""
    from offline_build import bundle, capture_names
    from offline_build.captures import all_captures

    assert [c.name for c in all_captures()] == list(capture_names.CAPTURES)
    assert set(bundle.FILE_FOLDERS) == {*capture_names.CAPTURES, "resources"}


def test_every_language_capture_can_be_switched_off_and_is_noted_by_lint() -> None:
    """The project file's ``captures:`` keys, and lint's notes for the steps a capture serves (else lint keeps
    calling a served step an error)."""
    from offline_build import capture_names, fetches, lint
    from offline_build.captures import all_captures
    from offline_build.captures.lang import LangCapture

    names = {c.name for c in all_captures() if isinstance(c, LangCapture)}
    assert {"pip", "maven", "go"} <= names
    # The replay capture is switched off the same way; lint notes the steps it serves by fetches.REPLAYED.
    assert names | {capture_names.REPLAY} == set(capture_names.SWITCHABLE)
    assert names == {tool for tool, _ in lint.SERVED_BY.values()}
    assert fetches.REPLAYED and not fetches.REPLAYED & set(lint.SERVED_BY)
