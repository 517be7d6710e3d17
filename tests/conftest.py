"""Shared fixtures: offline mode, ftlab's tiny model (built once per machine, then cached)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a Hub id would otherwise retry for ~46 s before failing
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_configure(config):
    """``FTLAB_TEST_DETERMINISTIC=1``: the suite under ``torch.use_deterministic_algorithms(True)``, as a learner's
    notebook may set it; with ``OMP_NUM_THREADS=1`` or ``2`` this is how the suite is checked for tests that
    pass on one CPU's settings only (none should: derive expectations from the run, or use tolerances)."""
    if os.environ.get("FTLAB_TEST_DETERMINISTIC") == "1":
        import torch

        torch.use_deterministic_algorithms(True)


@pytest.fixture(scope="session")
def tiny_path():
    from ftlab.models import tiny
    from ftlab.models.loading import tiny_model

    path = tiny.cache_dir()
    if not (path / "config.json").exists():
        tiny_model(path=path)  # builds it as a learner's first call does (one CPU thread: fast on 2 shared cores)
    return path


@pytest.fixture
def tiny(tiny_path):
    """A fresh tiny model and tokenizer for each test (loading takes a fraction of a second)."""
    import ftlab

    return ftlab.tiny_model(path=tiny_path)


@pytest.fixture(scope="session")
def greet_data():
    from ftlab.data import instructions, split_train_eval

    return split_train_eval(instructions(600, "greet_politely", seed=1), eval_size=12, seed=1)


@pytest.fixture
def round_file():
    """Writes ``folder/round.yaml`` for ``ftlab train``, with its data files: see ``_write_round_file``."""
    return _write_round_file


def _write_round_file(folder, train, evaluation, **knobs) -> None:
    """``folder/round.yaml`` for ``ftlab train``: the tiny model on ``train.jsonl`` / ``eval.jsonl`` (written here)
    with ``knobs`` (name, lab, RoundConfig fields) on top of the cpu-tiny preset."""
    import json

    for name, rows in (("train", train), ("eval", evaluation)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    lines = ["preset: cpu-tiny", "model: tiny", "train: train.jsonl", "eval: eval.jsonl", "lab: lab",
             *(f"{key}: {value}" for key, value in knobs.items())]
    (folder / "round.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
