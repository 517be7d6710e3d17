"""Shared fixtures: offline mode, ftlab's tiny model (built once per machine, then cached)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a Hub id would otherwise retry for ~46 s before failing
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_path():
    from ftlab import tiny
    from ftlab.models import tiny_model

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
