"""The package's dependencies point one way (docs: DESIGN.md, "Layers and layout").

Every module under ``src/mlpatterns`` is read with ``ast``; every import counts, at the
top of a module and inside functions alike (``import x``, ``from x import y``, relative
imports resolved against the importing module's package). Four rules:

1. **Layers.** The orchestration layer is :mod:`mlpatterns.spec`, :mod:`mlpatterns.lifecycle`
   and :mod:`mlpatterns.cli`; every other module is a pattern component (the chapter
   packages ``data``, ``problem``, ``models``, ``training``, ``serving``, ``export``,
   ``reproducibility``, ``responsible``, ``testing`` and the foundation packages and modules
   ``bundles``, ``hashing``, ``tables``, ``sql``, ``metrics``, ...). A component never imports the
   orchestration layer.
2. **No circles between top-level packages.** The graph has one node per top-level
   package or module (``mlpatterns.data.bucketize`` counts as ``data``,
   ``mlpatterns.hashing`` as ``hashing``) and an edge for every import between two of
   them; it has no cycle. (Inside one package, modules may import each other both ways
   from inside functions; that is the package's own business.) ``KNOWN_EDGES`` lists the
   edges left out of this check, each with its reason; a stale entry fails.
3. **No module imports another module's private names.** ``from M import _name`` and
   ``M._name`` (``M`` an imported module) are refused unless ``M`` is the importing module
   itself. A *private module* (``_checks.py``, ``_json_state.py``) is private to its
   package: any module inside that package (at any depth) may import it and its public
   names, a module outside may not. So ``mlpatterns._json_state`` serves the whole
   project, ``mlpatterns.spec._checks`` only ``mlpatterns.spec.*``. Dunder names
   (``__version__``) are public.
4. **Lazy re-exports are sound.** A package ``__init__`` that re-exports lazily (an
   ``_EXPORTS`` table for :func:`mlpatterns._lazy.lazy_exports`) names, for each name, a
   module of its own package that defines it, and no name is also a submodule's name.

Imports made from strings (``importlib.import_module`` in the lazy ``__getattr__`` of a
package ``__init__``) are not seen by rules 1 to 3; rule 4 checks that those tables name
modules of their own package only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
ROOT = "mlpatterns"
ORCHESTRATION = ("spec", "lifecycle", "cli")  # top-level units of the orchestration layer


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    path: Path
    line: int
    text: str  # the import statement as written
    module: str  # the imported module, absolute
    names: tuple[str, ...] = ()  # for "from module import names"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SOURCE / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _package_of(module: str) -> str:
    """The package a module's relative imports start from: itself for a package, else its parent."""
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(importer).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> Iterator[Import]:
    path = MODULES[module]
    source = path.read_text()
    for node in ast.walk(ast.parse(source, filename=str(path))):
        text = ast.get_source_segment(source, node) if isinstance(node, (ast.Import, ast.ImportFrom)) else None
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, path, node.lineno, text or "", alias.name)
        elif isinstance(node, ast.ImportFrom):
            yield Import(module, path, node.lineno, text or "", _resolve(module, node),
                         tuple(alias.name for alias in node.names))


IMPORTS = [found for module in MODULES for found in _imports(module)]


def _ours(name: str) -> bool:
    return name == ROOT or name.startswith(ROOT + ".")


def _unit(module: str) -> str:
    """The top-level package or module of a dotted name: ``data`` for ``mlpatterns.data.bucketize``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _targets(found: Import) -> list[str]:
    """The modules an import reaches: ``from pkg import mod`` reaches ``pkg.mod`` when that is a module."""
    if not found.names:
        return [found.module]
    submodules = [f"{found.module}.{name}" for name in found.names if f"{found.module}.{name}" in MODULES]
    return [found.module, *submodules]


def _where(found: Import) -> str:
    return f"{found.path.relative_to(SOURCE)}:{found.line}: {found.importer}: {' '.join(found.text.split())}"


def test_the_walk_sees_every_kind_of_import():
    """A guard for the guard: top-level and function-level, absolute and relative imports are all read."""
    assert len(MODULES) > 50 and "mlpatterns.spec" in MODULES and "mlpatterns.training" in MODULES
    tuning = {(i.module, i.names) for i in IMPORTS if i.importer == "mlpatterns.spec.tuning"}
    assert ("mlpatterns.spec.schema", ("Spec",)) in tuning  # at the top
    assert ("mlpatterns.spec.models", ("train_model",)) in tuning  # inside a method
    tree = ast.parse("from . import _checks\nfrom ..training import Trainer\n")
    inside_spec = [_resolve("mlpatterns.spec.schema", node) for node in tree.body]
    assert inside_spec == ["mlpatterns.spec", "mlpatterns.training"]
    assert _resolve("mlpatterns.spec", tree.body[0]) == "mlpatterns.spec"  # a package's own __init__


def test_components_never_import_the_orchestration_layer():
    wrong = [
        _where(found) for found in IMPORTS
        if _unit(found.importer) not in ORCHESTRATION
        and any(_ours(target) and _unit(target) in ORCHESTRATION for target in _targets(found))
    ]
    assert not wrong, "pattern components import the orchestration layer (spec, lifecycle, cli):\n" + "\n".join(wrong)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle of each strongly connected component that has several nodes (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    cycles = []
    for component in components:  # a shortest way back to the start, inside the component
        start, members = component[0], set(component)
        paths = {start: [start]}
        frontier = [start]
        while frontier and start not in {n for f in frontier for n in edges.get(f, ())}:
            nxt_frontier = []
            for node in frontier:
                for nxt in sorted(edges.get(node, ()) & members):
                    if nxt not in paths:
                        paths[nxt] = [*paths[node], nxt]
                        nxt_frontier.append(nxt)
            frontier = nxt_frontier
        last = next(node for node in frontier if start in edges.get(node, ()))
        cycles.append([*paths[last], start])
    return cycles


# Edges left out of the cycle check, each with why it cannot go yet. An entry whose edge no longer
# exists fails the test, so that it is removed with the edge.
KNOWN_EDGES: dict[tuple[str, str], str] = {}


def _package_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], Import]]:
    edges: dict[str, set[str]] = {}
    witness: dict[tuple[str, str], Import] = {}
    for found in IMPORTS:
        source = _unit(found.importer)
        for target in _targets(found):
            if not _ours(target) or _unit(target) in (source, ROOT):
                continue
            edges.setdefault(source, set()).add(_unit(target))
            witness.setdefault((source, _unit(target)), found)
    return edges, witness


def test_every_known_edge_still_exists():
    edges, _ = _package_graph()
    stale = [edge for edge in KNOWN_EDGES if edge[1] not in edges.get(edge[0], set())]
    assert not stale, f"remove these entries of KNOWN_EDGES, their imports are gone: {stale}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_cycle_between_top_level_packages():
    edges, witness = _package_graph()
    for source, target in KNOWN_EDGES:
        edges.get(source, set()).discard(target)
    cycles = _cycles(edges)
    report = []
    for cycle in cycles:
        report.append(" -> ".join(cycle))
        report += [f"    {a} -> {b}: {_where(witness[a, b])}" for a, b in zip(cycle, cycle[1:], strict=False)]
    assert not cycles, "import cycles between top-level packages:\n" + "\n".join(report)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_module_owner(module: str) -> str | None:
    """The innermost package that owns a private segment of ``module`` (None: no private segment)."""
    parts = module.split(".")
    owners = [".".join(parts[:i]) for i, part in enumerate(parts) if _private(part)]
    return owners[-1] if owners else None


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _attribute_uses(module: str) -> Iterator[tuple[int, str, str]]:
    """``alias._name`` where ``alias`` is bound to one of our modules by an import: (line, module, name)."""
    tree = ast.parse(MODULES[module].read_text())
    aliases: dict[str, str] = {}
    for found in ast.walk(tree):
        if isinstance(found, ast.Import):
            for alias in found.names:
                if _ours(alias.name) and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(found, ast.ImportFrom):
            base = _resolve(module, found)
            for alias in found.names:
                if f"{base}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                and _private(node.attr):
            yield node.lineno, aliases[node.value.id], node.attr


def _private_problems(found: Import) -> list[str]:
    """Why an import reaches into private names or modules it should not (nothing: it does not)."""
    if not _ours(found.module):
        return []
    problems = []
    for target in _targets(found):
        owner = _private_module_owner(target)
        if owner is not None and not _inside(found.importer, owner):
            problems.append(f"the private module {target} belongs to {owner}")
    names = [name for name in found.names
             if _private(name) and f"{found.module}.{name}" not in MODULES and found.module != found.importer]
    if names:
        problems.append(f"the private name(s) {', '.join(names)} of {found.module}")
    return problems


def test_no_module_imports_another_modules_private_names():
    wrong = [f"{_where(found)}  ({problem})" for found in IMPORTS for problem in _private_problems(found)]
    for module, path in MODULES.items():
        for line, target, name in _attribute_uses(module):
            if target != module:
                wrong.append(f"{path.relative_to(SOURCE)}:{line}: {module}: uses {target}.{name}")
    assert not wrong, "modules reach into other modules' private names:\n" + "\n".join(wrong)


@pytest.mark.parametrize(("importer", "statement", "refused"), [
    ("mlpatterns.lifecycle", "from mlpatterns.spec.schema import _parse_model", True),
    ("mlpatterns.lifecycle", "from mlpatterns.spec import _checks", True),
    ("mlpatterns.lifecycle", "from mlpatterns.spec._checks import expect", True),
    ("mlpatterns.lifecycle", "import mlpatterns.spec._checks", True),
    ("mlpatterns.spec.tuning", "from mlpatterns.spec._checks import expect", False),
    ("mlpatterns.spec.tuning", "from . import _checks", False),
    ("mlpatterns.spec.tuning", "from ._checks import expect", False),
    ("mlpatterns.serving.bundle", "from mlpatterns._json_state import encode_value", False),
    ("mlpatterns.serving.bundle", "from mlpatterns import __version__", False),
])
def test_the_private_name_rule(importer, statement, refused):
    node = ast.parse(statement).body[0]
    if isinstance(node, ast.Import):
        found = Import(importer, MODULES[importer], 1, statement, node.names[0].name)
    else:
        found = Import(importer, MODULES[importer], 1, statement, _resolve(importer, node),
                       tuple(alias.name for alias in node.names))
    assert bool(_private_problems(found)) is refused


def _top_level_names(module: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(MODULES[module].read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).partition(".")[0] for alias in node.names}
    return names


def _lazy_tables() -> Iterator[tuple[str, dict[str, str]]]:
    """Each package ``__init__``'s ``_EXPORTS`` table (name -> module relative to the package)."""
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
                yield module, ast.literal_eval(node.value)


def test_every_lazy_export_names_a_module_that_defines_it():
    """A package's lazy ``_EXPORTS`` table (see ``mlpatterns._lazy``) names real modules that define each name,
    and no exported name is also a submodule's name: importing that submodule would set the package's
    attribute to the module, and the name would no longer reach ``__getattr__``."""
    tables = dict(_lazy_tables())
    assert "mlpatterns.training" in tables and "mlpatterns.export" in tables
    wrong = []
    for package, table in tables.items():
        for name, relative in table.items():
            module = f"{package}.{relative}"
            if module not in MODULES:
                wrong.append(f"{package}: {name!r} -> {relative!r}, which is no module")
            elif name not in _top_level_names(module):
                wrong.append(f"{package}: {name!r} -> {relative!r}, which does not define it")
            if f"{package}.{name}" in MODULES:
                wrong.append(f"{package}: {name!r} is also the name of the module {package}.{name}")
    assert not wrong, "lazy export tables:\n" + "\n".join(wrong)
