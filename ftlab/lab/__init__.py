"""The lab book (chapters 04 and 05): every round recorded in a folder that survives a disconnect, compared.

``ftlab.Lab`` is the one name most people need; ``RoundInputs`` holds a round's inputs as one object. The
package, module by module, as a reader looks for it:

- ``widgets``: a panel to set the knobs and train rounds, and a view to compare them (core ipywidgets).
- ``book``: ``Lab``, the entry point: train / rerun / resume a round, read the table, compare rounds.
- ``sweeps``: the knobs ranked: one factor at a time around a baseline, then a small grid over the best.
- ``answers_and_curves``: rounds side by side beyond the table: one prompt's answers, curves on a fair axis.
- ``effects``: is a change beyond noise? One knob's effect against the spread of repeats (``Effect``).
- ``table``: the table of rounds and fair comparisons (``NotComparableWarning``).
- ``opening``: a new round's folder and record, with everything known before it trains.
- ``round``: ``Round``, one round's record (``round.json``): status, logs, curve, verdict.
- ``repeats``: a round's repeats (``lab.rerun``) in one grouping, and their mean and standard deviation.
- ``materials``: what a round is made of, as one ``RoundInputs`` built at the door: model, tokenizer, rows, template.
- ``running``: around one round's training: its checkpoint schedule, its outcome recorded, memory freed.
- ``provenance``: where and by what it ran: versions, hardware, the process and whether it lives.
- ``watchers``: trainer callbacks while it trains: live log, heartbeat, checkpoint clock, divergence guard.
- ``capture``: its printed output teed into the folder (its tracker's files land there too: ``ftlab.round.trackers``).
- ``failures``: why a round failed (an accuracy collapse too), in a mentor's words.
- ``directions``: which way a metric is better: higher for scores, lower for losses, declared for the rest.
- ``storage``: the folder's files: atomic writes, JSONL, secrets scrubbed, round folders, checkpoints.

Each module imports only modules below it in this list (tests/test_imports.py checks it); ``storage``
needs only the standard library. torch loads only when a round trains (``watchers``, ``ftlab.round.train``)
or a base model is loaded again (``materials.load_base``), so reading a lab (``ftlab runs``) stays fast.
"""

from ftlab.lab.book import Lab
from ftlab.lab.materials import RoundInputs
from ftlab.lab.round import MARKS, Round
from ftlab.lab.table import Comparison, NotComparableWarning

__all__ = ["Lab", "Round", "RoundInputs", "Comparison", "NotComparableWarning", "MARKS"]
