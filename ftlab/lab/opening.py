"""A new round's folder and record, holding everything known before it trains.

``open_round`` numbers the folder, keeps each split's fingerprint (and, unless the lab was told not to,
a copy of its rows, secrets scrubbed), the template's text, the knobs, the versions, the machine and the
processes, and marks the round running; eval rows whose prompt is also in train are recorded (``overlap``;
``lab.train`` warns about them, ``ftlab.data.splits.warn_if_shared``). What the lab writes after training is
``ftlab.lab.running``.
"""

from __future__ import annotations

from ftlab.data.splits import fingerprint, leakage
from ftlab.distributed import launcher, world_size
from ftlab.files.atomic import atomic_write_text
from ftlab.lab.materials import Unreadable, is_ftlab_template, template_text
from ftlab.lab.provenance import hardware, this_process, versions
from ftlab.lab.round import Round
from ftlab.lab.storage import Scrubber, new_round_folder, now, write_rows


def open_round(lab_path, config, inputs, name: str | None = None, notes: str | None = None, repeat_of=None,
               keep_data: bool = True) -> Round:
    """A new round folder in ``lab_path`` with everything known before training: knobs, data, template, machine.

    ``inputs``: the round's ``RoundInputs`` (``ftlab.lab.materials``), as the lab's door built them.
    """
    number, folder = new_round_folder(lab_path)
    scrub, data = Scrubber(), {}
    for split, rows in (("train", inputs.train), ("eval", inputs.eval)):
        if rows is not None:
            data[split] = keep_split(folder, split, rows, scrub, keep_data)
    if found := overlap(inputs.train, inputs.eval):
        data["eval"]["overlap"] = found
    style, text = template_text(inputs.tokenizer, inputs.template)
    atomic_write_text(folder / "template.txt", scrub.text(text))
    round_ = Round(folder, {
        "id": number, "name": name, "status": "running", "started_at": now(),
        "ended_at": None, "config": config.to_dict(), "seed": config.seed,
        "base_model": inputs.base_model, "base_model_path": inputs.base_model_path, "data": data,
        "template": {"style": style, "fingerprint": fingerprint(f"{style}\n{text}"),
                     "ftlab": is_ftlab_template(style, text), "file": "template.txt"},
        "versions": versions(), "hardware": hardware(), "process": this_process(), "heartbeat": now(),
        "world_size": world_size(), "launcher": launcher(),  # processes training this round (DDP)
        "effective_batch_size": config.effective_batch_size * world_size(),
        "attempts": [], "repeat_of": repeat_of, "notes": notes, "last_checkpoint": None,
        "metrics": None, "failure": None})
    round_.update()
    return round_


def overlap(train, eval, shown: int = 3) -> dict | None:
    """The eval rows whose prompt is also in train (``ftlab.data.leakage``), for the record: how many, of how
    many, the first few; None when there are none. Seed 000 swapped rows between its train and test sets and
    could not tell why two runs differed: the record keeps what the warning said."""
    sets = [getattr(rows, "dataset", None) for rows in (train, eval)]
    if any(dataset is None for dataset in sets):  # no eval rows, or a split that could not be read
        return None
    leaks = leakage(*sets)
    if not leaks:
        return None
    return {"rows": len(leaks), "of": len(sets[1]), "first": [str(leak) for leak in leaks[:shown]]}


def keep_split(folder, split, rows, scrub, keep_data: bool = True) -> dict:
    """Fingerprint (taken at the door) and a copy of one split's rows as they came through it; unreadable data is noted."""
    if isinstance(rows, Unreadable):  # the round fails with this error, recorded when it runs
        return {"source": rows.source, "unreadable": f"{type(rows.error).__name__}: {rows.error}"[:300]}
    info = {"fingerprint": rows.fingerprint, "rows": len(rows)}
    if keep_data:
        (folder / "data").mkdir(exist_ok=True)
        write_rows(folder / "data" / f"{split}.jsonl", rows, scrub)
        info["file"] = f"data/{split}.jsonl"
    return info
