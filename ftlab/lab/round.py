"""One round of the lab book: its record read and written, its status, logs, curve and verdict.

``Round`` wraps one ``round-NNN/round.json`` (plus its live log) and says its real status: a
record left "running" by a process that no longer exists reads as interrupted. Every change to the
record is written atomically with secrets scrubbed (``storage``). A ``round.json`` that cannot be read
(damaged by hand, or by a copy that stopped early) makes an ``UnreadableRound``: listed with its file
and where parsing stopped, so the lab shows every other round as usual. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

from ftlab.config import RoundConfig
from ftlab.files.atomic import atomic_write_json, atomic_write_text, jsonable
from ftlab.files.faults import DamagedFile, FileFault
from ftlab.files.records import read_json
from ftlab.lab.failures import INTERRUPTED, Failure, interrupted
from ftlab.lab.provenance import process_alive
from ftlab.lab.storage import LOG, RECORD, Scrubber, checkpoints, now, read_jsonl, seconds_between

MARKS = {"succeeded": "✅", "failed": "❌", "diverged": "❌", "collapsed": "❌",
         "interrupted": "❎", "running": "⏳", "unreadable": "⚠"}
DAMAGED_RECORD = ("The lab lists this round as unreadable and every other round as usual. Restore round.json from "
                  "a copy (Drive keeps earlier versions of a file), or move the round's folder out of the lab.")
NEEDED = ("id", "status", "config")  # what every reader of a round takes from its record


class Round:
    """One round of the lab book. ``result`` (the RoundResult, with ``.model``) and ``inputs`` (the
    ``RoundInputs`` it trained on) are there right after training."""

    def __init__(self, folder, record: dict | None = None, result=None):
        self.path = Path(folder)
        self.record = record if record is not None else read_record(self.path / RECORD)
        self.result = result
        self.inputs = None

    id = property(lambda self: self.record["id"])
    name = property(lambda self: self.record.get("name"))
    model = property(lambda self: getattr(self.result, "model", None))
    adapter_dir = property(lambda self: self.path / "adapter")

    @property
    def tracker_files(self) -> Path | None:
        """Where the round's tracker (``report_to``: TensorBoard, wandb, trackio) wrote, inside its folder; None
        when it reported to none. ``tensorboard --logdir`` on it (or on the lab) draws its curves."""
        tracker = self.record.get("tracker") or {}
        return self.path / tracker["folder"] if tracker.get("folder") else None

    @property
    def metrics(self) -> dict:
        """What the round measured, by name: losses, perplexity, what ran, and its scores (``exact_match``) beside
        them. (Records written before scores sat beside the losses kept them under ``"score"``: read as if beside.)"""
        metrics = self.record.get("metrics") or {}
        old = metrics.get("score")
        return {**{k: v for k, v in metrics.items() if k != "score"}, **old} if isinstance(old, dict) else metrics

    @property
    def scores(self) -> dict:
        """The round's own scores (what ``lab.train(score=...)`` returned), by name."""
        metrics = self.record.get("metrics") or {}
        if isinstance(metrics.get("score"), dict):
            return dict(metrics["score"])
        return {name: metrics.get(name) for name in metrics.get("scores") or []}

    @property
    def config(self):
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
        return read_json(path, kind=list) if path.exists() else []

    def wall_time(self) -> float | None:
        if self.metrics.get("wall_time_s") is not None:
            return self.metrics["wall_time_s"]
        return seconds_between(self.record.get("started_at"), self.record.get("ended_at") or self.record.get("heartbeat"))

    def verdict(self) -> str:
        """One line for the round, then the mentor's advice when it did not succeed."""
        head = f"{MARKS[self.status]} Round {self.id}{f' ({self.name})' if self.name else ''}: {self.status}"
        rehearsed = self.record.get("rehearsal")
        if rehearsed:  # FTLAB_REHEARSE: a GPU's code path ran on the CPU; its memory and speed were not measured
            head += f" (rehearsed on the CPU as a {rehearsed['gpu']})"
        if self.status == "succeeded":
            shown = {k: self.metrics.get(k) for k in ("train_loss", "eval_loss", *self.scores)
                     if isinstance(self.metrics.get(k), int | float)}
            return head + "".join(f", {k.replace('_', ' ')} {v:.4g}" if k in self.scores else
                                  f", {k.replace('_', ' ')} {v:.4f}" for k, v in shown.items())
        failure = self.failure or {}
        return f"{head} ({failure.get('kind')}): {failure.get('message')}\n{failure.get('advice')}"

    def plot(self, ax=None, key: str = "loss", label: str | None = None):
        """The round's ``key`` curve (and its eval loss), labelled by ``label`` or by the round's name."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        label = label or self.name or f"round {self.id}"
        line, = ax.plot(*self.curve(key), label=f"{label}: {key.replace('_', ' ')}")
        if key == "loss" and self.curve("eval_loss")[0]:
            ax.plot(*self.curve("eval_loss"), "o--", color=line.get_color(), label=f"{label}: eval loss")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(key.replace("_", " "))
        ax.legend()
        ax.grid(alpha=0.3)
        return ax

    def __repr__(self) -> str:
        return self.verdict().splitlines()[0] + f"  [{self.path}]"


def read_record(path: Path) -> dict:
    """A round's record, checked: ``DamagedFile`` (the file, the line and column) when it cannot be used."""
    record = read_json(path, DAMAGED_RECORD)
    missing = [key for key in NEEDED if key not in record]
    if missing:
        raise DamagedFile.lacks(path, f"it has no {', '.join(map(repr, missing))}", DAMAGED_RECORD)
    if not isinstance(record["config"], dict):
        raise DamagedFile.lacks(path, f"its 'config' is {record['config']!r}, not the round's knobs", DAMAGED_RECORD)
    return record


class UnreadableRound:
    """A round whose ``round.json`` cannot be read: its number (from the folder's name), file and the problem.

    Listed by ``Lab.unreadable()``, in ``lab.table()`` and ``ftlab runs``; never trained, compared or resumed.
    """

    status = "unreadable"

    def __init__(self, folder, problem: FileFault):
        self.path, self.problem = Path(folder), problem
        number = self.path.name.removeprefix("round-")
        self.id = int(number) if number.isdigit() else self.path.name

    def verdict(self) -> str:
        return f"{MARKS['unreadable']} Round {self.id}: unreadable: {self.problem}"

    def __repr__(self) -> str:
        return f"{MARKS['unreadable']} Round {self.id}: unreadable  [{self.path / RECORD}]"


def read_round(folder) -> Round | UnreadableRound:
    """The round in ``folder``, or an ``UnreadableRound`` when its record is damaged."""
    try:
        return Round(folder)
    except FileFault as problem:  # not JSON, not UTF-8, or lacking what a round needs
        return UnreadableRound(folder, problem)
