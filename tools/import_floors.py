"""Draw losia-cl as a house: packages are rooms on floors, imports are arrows that must point down.

Usage::

    python tools/import_floors.py            # summary: floors, cycles, upward imports
    python tools/import_floors.py --verbose  # also every room's floor and the imports it makes

The tool reads the source with :mod:`ast` (it imports nothing from the project) and finds every
``import``/``from ... import`` statement, at module level, inside functions and classes, and under
``if TYPE_CHECKING:`` (the lazy package facades list their names there), relative imports included.

Two graphs are built from those statements:

* the **module graph**: one node per module (``losia_cl.trainer.step``); its cycles are the circles
  that make an import order fragile, even inside one package;
* the **room graph**: one node per *room*. A room is a sub-package of ``losia_cl`` (``trainer``,
  ``optim``, ``report`` with its ``sections``, the ``streams`` and ``metrics`` folders mounted as
  ``losia_cl.streams`` / ``losia_cl.metrics``) or a single top-level module of ``losia_cl``
  (``errors``, ``bench``, ``cli`` ...). The root ``losia_cl/__init__.py`` is the facade room ``losia_cl``.
  Rooms are what floors are made of: a package is the unit a reader learns as one job.

The floor of a room is the longest chain of imports below it (a room importing nothing of the project
is on floor 0). :data:`LAYERS` declares the intended floor order; an **upward import** is an import from a
room to a room declared on a higher layer. Imports within one layer are allowed as long as they make
no cycle.

The running Python does not need torch: only the standard library is used.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: source folder -> dotted package name it is installed as (pyproject.toml [tool.setuptools] package-dir)
SOURCES = {"losia_cl": "losia_cl", "streams": "losia_cl.streams", "metrics": "losia_cl.metrics"}

#: The declared layer of every room, bottom (0) to top. A room may import rooms of its own layer or below.
LAYERS: dict[str, int] = {
    # 0: helpers that import nothing of the project (or only errors).
    "errors": 0,
    "lazy": 0,
    "timing": 0,
    "help_formatter": 0,
    "progress": 0,
    # 1: small building blocks: documented fields, atomic files, safe names, the registry, TOML, plain data.
    "fields": 1,
    "files": 1,
    "names": 1,
    "registry": 1,
    "toml_file": 1,
    "plain": 1,
    # 2: the nouns: task streams, pure metrics, the LoSiA optimizer, model loading, the answer-token loss
    #    and the one optimizer step every training loop shares.
    "streams": 2,
    "metrics": 2,
    "optim": 2,
    "models": 2,
    "lm_loss": 2,
    "step": 2,
    # 3: built on one noun: training methods, the results schema, seeds.json, learning rates and tune.json,
    #    the Hugging Face Trainer glue, presets, and the package facade (it exposes the optimizer).
    "methods": 3,
    "results": 3,
    "multiseed": 3,
    "hf": 3,
    "presets": 3,
    "learning_rates": 3,
    "decoding": 3,
    "losia_cl": 3,
    # 4: a training step across processes, scoring a model on tasks (and the general probe built on it),
    #    the pieces of a benchmarked step.
    "distributed": 4,
    "evaluator": 4,
    "retention": 4,
    "bench_setup": 4,
    # 5: the sequential trainer: one run of a stream with methods.
    "trainer": 5,
    # 6: learning-rate tuning, which runs the trainer.
    "tune": 6,
    # 7: readers of models and runs: evaluation of any model, Avalanche, the report.
    "evaluation": 7,
    "avalanche": 7,
    "report": 7,
    # 8: the step benchmark command (single-process, or data-parallel through distributed).
    "bench": 8,
    # 9: the command line.
    "cli": 9,
    "__main__": 9,
}


@dataclass(frozen=True)
class Import:
    """One import statement's arrow: ``source`` module imports ``target`` module."""

    source: str
    target: str
    path: str
    line: int
    in_function: bool
    type_only: bool = False  #: under ``if TYPE_CHECKING:`` (a lazy facade's names, or an annotation)


@dataclass
class Graph:
    """The modules found, their imports of project modules, and the imports of the project."""

    modules: dict[str, Path] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)
    statements: int = 0
    function_statements: int = 0
    project_statements: int = 0
    project_function_statements: int = 0


def module_name(path: Path, folder: str, root: Path = ROOT) -> str:
    """Dotted name of the module at ``path`` inside source ``folder`` of checkout ``root``."""
    parts = list(path.relative_to(root / folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([SOURCES[folder], *parts])


def room(module: str) -> str:
    """The room of a module: its sub-package of ``losia_cl``, its top-level module name, or the facade."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def find_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every project module (dotted name -> file)."""
    found: dict[str, Path] = {}
    for folder in SOURCES:
        for path in sorted((root / folder).rglob("*.py")):
            found[module_name(path, folder, root)] = path
    return found


class _Collector(ast.NodeVisitor):
    """Collects import statements with their line, whether they sit inside a function or under TYPE_CHECKING."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool, bool]] = []
        self._depth = 0
        self._type_checking = 0

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
        if name != "TYPE_CHECKING":
            self.generic_visit(node)
            return
        self._type_checking += 1
        for child in node.body:
            self.visit(child)
        self._type_checking -= 1
        for child in node.orelse:
            self.visit(child)

    def _function(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._depth > 0, self._type_checking > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node, self._depth > 0, self._type_checking > 0))


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute dotted name ``from <node.module>`` refers to, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _project_target(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest project module that ``name`` (a dotted module or module.attribute) lies in."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def build_graph(root: Path = ROOT) -> Graph:
    """Parse every project module and collect its imports of project modules."""
    graph = Graph(modules=find_modules(root))
    for module, path in graph.modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _Collector()
        collector.visit(tree)
        is_package = path.name == "__init__.py"
        rel = str(path.relative_to(root))
        for node, in_function, type_only in collector.found:
            graph.statements += 1
            graph.function_statements += in_function
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = _absolute(module, is_package, node)
                names = [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
            targets = {_project_target(name, graph.modules) for name in names} - {None, module}
            graph.project_statements += bool(targets)
            graph.project_function_statements += bool(targets) and in_function
            for target in sorted(targets):
                graph.imports.append(Import(module, target, rel, node.lineno, in_function, type_only))
    return graph


def strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted; components in reverse topological order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return components


def cycles(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (each one is at least one cycle)."""
    return [c for c in strongly_connected(nodes, edges) if len(c) > 1]


def floors(nodes: list[str], edges: dict[str, set[str]]) -> dict[str, int]:
    """Floor of each node: the longest import chain below it, a cycle counting as one node."""
    components = strongly_connected(nodes, edges)  # reverse topological: dependencies come first
    component_of = {node: i for i, members in enumerate(components) for node in members}
    level: dict[int, int] = {}
    for i, members in enumerate(components):
        below = [level[component_of[t]] for m in members for t in edges.get(m, ()) if component_of[t] != i]
        level[i] = 1 + max(below) if below else 0
    return {node: level[component_of[node]] for node in nodes}


@dataclass
class Report:
    """What the tool measures."""

    graph: Graph
    room_floors: dict[str, int]
    module_cycles: list[list[str]]
    room_cycles: list[list[str]]
    upward: list[Import]
    undeclared: list[str]

    @property
    def floor_count(self) -> int:
        return 1 + max(self.room_floors.values(), default=-1)


def measure(root: Path = ROOT, layers: dict[str, int] = LAYERS) -> Report:
    """Build both graphs and measure floors, cycles and imports against ``layers``."""
    graph = build_graph(root)
    modules = sorted(graph.modules)
    module_edges: dict[str, set[str]] = defaultdict(set)
    room_edges: dict[str, set[str]] = defaultdict(set)
    for imp in graph.imports:
        module_edges[imp.source].add(imp.target)
        if room(imp.source) != room(imp.target):
            room_edges[room(imp.source)].add(room(imp.target))
    rooms = sorted({room(m) for m in modules})
    upward = [
        imp
        for imp in graph.imports
        if room(imp.source) in layers
        and room(imp.target) in layers
        and layers[room(imp.target)] > layers[room(imp.source)]
    ]
    return Report(
        graph=graph,
        room_floors=floors(rooms, room_edges),
        module_cycles=cycles(modules, module_edges),
        room_cycles=cycles(rooms, room_edges),
        upward=upward,
        undeclared=[r for r in rooms if r not in layers],
    )


def render(report: Report, verbose: bool = False) -> str:
    """The report as text."""
    g = report.graph
    lines = [
        f"modules: {len(g.modules)}  import statements: {g.statements} (inside functions: {g.function_statements})",
        f"imports of project modules: {g.project_statements} (inside functions: {g.project_function_statements})",
        f"floors: {report.floor_count}",
    ]
    by_floor: dict[int, list[str]] = defaultdict(list)
    for name, level in report.room_floors.items():
        by_floor[level].append(name)
    for level in sorted(by_floor, reverse=True):
        lines.append(f"  floor {level}: {', '.join(sorted(by_floor[level]))}")
    lines.append(f"room cycles: {len(report.room_cycles)}")
    lines += [f"  {' <-> '.join(c)}" for c in report.room_cycles]
    lines.append(f"module cycles: {len(report.module_cycles)}")
    lines += [f"  {' <-> '.join(c)}" for c in report.module_cycles]
    lines.append(f"upward imports (against LAYERS): {len(report.upward)}")
    for imp in report.upward:
        where = "in a function" if imp.in_function else "module level"
        where += ", TYPE_CHECKING only" if imp.type_only else ""
        lines.append(
            f"  {imp.path}:{imp.line} {room(imp.source)} (layer {LAYERS[room(imp.source)]}) -> "
            f"{imp.target} (layer {LAYERS[room(imp.target)]}), {where}"
        )
    if report.undeclared:
        lines.append(f"rooms missing from LAYERS: {', '.join(report.undeclared)}")
    if verbose:
        lines.append("arrows between rooms:")
        arrows: dict[str, set[str]] = defaultdict(set)
        for imp in g.imports:
            if room(imp.source) != room(imp.target):
                arrows[room(imp.source)].add(room(imp.target))
        for name in sorted(arrows, key=lambda r: (-report.room_floors[r], r)):
            lines.append(f"  {name} (floor {report.room_floors[name]}) -> {', '.join(sorted(arrows[name]))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true", help="also list the arrows between rooms")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to measure (default: this one)")
    args = parser.parse_args(argv)
    report = measure(args.root.resolve())
    sys.stdout.write(render(report, verbose=args.verbose) + "\n")
    problems = len(report.room_cycles) + len(report.module_cycles) + len(report.upward) + len(report.undeclared)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
