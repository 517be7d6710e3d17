"""The book: ``Lab``, every round recorded in a folder that survives a disconnect, read back as a table.

Each seed kept a hand-made table of rounds (knobs, ✅ ❌ ❎, metric, reason for failure) and still lost
logs, a checkpoint, and track of which test set a round used. ``Lab`` keeps that table itself:

    lab = ftlab.Lab.default()           # Drive on Colab, /kaggle/working on Kaggle, ./lab locally
    run = lab.train(config, model, tokenizer, train, eval, name="lr 2e-4")
    lab.train(..., quiet=True)          # the verdict alone in the notebook; the rest in the round's stdout.log
    lab.table()                         # a row per round; knobs that differ from the baseline marked
    lab.compare([1, 2])                 # overlaid loss curves; warns when rounds are not comparable
    lab.rerun(1, seed=7)                # a repeat, to tell a real gain from luck
    lab.resume(3)                       # an interrupted round, from its last checkpoint
    lab.prefer(preference, 1, pairs, held_out)  # a preference round (DPO) on round 1's adapter (chapter 08)

Training itself is ``ftlab.train_round``; the lab adds the bookkeeping around it: the round's record
(``round``, first written by ``opening``), its files (``storage``), what it was made of (``materials``:
one ``RoundInputs``, built at the door and carried down) and where it ran (``provenance``), its
checkpoint schedule and outcome (``running``), live logs and guards (``watchers``), its printed output
(``capture``), the mentor's reading of failures (``failures``), and the table and comparisons (``table``).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from ftlab.console.lines import warn
from ftlab.data.preference_pairs import load_pairs
from ftlab.data.splits import fingerprint, warn_if_shared
from ftlab.distributed import barrier, is_main, share, world_size
from ftlab.evaluation.preference import scorer
from ftlab.lab.capture import capture_output
from ftlab.lab.effects import effect
from ftlab.lab.failures import classify
from ftlab.lab.materials import (
    RoundInputs,
    Rows,
    given_inputs,
    load_base,
    loaded,
    recorded_inputs,
    recorded_template,
)
from ftlab.lab.opening import open_round
from ftlab.lab.provenance import hardware, this_process
from ftlab.lab.repeats import MEASURED, reference_scores, repeat_group, repeats_of
from ftlab.lab.round import MARKS, Round, UnreadableRound, read_round
from ftlab.lab.running import CHECKPOINT_MINUTES, free_memory, record_outcome, with_checkpoints
from ftlab.lab.storage import LOG, Scrubber, checkpoints, lab_folder, now, round_folders
from ftlab.lab.sweeps import sweep
from ftlab.lab.table import (
    Comparison,
    NotComparableWarning,
    compare_rounds,
    highlighted,
    markdown,
    rounds_table,
    with_unreadable,
)
from ftlab.machine import FAST_VARIABLE, detect_platform, fast_run
from ftlab.round.preference import check_adapter_base, train_preference_round
from ftlab.round.trackers import tracker_folder
from ftlab.round.train import train_round

__all__ = ["Lab", "Round", "RoundInputs", "Comparison", "NotComparableWarning", "MARKS"]


class Lab:
    """A lab book in the folder ``path``: one sub-folder per round, ``round-001``, ``round-002``, ..."""

    def __init__(self, path="lab", keep_data: bool = True):
        self.path = Path(path).expanduser()
        self.keep_data = keep_data  # a copy of each round's data lets rerun/resume work after a restart
        self._holding = None  # the last round whose trained model is still in memory
        self._told_unreadable = False  # a damaged round is mentioned once, at the first round trained here
        self._told_checkpoints = False  # the checkpoint schedule is announced once per lab, not per round

    @classmethod
    def default(cls, name: str = "ftlab-lab") -> Lab:
        """Where the lab survives this platform's disconnects: Google Drive, /kaggle/working or ./lab.

        ``name``: the lab's folder there (a chapter keeps its own: ``Lab.default("ftlab-04")``; locally it
        goes under ./lab). The environment variable ``FTLAB_LAB`` (a folder) overrides the choice, for every
        notebook and for ``ftlab demo`` / ``ftlab runs`` alike. Under a test or CI run (``FTLAB_FAST=1``,
        which the tests' conftest sets) the lab is a fresh temporary folder, so a run never meets the rounds
        of an earlier one and writes nothing outside a temporary folder.
        """
        if os.environ.get("FTLAB_LAB"):
            return cls(os.environ["FTLAB_LAB"])
        if fast_run():
            folder = tempfile.mkdtemp(prefix=f"{name}-")
            print(f"{FAST_VARIABLE}=1 (a test or CI run): this lab is a fresh temporary folder, {folder}; "
                  "elsewhere it survives a disconnect.")
            return cls(folder)

        platform = detect_platform()
        if platform == "colab":
            drive = Path("/content/drive/MyDrive")
            if drive.is_dir():
                return cls(drive / name)
            print("Google Drive is not mounted, so the lab goes to /content, which a disconnect erases. To keep it:\n"
                  "  from google.colab import drive; drive.mount('/content/drive')\n"
                  "then run ftlab.Lab.default() again.")
            return cls(Path("/content") / name)
        if platform == "kaggle":  # kept as the notebook's output when you "Save Version"
            return cls(Path("/kaggle/working") / name)
        return cls("lab") if name == "ftlab-lab" else cls(Path("lab") / name)

    def __repr__(self) -> str:
        damaged = len(self.unreadable())
        return f"Lab({str(self.path)!r}): {len(self.rounds())} round(s)" + (f", {damaged} unreadable" if damaged else "")

    # ------------------------------------------------------------------------------------ reading
    def rounds(self) -> list[Round]:
        """Every round whose record reads; a damaged one never hides them (it is in ``unreadable()``)."""
        return [r for r in self._read() if isinstance(r, Round)]

    def unreadable(self) -> list[UnreadableRound]:
        """The rounds whose ``round.json`` cannot be read, each with its file and where parsing stopped."""
        return [r for r in self._read() if isinstance(r, UnreadableRound)]

    def _read(self) -> list:
        return [read_round(folder) for folder in round_folders(self.path)]

    def round(self, id) -> Round:
        """Round ``id`` (its number, or its name)."""
        id = int(id) if isinstance(id, str) and id.isdigit() else id
        for round_ in self.rounds():
            if id in (round_.id, round_.name):
                return round_
        for damaged in self.unreadable():
            if id == damaged.id:
                raise KeyError(f"round {id} of {self.path} is unreadable: {damaged.problem}")
        raise KeyError(f"no round {id!r} in {self.path} (it has {[r.id for r in self.rounds()]})")

    __getitem__ = round

    def table(self, baseline=None, all_knobs: bool = False, styled: bool = False, ids=None):
        """A DataFrame like the seeds' tables: a row per round, knobs, status, metrics, wall time.

        ``baseline`` (a round id; the first round by default): the "changed" column names what differs
        from it, and ``styled=True`` returns a Styler with those cells highlighted for a notebook.
        ``ids``: only these rounds (ids or names; their repeats with them), e.g. this session's in a lab
        that keeps every earlier session's rounds too.
        Repeats (``rerun``) show their spread. Knob columns: the main ones, the optimiser, precision and
        quantization that ran (a substitution marked), and any that vary; scores beside the losses.
        """
        if ids is None:
            table = with_unreadable(rounds_table(self.rounds(), baseline, all_knobs), self.unreadable())
        else:
            chosen = [self.round(i) for i in ids]
            named, groups = {r.id for r in chosen}, {repeat_group(r) for r in chosen}
            table = rounds_table([r for r in self.rounds() if r.id in named or repeat_group(r) in groups],
                                 baseline if baseline is not None else chosen[0].id, all_knobs)
        return highlighted(table) if styled else table

    def to_markdown(self, path=None, baseline=None) -> str:
        """The table in Markdown (cells that differ from the baseline in bold), written to ``path`` if given."""
        text = markdown(self.table(baseline))
        if path:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_csv(self, path, baseline=None) -> None:
        self.table(baseline).to_csv(path)

    def compare(self, ids=None, key: str = "loss", ax=None) -> Comparison:
        """Overlay the loss curves and metrics of rounds ``ids``; warn where they are not comparable.

        Not comparable: different eval data, template or base model, or more than one knob changed
        (seed 000 could not tell whether lr or epochs made its gain).
        """
        rounds = [self.round(i) for i in ids] if ids else self.rounds()
        if not rounds:
            raise ValueError(f"no rounds in {self.path} to compare yet")
        return compare_rounds(rounds, rounds_table(rounds, rounds[0].id), key, ax)

    def effect(self, baseline, changed, metric: str = "eval_loss", min_repeats: int = 3,
               higher_is_better: bool | None = None):
        """Is ``changed`` different from ``baseline`` beyond noise? Over the repeats of each (``rerun``):
        the knob, the size of the change and its ratio to the spread (``ftlab.lab.effects``). ``metric``: a
        loss or a score (``exact_match``); one ftlab does not know needs ``higher_is_better``."""
        return effect(self.rounds(), self.round(baseline), self.round(changed), metric, min_repeats,
                      higher_is_better)

    # ------------------------------------------------------------------------------------ training
    def train(self, config, model, tokenizer=None, train=None, eval=None, name: str | None = None,
              base_model: str | None = None, template=None, callbacks: list | None = None, samples: int = 4,
              score=None, notes: str | None = None, quiet: bool = False) -> Round:
        """Train one round with ``ftlab.train_round`` and record everything about it in its own folder.

        ``score(model, tokenizer) -> dict`` adds metrics of your own (exact match, BLEU, ...), kept beside the
        eval loss and found by the same name (``round.metrics['exact_match']``, ``lab.table()``, sweeps); a score
        that falls far below the other rounds' on the same eval rows marks the round collapsed, with advice.
        ``samples`` eval prompts are answered and kept. A failure does not raise (a sweep goes on): the round
        comes back with status failed and advice. Ctrl-C is recorded as interrupted, then raised.
        Eval rows whose prompt is also in train are warned about and recorded (``ftlab.data.leakage``).
        ``model, tokenizer, train, eval`` (with ``template`` and ``base_model``) become one ``RoundInputs``
        here, at the door: ``train`` and ``eval`` are read into rows once (a file path strictly: a bad row
        fails the round, naming it), and those rows are fingerprinted, kept and trained on. A ``RoundInputs``
        may be passed in the model's place (``lab.train(config, inputs)``); the round keeps it (``.inputs``).
        ``quiet=True``: while it trains one line moves; then the notebook keeps the round's verdict alone (with the
        advice when it failed), and everything else it printed is in ``round.path / "stdout.log"``.
        """
        self._before_training()
        inputs = given_inputs(model, tokenizer, train, eval, template, base_model)  # carried down from now on
        if inputs.problem is None and is_main():
            warn_if_shared(inputs.train.dataset, inputs.eval.dataset if inputs.eval is not None else None)
        config = self._with_checkpoints(config, inputs.train)
        if not is_main():  # another process of a distributed round (torchrun, accelerate launch)
            return self._follow(config, inputs, callbacks)
        round_ = open_round(self.path, config, inputs, name, notes, keep_data=self.keep_data)
        share(str(round_.path))  # the other processes train into the same folder
        round_ = self._run(round_, config, inputs, callbacks, samples, score, quiet=quiet)
        if round_.status in MEASURED:
            barrier()  # the others return once the record is complete
        return round_

    def sweep(self, baseline, space: dict, model, tokenizer=None, train=None, eval=None, **options):
        """One factor at a time around ``baseline``, then a small grid over the best values, every round
        in this lab; returns a ``SweepResult`` that ranks the knobs (``ftlab.lab.sweeps.sweep`` says how).
        ``quiet=True``: a verdict line per round, and the result is returned unprinted (show its ranking)."""
        return sweep(self, baseline, space, model, tokenizer, train, eval, **options)

    def prefer(self, config, parent, train, eval=None, model=None, tokenizer=None, name: str | None = None,
               notes: str | None = None, callbacks: list | None = None, score=None) -> Round:
        """A preference round (DPO, ``ftlab.round.preference``) on the adapter of SFT round ``parent``, recorded
        like any round: ``lab.table()`` shows it beside its parent, with its kind and its parent's id.

        ``config``: a ``PreferenceConfig``; ``train`` and ``eval``: preference pairs (``ftlab.data.load_pairs``).
        The base model is the parent's (loaded again from its record unless ``model`` and ``tokenizer`` are given;
        a model of another name is refused before anything trains). The held-out pairs are measured after training
        (``ftlab.evaluation.preference``: preference accuracy, reward margin, repeated 3-grams) and kept beside the
        losses; ``score`` replaces that measurement. A ``PreferenceGuard`` stops a round whose chosen answers
        collapse or whose margin explodes, and the lab records why, with advice.
        """
        from ftlab.lab.watchers import PreferenceGuard

        self._before_training()
        parent = parent if isinstance(parent, Round) else self.round(parent)
        if parent.status != "succeeded" or not parent.adapter_dir.is_dir():
            raise ValueError(f"round {parent.id} is {parent.status} and left no adapter to start from: a preference "
                             "round starts from a succeeded SFT round")
        if model is None:
            model, tokenizer = load_base(parent.record, parent.config)
        elif tokenizer is None:
            raise ValueError("pass the tokenizer with the model")
        check_adapter_base(parent.adapter_dir, model)  # refused here, before a round folder is opened
        pairs = {split: pair_rows(rows, split) for split, rows in (("train", train), ("eval", eval))}
        inputs = RoundInputs(model, tokenizer, pairs["train"], pairs["eval"], recorded_template(parent, tokenizer),
                             parent.record.get("base_model"))
        knobs = config.round_config(parent.config)
        round_ = open_round(self.path, knobs, inputs, name, notes, keep_data=self.keep_data)
        round_.update(kind="preference", parent=parent.id,
                      preference={**config.to_dict(), "method": "dpo", "parent_adapter": str(parent.adapter_dir)})
        held_out = pairs["eval"] if pairs["eval"] is not None else pairs["train"]
        score = score or scorer(list(held_out), config.beta)

        def trains(knobs, inputs, folder, callbacks, resume_from=None):
            return train_preference_round(config, inputs.model, inputs.tokenizer, parent.adapter_dir,
                                          list(inputs.train), list(inputs.eval) if inputs.eval is not None else None,
                                          output_dir=str(folder), callbacks=callbacks, parent=parent.config)

        return self._run(round_, knobs, inputs, callbacks, samples=0, score=score, trains=trains,
                         guard=PreferenceGuard(config))

    def rerun(self, id, seed: int | None = None, name: str | None = None, model=None, tokenizer=None,
              train=None, eval=None, **options) -> Round:
        """Repeat round ``id`` with another seed (the next unused one unless given); ``table()`` shows the spread.

        Seed 000 cloned a round to rule out luck. Model and data are reloaded from the record unless given;
        the round it returns holds the inputs rebuilt from the record (``.inputs``).
        """
        self._before_training()
        original = self.round(id)
        refuse_preference(original, "rerun")
        seeds = [r.record["seed"] for r in repeats_of(self.rounds(), original)]
        config = dataclasses.replace(original.config, seed=max(seeds) + 1 if seed is None else seed)
        inputs = recorded_inputs(original, model, tokenizer, train, eval)
        round_ = open_round(self.path, config, inputs, name or original.name, original.record.get("notes"),
                            repeat_group(original), keep_data=self.keep_data)
        return self._run(round_, config, inputs, **options)

    def resume(self, id, model=None, tokenizer=None, train=None, eval=None, **options) -> Round:
        """Continue round ``id`` from its last complete checkpoint (the trainer restores optimiser, scheduler,
        RNG and data position: on the CPU tiny model the final loss matches an uninterrupted round).
        Model and data are reloaded from the record unless given, as one ``RoundInputs`` (``.inputs``)."""
        self._before_training()
        round_ = self.round(id)
        refuse_preference(round_, "resume")
        if round_.status in (*MEASURED, "running"):
            print(f"Round {round_.id} is {round_.status}: nothing to resume.")
            return round_
        found = checkpoints(round_.path)
        inputs = recorded_inputs(round_, model, tokenizer, train, eval)
        print(f"Resuming round {round_.id} from {found[0].name}." if found else
              f"Round {round_.id} has no checkpoint: training it again from the start.")
        return self._run(round_, round_.config, inputs, resume_from=str(found[0]) if found else None, **options)

    # ------------------------------------------------------------------------------------ the steps
    def _before_training(self) -> None:
        """The lab's folder must be one (a file of that name is refused before anything loads), and damaged
        rounds already in it are mentioned once, at the first round trained into this lab."""
        lab_folder(self.path)
        if self._told_unreadable or not is_main():
            return
        self._told_unreadable = True
        damaged = self.unreadable()
        if damaged:
            more = f" (and {len(damaged) - 1} more: lab.unreadable() lists them)" if len(damaged) > 1 else ""
            warn(f"{damaged[0].problem}{more} New rounds are recorded beside it as usual.", stacklevel=3)

    def _with_checkpoints(self, config, train):
        """The config with a checkpoint schedule (``with_checkpoints``), announced at this lab's first round only."""
        scheduled = with_checkpoints(config, train, say=not self._told_checkpoints)
        self._told_checkpoints |= scheduled.save_steps != config.save_steps
        return scheduled

    def _run(self, round_, config, inputs, callbacks=None, samples=4, score=None, resume_from=None,
             trains=None, guard=None, quiet: bool = False) -> Round:
        """Train under the recorders; turn the outcome (or the exception) into the round's status. ``trains``: what
        trains the round (``train_on``; a preference round's own), ``guard``: its divergence guard.

        ``quiet``: the round's output goes to its logs only, a line moves while it trains, and its verdict is shown."""
        from ftlab.lab.watchers import CheckpointClock, DivergenceGuard, Heartbeat, JsonlLog
        from ftlab.round.progress import QuietProgress

        trains = trains or train_on
        self._let_go_of_last_model()
        round_.inputs = inputs
        attempts = [*round_.record["attempts"], {"started_at": now(), "from_checkpoint": Path(resume_from).name
                                                 if resume_from else None}]
        tracker = tracker_folder(config.report_to, round_.path)  # train_round points the tracker there
        round_.update(status="running", process=this_process(), heartbeat=now(), ended_at=None, failure=None,
                      attempts=attempts, hardware=hardware(),
                      tracker={"name": config.report_to, "folder": tracker.name} if tracker else None)
        guard = guard or DivergenceGuard()
        live = [JsonlLog(round_.path / LOG, len(attempts)), Heartbeat(round_),
                CheckpointClock(round_, CHECKPOINT_MINUTES if world_size() == 1 else None), guard]
        if quiet:
            live.append(moving := QuietProgress(f"Round {round_.id}{f' ({round_.name})' if round_.name else ''}"))
        with capture_output(round_.path, Scrubber(), echo=not quiet) as shown:

            def verdict() -> None:
                print(round_.verdict())  # into the round's stdout.log; a quiet round also shows it
                if quiet:
                    moving.end(round_.verdict(), shown)

            print(f"Lab round {round_.id}{f' ({round_.name})' if round_.name else ''} -> {round_.path}")
            try:
                if inputs.problem is not None:  # data that could not be read at the door: a data failure
                    raise inputs.problem
                result = trains(config, inputs, round_.path, [*live, *(callbacks or [])], resume_from)
                round_.result = result
                record_outcome(round_, config, result, guard, inputs, samples, score,
                               reference_scores(self.rounds(), round_))
            except BaseException as error:  # noqa: B036 - Ctrl-C and kernel stops are recorded, then raised
                round_.fail(classify(error, config, round_.resume_hint()))
                if not isinstance(error, Exception):
                    verdict()
                    raise
            verdict()
        if round_.status != "succeeded":
            free_memory()
        self._holding = round_
        return round_

    def _follow(self, config, inputs, callbacks) -> Round:
        """A process of a distributed round other than the main one: it trains beside the main process, into
        the folder that process opened, and writes none of the lab's files (the trainer saves from the main
        process only). Its divergence guard stops it at the same step as the main one's: both read the same
        averaged losses and the same weights."""
        from ftlab.lab.watchers import DivergenceGuard

        folder = Path(share(None))
        if inputs.problem is not None:
            raise inputs.problem
        result = train_on(config, inputs, folder, [DivergenceGuard(), *(callbacks or [])])
        barrier()  # the main process has written the record
        return Round(folder, result=result)

    def _let_go_of_last_model(self) -> None:
        """Before a new round, drop the previous round's model: five TinyLlamas would not fit on a T4.

        Its adapter stays on disk (``round.path / 'adapter'``); only the newest round keeps ``.model`` and ``.inputs``.
        """
        if self._holding is not None:
            self._holding.inputs = None  # a base model that lab.rerun loaded again goes with it
            if self._holding.result is not None:
                self._holding.result.model = None
            free_memory()


def train_on(config, inputs: RoundInputs, folder, callbacks: list, resume_from: str | None = None):
    """``ftlab.train_round`` on a round's inputs: the one place the lab hands them over as the course's call takes them."""
    return train_round(config, inputs.model, inputs.tokenizer, loaded(inputs.train), loaded(inputs.eval),
                       output_dir=str(folder), template=inputs.template, callbacks=callbacks,
                       resume_from_checkpoint=resume_from)


def pair_rows(given, split: str) -> Rows | None:
    """Preference pairs as the lab keeps a split: read and checked once (``ftlab.data.load_pairs``, file, row and
    field named), fingerprinted, and carried down as they are (no chat rows to convert)."""
    if given is None:
        return None
    rows = Rows(load_pairs(given, file=split if not isinstance(given, str | os.PathLike) else None))
    rows.fingerprint = fingerprint(rows)
    return rows


def refuse_preference(round_: Round, what: str) -> None:
    if round_.record.get("kind") == "preference":
        raise ValueError(f"round {round_.id} is a preference round (on round {round_.record.get('parent')}'s adapter): "
                         f"lab.{what} trains SFT rounds; run lab.prefer(config, {round_.record.get('parent')}, "
                         "pairs, ...) again instead")
