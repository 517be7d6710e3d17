"""Reading the lab book: a round's record as an object, the table of rounds, and fair comparisons.

``Round`` wraps one ``round-NNN/round.json`` (plus its live log) and says its real status: a
record left "running" by a process that no longer exists reads as interrupted. ``rounds_table``
lays rounds out like the seeds' hand-kept tables, marking what differs from a baseline round and
the spread across repeats; ``compare_rounds`` overlays curves and warns when rounds cannot be
compared. Nothing here imports torch, so ``ftlab runs`` prints a table in a second.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from ftlab.failures import INTERRUPTED, Failure, interrupted
from ftlab.records import (
    LOG,
    RECORD,
    Scrubber,
    atomic_write_json,
    atomic_write_text,
    checkpoints,
    jsonable,
    now,
    process_alive,
    read_jsonl,
    seconds_between,
)

MARKS = {"succeeded": "✅", "failed": "❌", "diverged": "❌", "interrupted": "❎", "running": "⏳"}
BOOKKEEPING = ("logging_steps", "eval_steps", "save_steps", "report_to")  # they do not change what is learned
CORE_KNOBS = ("learning_rate", "num_train_epochs", "max_steps", "batch_size", "gradient_accumulation_steps",
              "lora_r", "lora_alpha", "seed")


class NotComparableWarning(UserWarning):
    """Rounds differ in more than the knob under test: their results cannot be compared."""


class Round:
    """One round of the lab book. ``result`` (the RoundResult, with ``.model``) is there right after training."""

    def __init__(self, folder, record: dict | None = None, result=None):
        self.path = Path(folder)
        self.record = record if record is not None else json.loads((self.path / RECORD).read_text(encoding="utf-8"))
        self.result = result

    id = property(lambda self: self.record["id"])
    name = property(lambda self: self.record.get("name"))
    metrics = property(lambda self: self.record.get("metrics") or {})
    model = property(lambda self: getattr(self.result, "model", None))
    adapter_dir = property(lambda self: self.path / "adapter")

    @property
    def config(self):
        from ftlab.config import RoundConfig

        known = RoundConfig.__dataclass_fields__
        return RoundConfig(**{k: v for k, v in self.record["config"].items() if k in known})

    @property
    def status(self) -> str:
        """running, succeeded, failed, interrupted or diverged: "running" only while its process lives."""
        status = self.record["status"]
        if status == "running" and not process_alive(self.record.get("process"), self.record.get("heartbeat")):
            return "interrupted"
        return status

    @property
    def failure(self) -> dict | None:
        if self.record["status"] == "running" and self.status == "interrupted":
            process = self.record.get("process") or {}
            return interrupted(f"the process that ran it (pid {process.get('pid')} on {process.get('host')}) "
                               "no longer exists: a kernel restart, a disconnect or a kill", self.resume_hint()).to_dict()
        return self.record.get("failure")

    def resume_hint(self) -> str:
        found = checkpoints(self.path)
        if found:
            return (f"lab.resume({self.id}) continues from {found[0].name}: the trainer restores the optimiser, "
                    "the schedule, the random state and the data position.")
        return f"No checkpoint was saved before it stopped: lab.resume({self.id}) trains it again from the start."

    # ------------------------------------------------------------------------------------ writing
    def update(self, **fields) -> None:
        """Change fields of the record and rewrite it atomically, secrets scrubbed."""
        self.record = Scrubber()(jsonable({**self.record, **fields}))
        atomic_write_json(self.path / RECORD, self.record)

    def finish(self, status: str, **fields) -> None:
        attempts = [dict(a) for a in self.record.get("attempts", [])]
        if attempts:
            attempts[-1].update(ended_at=now(), status=status)
        self.update(status=status, ended_at=now(), attempts=attempts, **fields)

    def fail(self, failure: Failure) -> None:
        info = failure.to_dict()
        if failure.traceback:
            atomic_write_text(self.path / "traceback.txt", Scrubber().text(failure.traceback))
            info["traceback"] = "traceback.txt"
        self.finish("interrupted" if failure.kind == INTERRUPTED else "failed", failure=info)

    def write_samples(self, samples: list[dict]) -> None:
        atomic_write_json(self.path / "samples.json", Scrubber()(samples))
        self.update(samples="samples.json")

    # ------------------------------------------------------------------------------------ reading
    def logs(self) -> list[dict]:
        """Logged steps, oldest first; where a resumed attempt logged a step again, its line wins."""
        latest = {}
        for line in read_jsonl(self.path / LOG):
            kind = "eval" if "eval_loss" in line else "train" if "loss" in line else "other"
            latest[(line.get("step"), kind)] = line
        return sorted(latest.values(), key=lambda line: line.get("step") or 0)

    def curve(self, key: str = "loss") -> tuple[list[int], list[float]]:
        points = [(line["step"], line[key]) for line in self.logs() if isinstance(line.get(key), int | float)]
        return [s for s, _ in points], [v for _, v in points]

    def samples(self) -> list[dict]:
        path = self.path / "samples.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []

    def wall_time(self) -> float | None:
        if self.metrics.get("wall_time_s") is not None:
            return self.metrics["wall_time_s"]
        return seconds_between(self.record.get("started_at"), self.record.get("ended_at") or self.record.get("heartbeat"))

    def verdict(self) -> str:
        """One line for the round, then the mentor's advice when it did not succeed."""
        head = f"{MARKS[self.status]} Round {self.id}{f' ({self.name})' if self.name else ''}: {self.status}"
        if self.status == "succeeded":
            shown = {k: self.metrics.get(k) for k in ("train_loss", "eval_loss") if self.metrics.get(k) is not None}
            return head + "".join(f", {k.replace('_', ' ')} {v:.4f}" for k, v in shown.items())
        failure = self.failure or {}
        return f"{head} ({failure.get('kind')}): {failure.get('message')}\n{failure.get('advice')}"

    def plot(self, ax=None, key: str = "loss"):
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        line, = ax.plot(*self.curve(key), label=f"round {self.id} {key}")
        if key == "loss" and self.curve("eval_loss")[0]:
            ax.plot(*self.curve("eval_loss"), "o--", color=line.get_color(), label=f"round {self.id} eval loss")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
        return ax

    def __repr__(self) -> str:
        return self.verdict().splitlines()[0] + f"  [{self.path}]"


# ------------------------------------------------------------------------------------------ table
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
    return found


def _cell(value):
    if isinstance(value, list):
        return ",".join(map(str, value))
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def rounds_table(rounds: list[Round], baseline=None, all_knobs: bool = False):
    import pandas as pd

    if not rounds:
        return pd.DataFrame()
    base = next((r for r in rounds if baseline in (r.id, r.name)), None) if baseline is not None else rounds[0]
    if base is None:
        raise KeyError(f"no round {baseline!r} to use as baseline")
    configs = [r.record["config"] for r in rounds]
    varying = {k for k in base.record["config"] if len({json.dumps(c.get(k)) for c in configs}) > 1}
    knobs = [k for k in base.record["config"] if all_knobs or k in CORE_KNOBS or (k in varying and k not in BOOKKEEPING)]
    scores = sorted({k for r in rounds for k in r.metrics.get("score") or {}})
    rows, differs = [], []
    for r in rounds:
        changed = differences(base, r)
        differs += [[r.id, k] for k in changed if k in knobs] + ([[r.id, "base model"]] if "base model" in changed else [])
        failure = r.failure or {}
        rows.append({
            "id": r.id, "name": r.name or "", "status": f"{MARKS[r.status]} {r.status}",
            "base model": r.record.get("base_model"), **{k: _cell(r.record["config"].get(k)) for k in knobs},
            "train loss": _cell(r.metrics.get("train_loss")), "eval loss": _cell(r.metrics.get("eval_loss")),
            "perplexity": _cell(r.metrics.get("perplexity")),
            **{s: _cell((r.metrics.get("score") or {}).get(s)) for s in scores},
            "wall time (s)": r.wall_time(), "started": (r.record.get("started_at") or "")[:16].replace("T", " "),
            "failure": f"{failure['kind']}: {failure['message']}" if failure else "",
            "changed": "(baseline)" if r is base else ", ".join(changed)})
    table = pd.DataFrame(rows).set_index("id")
    _add_spread(table, rounds)
    table.attrs.update(baseline=base.id, differs=differs)
    return table


def _add_spread(table, rounds: list[Round]) -> None:
    """Mean ± standard deviation of the metric over each round's repeats (rerun), where there are 2+."""
    metric = "eval loss" if table["eval loss"].notna().any() else "train loss"
    groups: dict[int, list[int]] = {}
    for r in rounds:
        groups.setdefault(r.record.get("repeat_of") or r.id, []).append(r.id)
    spread = {}
    for members in groups.values():
        values = [float(table.at[i, metric]) for i in members
                  if table.at[i, "status"].endswith("succeeded") and table.at[i, metric] is not None
                  and math.isfinite(float(table.at[i, metric]))]
        if len(values) >= 2:
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            spread.update({i: f"{mean:.4g} ± {std:.2g} (n={len(values)})" for i in members})
    if spread:
        table[f"{metric} over repeats"] = [spread.get(i, "") for i in table.index]


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
        knobs = [k for k in found if k not in ("eval data", "template", "base model")]
        if len(knobs) > 1:
            problems.append(f"{pair} differ in {len(knobs)} knobs ({', '.join(knobs)}): a change in results cannot be "
                            "pinned on one of them (seed 000 could not tell lr from epochs). Change one at a time.")
    return problems


@dataclass
class Comparison:
    """What ``lab.compare`` found: the rounds' metrics, the not-comparable warnings, the plot's axes."""

    table: object
    warnings: list[str]
    ax: object = None

    def __repr__(self) -> str:
        notes = "".join(f"\n⚠ {w}" for w in self.warnings)
        return self.table.to_string() + notes


def compare_rounds(rounds: list[Round], table, key: str = "loss", ax=None) -> Comparison:
    problems = comparability(rounds)
    for problem in problems:
        print(f"⚠ {problem}")
        warnings.warn(problem, NotComparableWarning, stacklevel=3)
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for r in rounds:
        r.plot(ax, key)
    ax.set_title(f"rounds {', '.join(str(r.id) for r in rounds)}")
    columns = [c for c in table.columns if c in ("name", "status", "changed", "train loss", "eval loss", "perplexity",
                                                 "wall time (s)") or c.endswith("over repeats")
               or c in {s for r in rounds for s in r.metrics.get("score") or {}}]
    return Comparison(table.loc[[r.id for r in rounds], columns], problems, ax)
