"""A round's tracker writes inside the round's folder, the lab says where, and nothing lands in the working directory.

TensorBoard is not a dependency of ftlab: where it is not installed, the round reports to a stand-in
``tensorboardX`` whose writer picks its folder as the real ``SummaryWriter`` does (``./runs/<date>_<host>``
when given none), so the test still fails if a round lets the writer choose.
"""

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

import ftlab
from ftlab.config import RoundConfig
from ftlab.round.trackers import tracker_env

STAND_IN = '''
import os, socket, time
class SummaryWriter:  # tensorboardX's: events.out.tfevents.* in log_dir, ./runs/<date>_<host> without one
    def __init__(self, log_dir=None, **kwargs):
        self.log_dir = log_dir or os.path.join("runs", time.strftime("%b%d_%H-%M-%S") + "_" + socket.gethostname())
        os.makedirs(self.log_dir, exist_ok=True)
        self.file = open(os.path.join(self.log_dir, "events.out.tfevents.%d.stand-in" % time.time()), "a")
    def add_scalar(self, tag, value, step=None): self.file.write(f"{tag} {value} {step}\\n")
    def add_text(self, tag, text, step=None): self.file.write(f"{tag} (text) {step}\\n")
    def flush(self): self.file.flush()
    def close(self): self.file.close()
'''


@pytest.fixture
def tensorboard_writer(tmp_path_factory, monkeypatch):
    """TensorBoard's writer: the real one where installed, else the stand-in (removed from sys.modules after)."""
    if any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        yield "installed"
        return
    folder = tmp_path_factory.mktemp("stand_in")
    (folder / "tensorboardX").mkdir()
    (folder / "tensorboardX" / "__init__.py").write_text(STAND_IN)
    monkeypatch.syspath_prepend(str(folder))
    try:
        yield "stand-in"
    finally:
        sys.modules.pop("tensorboardX", None)


def test_tensorboard_writes_into_the_round_folder_and_the_lab_says_where(tiny, greet_data, tmp_path, monkeypatch,
                                                                        tensorboard_writer, capsys):
    monkeypatch.chdir(tmp_path)  # the working directory a script runs in: it must stay as it was, the lab aside
    lab = ftlab.Lab("lab")
    config = RoundConfig.preset("cpu-tiny", max_steps=4, eval_steps=2, logging_steps=2, report_to="tensorboard")
    run = lab.train(config, *tiny, *greet_data, samples=0)
    assert run.status == "succeeded", run.verdict()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab"]  # no ./runs
    events = list(run.path.rglob("events.out.tfevents.*"))
    assert events and all(run.tracker_files in e.parents for e in events), (tensorboard_writer, events)
    assert run.tracker_files == run.path / "tensorboard"
    assert "tensorboard --logdir" in capsys.readouterr().out
    table = lab.table()
    assert table.loc[run.id, "tracker files"] == f"tensorboard: {run.path.name}/tensorboard"
    assert run.result.tracker_files is not None
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ  # the round's folder is not left set for the next round


def test_wandb_and_trackio_are_pointed_at_the_round_folder_and_back(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in ("wandb", "trackio") else
                        real_find_spec(name, *a))
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    with tracker_env("wandb", tmp_path / "round-001") as folder:
        assert os.environ["WANDB_DIR"] == str((tmp_path / "round-001").resolve())  # wandb adds wandb/ below
        assert folder == tmp_path / "round-001" / "wandb"
    assert "WANDB_DIR" not in os.environ
    # trackio reads TRACKIO_DIR once, at its import, and its modules keep the path as their own name
    old = Path("~/.cache/huggingface/trackio")
    utils = types.SimpleNamespace(TRACKIO_DIR=old, MEDIA_DIR=old / "media")
    storage = types.SimpleNamespace(TRACKIO_DIR=old, other=1)
    monkeypatch.setitem(sys.modules, "trackio.utils", utils)
    monkeypatch.setitem(sys.modules, "trackio.sqlite_storage", storage)
    with tracker_env("trackio", tmp_path / "round-002") as folder:
        assert folder == tmp_path / "round-002" / "trackio" and folder.is_dir()
        assert Path(os.environ["TRACKIO_DIR"]) == folder.resolve()
        assert storage.TRACKIO_DIR == utils.TRACKIO_DIR == folder.resolve()
        assert utils.MEDIA_DIR == folder.resolve() / "media"
    assert storage.TRACKIO_DIR == utils.TRACKIO_DIR == old and utils.MEDIA_DIR == old / "media"
