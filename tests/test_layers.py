"""The layers of the package hold: the core imports no plugin, no adapter and not the CLI,
and the core's modules import downward only (no cycle among them).

Every import counts, also one inside a function: a function-level import back into a
higher module is the same dependency, only hidden, and breaks as soon as the order in
which modules are first imported changes.

One kind is exempt from the cycle rule (not from the rule on plugins and adapters): an
import under ``if TYPE_CHECKING:`` in a module with ``from __future__ import
annotations``. It never runs, so it cannot meet a half-imported module, cost start-up
time or decide an import order; it only names, for readers and type checkers, the type
of an object the module is handed. Two names need it: the application state
(``itsm.core.state.Itsm``), which is built from the record service, the outbox and the
plugin host and handed to them in turn, and the hook specifications, which document
every hook's argument types (records, SLA targets, channels) while those modules use the
``hookimpl`` marker beside them. Importing them at run time would be the loop.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "itsm"
FORBIDDEN_FOR_CORE = ("itsm.plugins", "itsm.adapters", "itsm.cli", "itsm.commands")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))
            if "migrations" not in path.relative_to(PACKAGE).parts}


MODULES = _modules()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """The lines inside ``if TYPE_CHECKING:`` blocks, when annotations are not evaluated
    (``from __future__ import annotations``): there those imports never run."""
    postponed = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                    and any(a.name == "annotations" for a in node.names) for node in tree.body)
    if not postponed:
        return set()
    return {line for node in ast.walk(tree) if isinstance(node, ast.If)
            and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
            for child in node.body
            for line in range(child.lineno, (child.end_lineno or child.lineno) + 1)}


def _imports(name: str, path: Path, *, run_time_only: bool = False) \
        -> Iterator[tuple[str, int]]:
    """(imported module, line) for each import anywhere in the module, function bodies
    included; ``from a import b`` counts as importing ``a.b`` where that is a module.
    ``run_time_only`` leaves out the imports made for type checkers only."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_lines(tree) if run_time_only else set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package upward
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _core_graph() -> dict[str, set[str]]:
    """The core's modules and the core modules each imports. Importing ``a.b.c`` runs
    ``a/b/__init__`` first, so a package's ``__init__`` counts as imported too."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if not _within(name, "itsm.core"):
            continue
        edges = graph.setdefault(name, set())
        for target, _ in _imports(name, path, run_time_only=True):
            if not _within(target, "itsm.core"):
                continue
            parts = target.split(".")
            for i in range(3, len(parts) + 1):  # itsm.core itself is empty
                prefix = ".".join(parts[:i])
                if prefix in MODULES and prefix != name and not _within(name, prefix):
                    edges.add(prefix)
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or
    round a loop (groups of one module only where it imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _a_cycle(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One loop through the group's first module, for the message: a -> b -> a."""
    start = group[0]
    members = set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    return group


def test_the_core_imports_no_plugin_adapter_or_cli():
    found = sorted({f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
                    for name, path in MODULES.items() if _within(name, "itsm.core")
                    for target, line in _imports(name, path)
                    if any(_within(target, forbidden) for forbidden in FORBIDDEN_FOR_CORE)})
    assert not found, "the core must not depend on what is built on it:\n" + "\n".join(found)


def test_the_core_modules_import_downward_only():
    graph = _core_graph()
    cycles = [f"{' -> '.join(_a_cycle(group, graph))} (one loop of {len(group)} modules "
              f"tangled together: {', '.join(group)})" for group in _strongly_connected(graph)]
    assert not cycles, ("the core's modules import each other round a loop (move what both "
                        "need into a lower module):\n" + "\n".join(cycles))


@pytest.mark.parametrize("source, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
    ({"a": {"a"}}, [["a"]]),
])
def test_cycles_are_found(source, expected):
    """The check itself: a loop of three modules is one group, a chain is none."""
    assert _strongly_connected(source) == expected


def test_only_imports_that_never_run_are_left_out_of_the_cycles():
    postponed = ast.parse("from __future__ import annotations\nfrom typing import "
                          "TYPE_CHECKING\nif TYPE_CHECKING:\n    from a import B\n"
                          "def f():\n    from c import D\n")
    evaluated = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                          "    from a import B\n")
    assert _type_checking_lines(postponed) == {4}
    assert _type_checking_lines(evaluated) == set()
