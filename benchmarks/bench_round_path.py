"""The path of one lab round through ftlab's files: how many it touches, and where it climbs back up.

One round of ftlab's tiny model goes through ``lab.train(config, model, tokenizer, train, eval)`` under a
profiler that notes every function of ftlab entered, from the lab's door to TRL's trainer and back (its
callbacks, the record, the sample answers). It prints:

- the ftlab files touched (a file counts once, whatever it runs);
- the places where the path climbs back up the import order: a call site whose callee sits in a package
  above the nearest ftlab caller (the order of the README: foundations, data, templates, models, config,
  memory, round, lab, evaluation, export, course, env/configfile/cli) or, inside ``ftlab.lab``, in a
  module above it in the lab's documented list (``ftlab.lab.__doc__``). A call site counts once however
  often it runs; TRL calling a callback counts as the ftlab frame that called TRL calling it. Climbs by
  name (the caller imports the callee's module) are told apart from calls through an object handed down
  (a trainer callback, the round's record, the tee of printed output).

A first round runs untraced, so that imports are done and the second round, traced, shows the path every
round takes. It measures the code it runs: point PYTHONPATH at another checkout to measure that one.

    python benchmarks/bench_round_path.py [--list]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

PACKAGES = ["machine", "distributed", "console", "files", "data", "templates", "models", "config", "memory", "round",
            "lab", "evaluation", "export", "course", "env", "configfile", "cli"]
FOUNDATIONS = {"machine", "distributed", "console", "files"}


def rank(module: str, lab_order: list[str]) -> tuple[int, int]:
    """Where ``module`` (``ftlab.lab.book``) sits in the import order: its package, then its place in the lab."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    level = 0 if top in FOUNDATIONS else PACKAGES.index(top) if top in PACKAGES else len(PACKAGES)
    level = min(level, PACKAGES.index("env")) if top in ("env", "configfile", "cli") else level
    inside = len(lab_order) - lab_order.index(parts[2]) if top == "lab" and len(parts) > 2 and parts[2] in lab_order else 0
    return level, inside


def imported_modules(path: Path) -> set[str]:
    """The ftlab modules a file imports by name (at its top or inside a function)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ftlab"):
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ftlab")}
    return found


def trace_round(list_them: bool) -> None:
    import ftlab
    import ftlab.lab
    from ftlab.config import RoundConfig
    from ftlab.data import instructions, split_train_eval

    root = Path(ftlab.__file__).parent
    lab_order = re.findall(r"^- ``(\w+)``", ftlab.lab.__doc__, flags=re.M)

    def module_of(filename: str) -> str | None:
        path = Path(filename)
        if root not in path.parents:
            return None
        parts = path.relative_to(root.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    touched, climbs, files = {}, {}, {}

    def profile(frame, event, arg):
        if event != "call" or frame.f_code.co_name == "<module>":
            return
        callee = module_of(frame.f_code.co_filename)
        if callee is None:
            return
        files[callee] = frame.f_code.co_filename
        touched.setdefault(callee, set()).add(frame.f_code.co_qualname)
        caller = frame.f_back
        while caller is not None and module_of(caller.f_code.co_filename) is None:
            caller = caller.f_back
        if caller is None:
            return
        origin = module_of(caller.f_code.co_filename)
        files[origin] = caller.f_code.co_filename
        if rank(callee, lab_order) > rank(origin, lab_order):
            site = (origin, caller.f_code.co_qualname, caller.f_lineno, callee, frame.f_code.co_qualname)
            climbs[site] = climbs.get(site, 0) + 1

    model, tokenizer = ftlab.tiny_model()
    train, evaluation = split_train_eval(instructions(64, "greet_politely", seed=1), eval_size=8, seed=1)
    config = RoundConfig.preset("cpu-tiny", max_steps=2, eval_steps=1)
    with tempfile.TemporaryDirectory() as folder:
        lab = ftlab.Lab(Path(folder) / "lab")
        lab.train(config, model, tokenizer, train, evaluation, name="warm-up", samples=2)  # imports done
        sys.setprofile(profile)
        try:
            round_ = lab.train(config, model, tokenizer, train, evaluation, name="traced", samples=2)
        finally:
            sys.setprofile(None)
    assert round_.status == "succeeded", round_.verdict()
    print(f"\n{len(touched)} ftlab files touched by one lab.train round, from the door to TRL and back")
    if list_them:
        for name in sorted(touched, key=lambda m: rank(m, lab_order)):
            print(f"  {name:<30} {', '.join(sorted(touched[name]))}")
    by_name = {s: n for s, n in climbs.items() if s[3] in imported_modules(Path(files[s[0]]))}
    handed = {s: n for s, n in climbs.items() if s not in by_name}
    for title, sites in (("by name (the caller imports the callee's module)", by_name),
                         ("through an object handed down (callbacks, the record, printed output)", handed)):
        pairs = len({(s[0], s[3]) for s in sites})
        print(f"{len(sites)} call sites climb back up the import order {title}; {pairs} module pairs")
        for (origin, function, line, callee, called), times in sorted(sites.items()):
            print(f"  {origin}:{line} {function} -> {callee}.{called}  (x{times})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the files touched, with their place in the order")
    trace_round(parser.parse_args().list)
