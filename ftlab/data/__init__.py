"""Data for fine-tuning: formats, validation, synthetic sets.

``ftlab.data`` turns whatever a learner has (a list of dicts, a file, a DataFrame) into rows that
train without surprises, and ships small offline data sets so every chapter runs without the Hub.

- ``load`` / ``validate``: any source and format (Alpaca, prompt/completion, chat, ShareGPT) to
  checked chat rows, every problem named by file, row and field.
- ``dedup`` (``near_copies`` makes near duplicates to test it on), ``balance``, ``split``, ``leakage``, ``fingerprint``: clean, sample and hold out data.
- ``length_report``: token lengths after the chat template, truncation and padding waste.
- ``arithmetic``, ``general``, ``instructions``, ``dialogues`` (multi-turn): offline data sets;
  ``load_alpaca`` online.
- ``course_set``: the course's own train/eval splits (distinct prompts, none in both).
"""

from ftlab.data.dialogues import dialogues
from ftlab.data.duplicates import DedupReport, dedup, near_copies
from ftlab.data.errors import DataFormatError, Finding
from ftlab.data.formats import detect_format
from ftlab.data.lengths import LengthReport, length_report, token_lengths
from ftlab.data.loader import HubUnavailableError, load, load_alpaca, validate
from ftlab.data.splits import Leak, balance, fingerprint, leakage, split
from ftlab.data.starter_set import general
from ftlab.data.synthetic import COURSE_SETS, TASKS, course_set, instructions, split_train_eval
from ftlab.data.word_problems import arithmetic

__all__ = [
    "DataFormatError",
    "DedupReport",
    "Finding",
    "HubUnavailableError",
    "Leak",
    "LengthReport",
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
    "length_report",
    "near_copies",
    "load",
    "load_alpaca",
    "split",
    "split_train_eval",
    "token_lengths",
    "validate",
]
