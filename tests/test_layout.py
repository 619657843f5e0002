"""The package layout's rules, read from the source (every import, at any depth of a module).

- Layers point one way: a module imports only its own package or lower layers, and
  ``calibration``, ``plan`` and ``reports`` never import each other.
- ``kernels`` uses numpy and numba only (and the standard library); only ``io`` knows
  Parquet (pyarrow).
- No private name (``_x``) crosses a module boundary; no import cycle.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "pipesim"

# Lowest first. Modules of one layer may import each other only inside one package.
LAYERS: list[set[str]] = [
    {"errors", "progress", "text_table", "version"},
    {"kernels"},
    {"scenario"},
    {"io"},
    {"prepare"},
    {"engines"},
    {"simulation"},
    {"calibration", "plan", "reports"},
    {"datasets"},
    {"api"},
    {"app"},
    {"cli"},
    {"__init__"},
]
LAYER = {part: k for k, parts in enumerate(LAYERS) for part in parts}
KERNEL_LIBRARIES = {"numpy", "numba"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    names: tuple[str, ...]  # names taken from the target (from-imports)
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = modules()


def _is_package(name: str) -> bool:
    return (SRC / Path(*name.split(".")) / "__init__.py").is_file()


def _resolve(base: str, name: str) -> str:
    """``from base import name``: the module ``base.name`` when it is one, else ``base``."""
    return f"{base}.{name}" if f"{base}.{name}" in MODULES else base


def imports_of(name: str, path: Path) -> tuple[list[Import], list[tuple[str, int]]]:
    """pipesim imports of a module, and the other top-level libraries it imports."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[Import] = []
    libraries: list[tuple[str, int]] = []
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pipesim":
                    found.append(Import(name, alias.name, (), node.lineno))
                else:
                    libraries.append((alias.name.split(".")[0], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "pipesim":
                if base != "__future__":
                    libraries.append((base.split(".")[0], node.lineno))
                continue
            for alias in node.names:
                target = _resolve(base, alias.name)
                names = () if target != base else (alias.name,)
                found.append(Import(name, target, names, node.lineno))
    return found, libraries


ALL = {name: imports_of(name, path) for name, path in MODULES.items()}


def part_of(module: str) -> str:
    """The layer part a module belongs to: its first name under pipesim."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def where(imp: Import) -> str:
    return f"{MODULES[imp.source].relative_to(SRC.parent)}:{imp.line} imports {imp.target}"


def test_every_module_has_a_layer():
    assert {part_of(m) for m in MODULES} <= set(LAYER), set(map(part_of, MODULES)) - set(LAYER)


def test_lower_layers_never_import_higher_ones():
    bad = []
    for imports, _ in ALL.values():
        for imp in imports:
            src, dst = part_of(imp.source), part_of(imp.target)
            if src == dst:
                continue
            if LAYER[dst] >= LAYER[src]:
                bad.append(where(imp))
    assert not bad, "\n".join(bad)


def test_the_rule_catches_an_upward_import(tmp_path):
    # The checker itself: a kernel importing the scenario layer is reported.
    fake = tmp_path / "pipesim" / "kernels" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from pipesim.scenario.scenario import Scenario\n")
    imports, _ = imports_of("pipesim.kernels.fake", fake)
    (imp,) = imports
    assert LAYER[part_of(imp.target)] > LAYER[part_of(imp.source)]


def test_calibration_plan_and_reports_do_not_import_each_other():
    apart = {"calibration", "plan", "reports"}
    bad = [
        where(imp)
        for imports, _ in ALL.values()
        for imp in imports
        if part_of(imp.source) in apart
        and part_of(imp.target) in apart
        and part_of(imp.source) != part_of(imp.target)
    ]
    assert not bad, "\n".join(bad)


def test_kernels_use_numpy_and_numba_only():
    stdlib = set(sys.stdlib_module_names)
    bad = [
        f"{name}:{line} imports {lib}"
        for name, (_, libraries) in ALL.items()
        if part_of(name) == "kernels"
        for lib, line in libraries
        if lib not in KERNEL_LIBRARIES and lib not in stdlib
    ]
    assert not bad, "\n".join(bad)


def test_only_io_knows_parquet():
    bad = [
        f"{name}:{line} imports {lib}"
        for name, (_, libraries) in ALL.items()
        if part_of(name) != "io"
        for lib, line in libraries
        if lib == "pyarrow"
    ]
    assert not bad, "\n".join(bad)


def _private_attributes(name: str) -> list[str]:
    """``module._x`` where ``module`` is a pipesim module bound by an import."""
    tree = ast.parse(MODULES[name].read_text())
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipesim"):
            for alias in node.names:
                if _resolve(node.module or "", alias.name) != node.module:
                    bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pipesim") and alias.asname:
                    bound.add(alias.asname)
    return [
        f"{name}:{node.lineno} uses {node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in bound
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]


def test_no_private_name_crosses_a_module_boundary():
    bad = [
        f"{where(imp)} name {n}"
        for imports, _ in ALL.values()
        for imp in imports
        for n in imp.names
        if n.startswith("_") and not n.startswith("__")
    ]
    bad += [hit for name in MODULES for hit in _private_attributes(name)]
    assert not bad, "\n".join(bad)


def _cycles() -> list[list[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imports, _ in ALL.values():
        for imp in imports:
            if imp.target in graph and imp.target != imp.source:
                graph[imp.source].add(imp.target)
    # Tarjan's strongly connected components.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles() == []


TABLES = {"funnel", "deals", "arrivals"}


def _positional_table_reads(tree: ast.AST) -> list[int]:
    """Lines reading a kernel table by position: ``x.funnel[4]``, ``x.deals[1:6]``."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr in TABLES
        and (
            (isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int))
            or isinstance(node.slice, ast.Slice)
        )
    ]


def test_kernel_tables_are_read_by_name():
    bad = [
        f"{name}:{line}"
        for name, path in MODULES.items()
        for line in _positional_table_reads(ast.parse(path.read_text()))
    ]
    assert not bad, "\n".join(bad)
    # The check sees a positional read.
    assert _positional_table_reads(ast.parse("n = prepared.funnel[3].shape[1]")) == [1]
    assert _positional_table_reads(ast.parse("a = scenario.deals['amount']")) == []


def test_the_architecture_map_names_every_module():
    text = (SRC.parent / "docs" / "architecture.md").read_text()
    missing = [
        name
        for name, path in MODULES.items()
        if path.name != "__init__.py" and f"`{path.relative_to(PACKAGE).as_posix()}`" not in text
    ]
    assert not missing, missing


def test_tests_mirror_the_packages():
    tests = SRC.parent / "tests"
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")} - {"datasets"}
    missing = sorted(p for p in packages if not any((tests / p).glob("test_*.py")))
    assert not missing, missing
