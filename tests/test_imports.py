"""One direction of dependency: no ftlab module imports a module that imports it back.

The graph is read from the source with ``ast``, not by importing. Every import counts, at the top of a
module or inside a function: a lazy import only delays the load, it couples the two modules all the
same (env <-> models, metrics <-> evaluation and data.lengths <-> data.loader were such pairs).
``from ftlab import Name`` and ``ftlab.Name`` count as an import of the module that defines Name
(``ftlab/__init__.py`` loads it lazily); ``from package import submodule`` as one of the submodule.
"""

import ast
import importlib.util
from pathlib import Path

import ftlab

ROOT = Path(ftlab.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def target(name: str) -> str | None:
    """The ftlab module ``name`` stands for: itself, its public name's module, or None outside ftlab."""
    if name in MODULES:
        return name
    if name.startswith("ftlab.") and name.split(".", 2)[1] in ftlab._PUBLIC:
        return ftlab._PUBLIC[name.split(".", 2)[1]]
    return None


def imports_of(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found, imports_root = set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
                imports_root |= alias.name == "ftlab"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES or base == "ftlab" else base)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ftlab":
            found.add(f"ftlab.{node.attr}")
    if not imports_root:
        found = {f for f in found if not (f.startswith("ftlab.") and f.count(".") == 1 and f not in MODULES
                                          and f.split(".")[1] not in ftlab._PUBLIC)}
    return {t for f in found if (t := target(f)) and t != module}


GRAPH = {module: imports_of(module, path) for module, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a list of names."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
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
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read():
    assert len(GRAPH) > 30 and "ftlab.lab.book" in GRAPH["ftlab.lab"]
    assert "ftlab.round.train" in GRAPH["ftlab.lab.book"]  # a function-level import counts
    assert importlib.util.find_spec("ftlab.lab.storage") is not None


def test_no_module_imports_one_that_imports_it_back():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the checker works
    found = cycles(GRAPH)
    details = [f"{' <-> '.join(c)}: " + "; ".join(f"{m} imports {sorted(GRAPH[m] & set(c))}" for m in c)
               for c in found]
    assert not found, "import cycles:\n" + "\n".join(details)


def test_storage_loads_no_model_and_reading_a_lab_needs_no_torch():
    assert GRAPH["ftlab.lab.storage"] <= {"ftlab.files.atomic"}  # the standard library and ftlab's atomic writes only
    reachable, todo = set(), ["ftlab.lab.round", "ftlab.lab.table"]
    while todo:
        module = todo.pop()
        if module not in reachable:
            reachable.add(module)
            todo += GRAPH[module]
    assert not reachable & {"ftlab.models.loading", "ftlab.round.train", "ftlab.lab.watchers"}


def test_the_lab_package_imports_down_its_documented_list():
    import re

    import ftlab.lab

    order = re.findall(r"^- ``(\w+)``", ftlab.lab.__doc__, flags=re.M)
    assert set(order) == {m.rsplit(".", 1)[1] for m in MODULES if m.startswith("ftlab.lab.")}
    for i, name in enumerate(order):
        inside = {m.rsplit(".", 1)[1] for m in GRAPH[f"ftlab.lab.{name}"] if m.startswith("ftlab.lab.")}
        assert inside <= set(order[i + 1:]), f"ftlab.lab.{name} imports {sorted(inside - set(order[i + 1:]))} from above it"
