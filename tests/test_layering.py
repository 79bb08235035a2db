"""The layering rules of ``docs/architecture.md``, checked on the import graph.

- no import cycles between modules;
- the core's top-level modules and packages form a graph without cycles (imports go one way);
- the core never imports an adapter, the adapters never import each other (the core reaches
  them through entry points, which ``pyproject.toml`` declares);
- ``reskill_gym.view`` is imported by nothing outside itself.

Every import a module runs counts, at module level or inside a function (a lazy import is
still an arrow: it only hides a cycle until the call); imports under ``if TYPE_CHECKING``
never run and do not count. ``from pkg import submodule`` is an arrow to the submodule.
The graph is read from the source with ``ast``, nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "reskill_gym": ROOT / "reskill_gym",
    "reskill_local": ROOT / "adapters" / "local" / "reskill_local",
    "reskill_verl": ROOT / "adapters" / "verl" / "reskill_verl",
}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for root in PACKAGES.values():
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement outside ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports when it runs."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                subs = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in modules]
                targets = subs + ([source] if len(subs) < len(node.names) else [])
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _top(module: str) -> str:
    """``reskill_gym.skills.library`` -> ``reskill_gym.skills``; an adapter -> its package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "reskill_gym" and len(parts) > 1 else parts[0]


def _arrows(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [(a, b) for a, targets in graph.items() for b in sorted(targets)]


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 100 and sum(map(len, graph.values())) > 300  # the graph was read
    assert cycles(graph) == []


def test_cycle_finder_finds_a_lazy_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import x\n"
        "def f():\n    import y\n"
    )
    assert [n.names[0].name for n in _runtime_imports(tree) if isinstance(n, ast.Import)] == ["y"]


def test_core_top_level_is_layered() -> None:
    top: dict[str, set[str]] = {}
    for a, b in _arrows(import_graph()):
        if a.startswith("reskill_gym") and b.startswith("reskill_gym") and _top(a) != _top(b):
            top.setdefault(_top(a), set()).add(_top(b))
            top.setdefault(_top(b), set())
    assert len(top) > 20
    assert cycles(top) == []


def test_core_never_imports_an_adapter_and_adapters_not_each_other() -> None:
    arrows = _arrows(import_graph())
    core_to_adapter = [
        (a, b)
        for a, b in arrows
        if a.startswith("reskill_gym.") and not b.startswith("reskill_gym")
    ]
    assert core_to_adapter == []
    across = [
        (a, b)
        for a, b in arrows
        if {a.split(".")[0], b.split(".")[0]} == {"reskill_local", "reskill_verl"}
    ]
    assert across == []


def test_adapters_and_the_viewer_are_reached_through_entry_points() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    commands = pyproject["project"]["entry-points"]["reskill_gym.cli"]
    targets = {value.split(":")[0].split(".")[0] for value in commands.values()}
    assert {"reskill_local", "reskill_verl"} <= targets
    assert any(value.startswith("reskill_gym.view") for value in commands.values())
    assert pyproject["project"]["entry-points"]["verl.plugins"]["reskill"] == "reskill_verl.plugin"
    importers = [a for a, b in _arrows(import_graph()) if _top(b) == "reskill_gym.view"]
    assert [a for a in importers if _top(a) != "reskill_gym.view"] == []


def test_only_the_skills_package_names_the_version_store() -> None:
    """A library's ``.reskill`` store is ``reskill_gym.skills``' own layout: everything else
    opens a library through it (``SkillLibrary``, ``skills.source``), so the layout can change
    in one place (docs/architecture.md)."""
    skills = PACKAGES["reskill_gym"] / "skills"
    named = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in _modules().values()
        if skills not in path.parents
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if '".reskill"' in line or "'.reskill'" in line or ".reskill/" in line
    ]
    assert not named, named
