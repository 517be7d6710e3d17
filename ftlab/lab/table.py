"""The lab book read as a whole: the table of rounds and fair comparisons between them.

``rounds_table`` lays rounds out like the seeds' hand-kept tables, marking what differs from a
baseline round and the spread across repeats. Its optimiser, precision and quantization cells say what ran,
with a substitution marked (``adamw_torch (asked paged_adamw_8bit)``, ``ftlab.round.what_runs``); a round's
scores are columns beside its losses; "kind" and "parent" columns appear beside a preference round (chapter 08),
whose losses are DPO losses; a "tracker files" column says where a round's TensorBoard (wandb,
trackio) files are, when some round reported to one; a "versions" column appears when rounds ran on other versions of
transformers, TRL, PEFT, torch or bitsandbytes. ``compare_rounds`` overlays curves, names the best round by
each metric (``ftlab.lab.directions``) and warns when rounds cannot be compared (other eval data, template,
base model or library versions, or more than one knob changed).
Nothing here imports torch, so ``ftlab runs`` prints a table in a second.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ftlab.console.lines import warn
from ftlab.lab.directions import direction, known
from ftlab.lab.repeats import Spread, groups, metric_value, spread, values
from ftlab.lab.round import MARKS, Round

BOOKKEEPING = ("logging_steps", "eval_steps", "save_steps", "report_to")  # they do not change what is learned
CORE_KNOBS = ("learning_rate", "num_train_epochs", "max_steps", "batch_size", "gradient_accumulation_steps",
              "lora_r", "lora_alpha", "seed")
RAN = {"optim": "optimizer", "precision": "precision", "quantization": "quantization"}  # knob -> what ran, in metrics
VERSIONED = ("transformers", "trl", "peft", "torch", "bitsandbytes")  # a change of one can move a loss by itself


class NotComparableWarning(UserWarning):
    """Rounds differ in more than the knob under test: their results cannot be compared."""


def differences(base: Round, other: Round) -> list[str]:
    """Knobs (bookkeeping aside), data, template and base model in which ``other`` differs from ``base``."""
    a, b = base.record, other.record
    found = [k for k in a["config"] if k not in BOOKKEEPING and a["config"].get(k) != b["config"].get(k)]
    for split in ("train", "eval"):
        if a.get("data", {}).get(split, {}).get("fingerprint") != b.get("data", {}).get(split, {}).get("fingerprint"):
            found.append(f"{split} data")
    if a.get("template", {}).get("fingerprint") != b.get("template", {}).get("fingerprint"):
        found.append("template")
    if a.get("base_model") != b.get("base_model"):
        found.append("base model")
    if a.get("world_size", 1) != b.get("world_size", 1):  # DDP: the effective batch is multiplied by it
        found.append("processes")
    if version_changes(base, other):
        found.append("versions")
    return found


def version_changes(base: Round, other: Round) -> list[str]:
    """The libraries of ``VERSIONED`` whose version differs between two rounds: ``["transformers 5.5.0 -> 5.15.0"]``.

    One peer's CI saw step-1 losses of 10.32 and 6.44 from transformers 5.5 and 5.15 on the same weights,
    data and seed. Rounds recorded without versions are not compared.
    """
    a, b = base.record.get("versions"), other.record.get("versions")
    if not a or not b:
        return []
    return [f"{lib} {a.get(lib)} -> {b.get(lib)}" for lib in VERSIONED if a.get(lib) != b.get(lib)]


def ran_cell(round_: Round, knob: str) -> str:
    """What ran for ``knob`` (optim, precision, quantization), with the substitution marked: ``fp32 (asked fp16)``.

    A round that has not trained yet (or failed before) shows the knob as asked.
    """
    asked = round_.record["config"].get(knob)
    ran = round_.metrics.get(RAN[knob], asked)
    swapped = next((s for s in round_.record.get("substitutions") or [] if s.get("knob") == knob), None)
    shown = "none" if ran is None else str(ran)
    return f"{shown} (asked {swapped['asked'] or 'none'})" if swapped else shown


def _cell(value):
    if isinstance(value, list):
        return ",".join(map(str, value))
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def tracker_cell(round_: Round) -> str:
    """Where the round's tracker wrote, from the lab's folder: ``tensorboard: round-003/tensorboard``."""
    folder = round_.tracker_files
    return f"{round_.record['tracker']['name']}: {round_.path.name}/{folder.name}" if folder else ""


def failure_cell(failure: dict) -> str:
    """The failure in one cell: its class and message, and for bad data the first row and field to fix."""
    if not failure:
        return ""
    findings = failure.get("findings") or []
    if not findings:
        return f"{failure['kind']}: {failure['message']}"
    first = findings[0]
    where = ", ".join(str(x) for x in (first.get("file"), f"row {first.get('row')}" if first.get("row") else None,
                                        f"field {first.get('field')!r}" if first.get("field") else None) if x)
    more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
    return f"{failure['kind']}: {where}: {first.get('message')}{more}"


def rounds_table(rounds: list[Round], baseline=None, all_knobs: bool = False):
    import pandas as pd

    if not rounds:
        return pd.DataFrame()
    base = next((r for r in rounds if baseline in (r.id, r.name)), None) if baseline is not None else rounds[0]
    if base is None:
        raise KeyError(f"no round {baseline!r} to use as baseline")
    configs = [r.record["config"] for r in rounds]
    varying = {k for k in base.record["config"] if len({json.dumps(c.get(k)) for c in configs}) > 1}
    knobs = [k for k in base.record["config"] if all_knobs or k in CORE_KNOBS or k in RAN
             or (k in varying and k not in BOOKKEEPING)]
    scores = sorted({k for r in rounds for k in r.scores})
    rows, differs = [], []
    several = any(r.record.get("world_size", 1) > 1 for r in rounds)  # a column only when some round used DDP
    tracked = any(r.tracker_files for r in rounds)  # a column only when some round reported to a tracker
    libraries = sorted({change.split()[0] for r in rounds for change in version_changes(base, r)},
                       key=VERSIONED.index)  # a column only when some round ran on other versions
    kinds = any(r.record.get("kind") == "preference" for r in rounds)  # columns only when a preference round is here
    for r in rounds:
        changed = differences(base, r)
        differs += [[r.id, k] for k in changed if k in knobs or (k == "processes" and several)]
        differs += [[r.id, "base model"]] if "base model" in changed else []
        differs += [[r.id, "versions"]] if "versions" in changed else []
        failure = r.failure or {}
        versions = r.record.get("versions") or {}
        rows.append({
            "id": r.id, "name": r.name or "", "status": f"{MARKS[r.status]} {r.status}",
            **({"kind": kind_cell(r), "parent": r.record.get("parent") or ""} if kinds else {}),
            "base model": r.record.get("base_model"),
            **{k: ran_cell(r, k) if k in RAN else _cell(r.record["config"].get(k)) for k in knobs},
            **({"processes": r.record.get("world_size", 1)} if several else {}),
            **({"versions": ", ".join(f"{lib} {versions.get(lib)}" for lib in libraries)} if libraries else {}),
            "train loss": _cell(r.metrics.get("train_loss")), "eval loss": _cell(r.metrics.get("eval_loss")),
            "perplexity": _cell(r.metrics.get("perplexity")),
            **{s: _cell(r.scores.get(s)) for s in scores},
            "wall time (s)": r.wall_time(), "started": (r.record.get("started_at") or "")[:16].replace("T", " "),
            "failure": failure_cell(failure),
            **({"tracker files": tracker_cell(r)} if tracked else {}),
            "changed": "(baseline)" if r is base else ", ".join(changed)})
    table = pd.DataFrame(rows).set_index("id")
    for metric in ("eval loss" if table["eval loss"].notna().any() else "train loss", *scores):
        _add_spread(table, rounds, metric)
    table.attrs.update(baseline=base.id, differs=differs)
    return table


def kind_cell(round_: Round) -> str:
    """What kind of round: "sft", or the preference method with its beta and loss ("dpo, beta 0.1")."""
    if round_.record.get("kind") != "preference":
        return "sft"
    preference = round_.record.get("preference") or {}
    loss = preference.get("loss_type", "sigmoid")
    return f"{preference.get('method', 'dpo')}{'' if loss == 'sigmoid' else f' ({loss})'}, beta {preference.get('beta')}"


def related(a: Round, b: Round) -> bool:
    """One round is the preference round on the other's adapter: they differ in data and kind by design."""
    return a.record.get("parent") == b.id or b.record.get("parent") == a.id


def with_unreadable(table, damaged: list):
    """``table`` with a row per unreadable round (``ftlab.lab.round.UnreadableRound``): its status and, in the
    failure column, its file and where parsing stopped. The other rows, baseline and marks are unchanged."""
    if not damaged:
        return table
    import pandas as pd

    rows = pd.DataFrame([{"id": d.id, "name": "", "status": f"{MARKS[d.status]} {d.status}", "failure": str(d.problem)}
                         for d in damaged]).set_index("id")
    attrs = dict(table.attrs)
    whole = pd.concat([table, rows]) if len(table) else rows
    whole = whole.sort_index(key=lambda index: index.map(lambda i: (0, i) if isinstance(i, int) else (1, str(i))))
    whole.attrs.update(attrs)
    return whole


def _add_spread(table, rounds: list[Round], metric: str) -> None:
    """Mean ± standard deviation of ``metric`` (the loss, or a score) over each round's repeats (rerun), where
    there are 2+.

    Each cell keeps the unrounded numbers (a ``Spread``: ``.mean``, ``.sd``, ``.n``); only its text is rounded.
    """
    found = {}
    for members in groups(rounds).values():
        kept = values(members, metric.replace(" ", "_"))
        if len(kept) >= 2:
            found.update(dict.fromkeys((r.id for r in members), spread(kept)))
    if found:
        table[f"{metric} over repeats"] = [found.get(i, "") for i in table.index]


def spreads(table, metric: str = "eval loss") -> list:
    """The ``Spread`` of ``metric`` over each row's repeats (None where the round has no repeats, or the
    table shows no spread of that metric): the numbers behind the "over repeats" column, unrounded."""
    column = table.get(f"{metric} over repeats")
    if column is None:
        return [None] * len(table)
    return [cell if isinstance(cell, Spread) else None for cell in column]


def metric_column(table, metric: str) -> str | None:
    """The table's column for ``metric`` by either spelling (``eval_loss`` or ``eval loss``, ``exact_match``);
    None when no round recorded it."""
    for name in (metric, metric.replace("_", " "), metric.replace(" ", "_")):
        if name in table.columns:
            return name
    return None


def markdown(table) -> str:
    """The table in Markdown; cells that differ from the baseline in bold."""
    differs = {tuple(d) for d in table.attrs.get("differs", [])}

    def show(value, bold):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            text = ""
        else:
            text = f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")
        return f"**{text}**" if bold and text else text

    header = ["id", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in table.iterrows():
        lines.append("| " + " | ".join([str(index)] + [show(v, (index, c) in differs) for c, v in row.items()]) + " |")
    return "\n".join(lines) + "\n"


def highlighted(table):
    """A pandas Styler of the table: cells that differ from the baseline in amber, the baseline row bold."""
    differs = set(map(tuple, table.attrs.get("differs", [])))
    baseline = table.attrs.get("baseline")

    def colours(frame):
        return frame.apply(lambda col: ["background-color: #ffe08a" if (i, col.name) in differs else
                                        ("font-weight: bold" if i == baseline else "") for i in frame.index])

    return table.style.apply(colours, axis=None)


# ------------------------------------------------------------------------------------------ compare
def comparability(rounds: list[Round]) -> list[str]:
    """Why the rounds cannot be compared with the first one, one sentence per reason."""
    problems, ref = [], rounds[0]
    for r in rounds[1:]:
        pair = f"Rounds {ref.id} and {r.id}"
        found = differences(ref, r)
        if related(ref, r):  # a preference round and its SFT parent: other data and knobs by design, and the
            found = [k for k in found if k in ("base model", "versions")]  # table's kind column says so
        if "eval data" in found:
            prints = [x.record.get("data", {}).get("eval", {}).get("fingerprint") for x in (ref, r)]
            problems.append(f"{pair} were evaluated on different data (eval fingerprints {prints[0]} vs {prints[1]}): "
                            "their eval losses are not comparable (seed 000 once swapped train and test).")
        if "template" in found:
            problems.append(f"{pair} used different chat templates: a template mismatch cost seed 001 half "
                            "its accuracy.")
        if "base model" in found:
            problems.append(f"{pair} started from different base models ({ref.record.get('base_model')} vs "
                            f"{r.record.get('base_model')}).")
        if "versions" in found:
            problems.append(f"{pair} ran on different library versions ({', '.join(version_changes(ref, r))}): a "
                            "library alone can move a loss (transformers 5.5 and 5.15 gave step-1 losses 10.32 and "
                            "6.44 on the same weights, data and seed). Rerun them on one install to compare.")
        knobs = [k for k in found if k not in ("eval data", "template", "base model", "versions")]
        if len(knobs) > 1:
            problems.append(f"{pair} differ in {len(knobs)} knobs ({', '.join(knobs)}): a change in results cannot be "
                            "pinned on one of them (seed 000 could not tell lr from epochs). Change one at a time.")
    return problems


@dataclass
class Comparison:
    """What ``lab.compare`` found: the rounds' metrics, the best round by each, the not-comparable warnings,
    the plot's axes."""

    table: object
    warnings: list[str]
    ax: object = None
    best: dict = None  # metric -> (round id, value, "lower is better" / "higher is better")

    def __repr__(self) -> str:
        best = "".join(f"\nbest {metric} ({words}): round {id} ({value:.4g})"
                       for metric, (id, value, words) in (self.best or {}).items())
        notes = "".join(f"\n⚠ {w}" for w in self.warnings)
        return self.table.to_string() + best + notes


def best_rounds(rounds: list[Round]) -> dict:
    """For each metric the rounds share (losses, perplexity, scores), the round that did best by it, read in the
    metric's direction (``ftlab.lab.directions``); metrics of unknown direction are left out, not guessed."""
    mixed = len({r.record.get("kind", "sft") for r in rounds}) > 1  # an SFT loss and a DPO loss measure other things
    names = [*([] if mixed else ["train_loss", "eval_loss", "perplexity"]), *sorted({k for r in rounds for k in r.scores})]
    found = {}
    for name in names:
        if known(name) is None:
            continue
        measured = [(r.id, v) for r in rounds if (v := metric_value(r, name)) is not None]
        if len(measured) > 1:
            better = direction(name)
            id, value = better.best(measured, key=lambda pair: pair[1])
            found[name.replace("_", " ") if name in ("train_loss", "eval_loss") else name] = (id, value, better.words)
    return found


def plot_label(round_: Round, table) -> str:
    """A curve's label: the round's name, and what it changed from the baseline (never just "round 2")."""
    changed = table.at[round_.id, "changed"] if round_.id in table.index else ""
    name = round_.name or f"round {round_.id}"
    if changed == "(baseline)" or not changed:
        return f"{name} (baseline)" if changed and "baseline" not in name else name
    config = round_.record["config"]
    knobs = [f"{k}={config[k]}" if k in config else k for k in changed.split(", ")]
    return f"{name} ({', '.join(knobs)})"


def compare_rounds(rounds: list[Round], table, key: str = "loss", ax=None) -> Comparison:
    problems = comparability(rounds)
    for problem in problems:  # shown once, as one line: ⚠ problem
        warn(problem, NotComparableWarning, stacklevel=3)
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for r in rounds:
        r.plot(ax, key, label=plot_label(r, table))
    ax.set_title(" vs ".join(r.name or f"round {r.id}" for r in rounds))
    columns = [c for c in table.columns if c in ("name", "status", "kind", "parent", "changed", *RAN, "versions", "train loss",
                                                 "eval loss", "perplexity", "wall time (s)")
               or c.endswith("over repeats") or c in {s for r in rounds for s in r.scores}]
    return Comparison(table.loc[[r.id for r in rounds], columns], problems, ax, best_rounds(rounds))
