"""Data for fine-tuning: formats, validation, synthetic sets.

``ftlab.data`` turns whatever a learner has (a list of dicts, a file, a DataFrame) into rows that
train without surprises, and ships small offline data sets so every chapter runs without the Hub.
"""

from ftlab.data.errors import DataFormatError, Finding
from ftlab.data.rows import check_rows, to_dataset
from ftlab.data.synthetic import TASKS, instructions, split_train_eval

__all__ = [
    "DataFormatError",
    "Finding",
    "TASKS",
    "check_rows",
    "instructions",
    "split_train_eval",
    "to_dataset",
]
