"""Data for fine-tuning (chapter 01): formats, validation, duplicates, splits, and the course's own sets.

``ftlab.data`` turns whatever a learner has (a list of dicts, a file, a DataFrame) into rows that
train without surprises, and ships small offline data sets so every chapter runs without the Hub.

- ``load`` / ``validate``: any source and format (Alpaca, prompt/completion, chat, ShareGPT) to
  checked chat rows, every problem named by file, row and field.
- ``dedup`` (``near_copies`` makes near duplicates to test it on), ``balance``, ``split``, ``leakage``, ``fingerprint``: clean, sample and hold out data.
- ``arithmetic``, ``general``, ``instructions``, ``dialogues`` (multi-turn): offline data sets;
  ``python_docs``: 2,600 (or more) real English question -> answer rows from the Python standard
  library's own documentation (PSF-2.0), offline; ``load_alpaca``: Alpaca's first rows, from the Hub
  or a local copy (CC BY-NC 4.0).
- ``course_set``: the course's own train/eval splits (distinct prompts, none in both).
- ``load_pairs``, ``pairs_from_rows``: preference pairs (prompt, chosen, rejected) read and checked, or built from
  the course's rows (chapter 08).

Modules, in the order data flows through them: ``files`` (a data file into raw rows, each numbered as an
editor shows it), ``formats`` (the shape of a row, and ftlab's canonical chat row), ``errors`` (a bad row as
a learner reads it), ``loading`` (any source checked and converted), ``duplicates``, ``splits``, and
``course_sets/`` (the offline sets the chapters train on). Nothing here knows a template or a model: token
lengths after a template are ``ftlab.templates.lengths``.
"""

from ftlab.data.course_sets.arithmetic import arithmetic
from ftlab.data.course_sets.dialogues import dialogues
from ftlab.data.course_sets.python_docs import python_docs
from ftlab.data.course_sets.starter_set import general
from ftlab.data.course_sets.synthetic import COURSE_SETS, TASKS, course_set, instructions, split_train_eval
from ftlab.data.duplicates import DedupReport, dedup, near_copies
from ftlab.data.errors import DataFormatError, Finding
from ftlab.data.formats import detect_format
from ftlab.data.loading import load, load_alpaca, validate
from ftlab.data.preference_pairs import load_pairs, pairs_from_rows
from ftlab.data.splits import Leak, balance, fingerprint, leakage, split
from ftlab.machine import HubUnavailableError

__all__ = [
    "DataFormatError",
    "DedupReport",
    "Finding",
    "HubUnavailableError",
    "Leak",
    "COURSE_SETS",
    "TASKS",
    "arithmetic",
    "balance",
    "course_set",
    "dedup",
    "detect_format",
    "dialogues",
    "fingerprint",
    "general",
    "instructions",
    "leakage",
    "near_copies",
    "pairs_from_rows",
    "python_docs",
    "load",
    "load_alpaca",
    "load_pairs",
    "split",
    "split_train_eval",
    "validate",
]
