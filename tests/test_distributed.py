"""The same ``ftlab train`` under ``torchrun`` with two processes over gloo (DDP on the CPU).

An audit hook in each process lists the files it writes in the lab: the main process writes the lab's
files, the other writes only its own random-number state in each checkpoint (``rng_state_1.pth``), so no
file is written twice.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftlab.distributed import launcher, world_size

AUDITED = """\
import os, sys
lab, mine = os.path.realpath(sys.argv.pop(1)), open(sys.argv.pop(1) + f"/rank{os.environ['RANK']}.txt", "w")
def record(path):
    path = os.path.realpath(os.fsdecode(path))
    if path.startswith(lab + os.sep):
        mine.write(os.path.relpath(path, lab) + "\\n"); mine.flush()
def written(event, args):  # what Python itself opens for writing, or renames into place
    if event == "open" and isinstance(args[0], str):
        mode, flags = args[1], args[2] or 0
        if (mode and any(c in mode for c in "wax+")) or (mode is None and flags & (os.O_WRONLY | os.O_RDWR)):
            record(args[0])
    elif event in ("os.rename", "os.replace"):
        record(args[1])
sys.addaudithook(written)
import safetensors.torch, torch  # their writers open files in C++, out of the audit's sight: wrapped
def wrapped(save):
    def saving(obj, path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)):
            record(path)
        return save(obj, path, *args, **kwargs)
    return saving
torch.save, safetensors.torch.save_file = wrapped(torch.save), wrapped(safetensors.torch.save_file)
from ftlab.cli import main
sys.exit(main())
"""


@pytest.mark.slow
def test_two_processes_train_one_round_record_world_size_2_and_write_each_file_once(tmp_path, tiny_path, round_file):
    from ftlab.data import instructions, split_train_eval

    train, evaluation = split_train_eval(instructions(2000, "skills", seed=0), eval_size=12, seed=0)  # enough rows
    round_file(tmp_path, train, evaluation, name="two processes", max_steps=8, eval_steps=4, save_steps=4,
                     logging_steps=2)  # for epochs to tell
    (tmp_path / "audited.py").write_text(AUDITED, encoding="utf-8")
    (tmp_path / "writes").mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               str(tmp_path / "audited.py"), str(tmp_path / "lab"), str(tmp_path / "writes"),
               "train", str(tmp_path / "round.yaml")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    rounds = sorted((tmp_path / "lab").glob("round-*"))
    assert [r.name for r in rounds] == ["round-001"]  # one round, not one per process
    record = json.loads((rounds[0] / "round.json").read_text())
    assert record["status"] == "succeeded" and record["world_size"] == 2 and record["launcher"] == "torchrun"
    assert record["effective_batch_size"] == 8 * 2 * 2
    # each logged step once (the main process logs), and an optimiser step takes 2 processes x 16 rows
    logs = [e for e in map(json.loads, (rounds[0] / "log.jsonl").read_text().splitlines()) if "loss" in e]
    assert [e["step"] for e in logs] == [1, 2, 4, 6, 8]
    assert logs[-1]["epoch"] == pytest.approx(8 * 32 / record["data"]["train"]["rows"], abs=0.05)
    assert (rounds[0] / "adapter" / "adapter_model.safetensors").exists()

    main, other = ({p.removeprefix("round-001/") for p in (tmp_path / "writes" / f"rank{r}.txt").read_text().split()}
                   for r in (0, 1))
    assert {"round.json", "log.jsonl", "adapter/adapter_model.safetensors", "checkpoint-8/optimizer.pt"} <= main
    assert other == {"checkpoint-4/rng_state_1.pth", "checkpoint-8/rng_state_1.pth"}, other
    assert not main & other and {Path(p).name for p in main if "rng_state" in p} == {"rng_state_0.pth"}
    assert out.stdout.count("effective batch 16 x 1 x 2 = 32, 2 processes (torchrun)") == 1  # printed once
    assert out.stdout.count("succeeded") == 1, out.stdout


def test_a_plain_process_is_a_world_of_one(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    assert world_size() == 1 and launcher() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    assert launcher() == "torchrun"


def test_each_launched_process_keeps_its_gpu(monkeypatch):
    from ftlab.machine import choose_gpus

    environ = {"WORLD_SIZE": "2"}  # Kaggle's T4 x2 under torchrun: setup() must not hide GPU 1 from rank 1
    assert choose_gpus(2, 1, environ, cuda_started=False) is None and "CUDA_VISIBLE_DEVICES" not in environ


LAUNCHED = """\
import sys
import ftlab.distributed as d

def work(folder):
    value = d.share(f"from rank {d.rank()}")  # every process gets the main process's value
    open(f"{folder}/rank{d.rank()}.txt", "w").write(f"{d.world_size()} {value}")

d.launch(work, sys.argv[1], processes=2)
"""


def test_launch_from_a_notebook_starts_two_processes_that_share_the_main_ones_values(tmp_path):
    (tmp_path / "launched.py").write_text(LAUNCHED, encoding="utf-8")
    out = subprocess.run([sys.executable, str(tmp_path / "launched.py"), str(tmp_path)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["2 from rank 0"] * 2


def test_launch_refuses_after_cuda_or_bitsandbytes_started_and_says_how_to_recover(monkeypatch):
    import torch

    from ftlab.distributed import launch

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match="Restart the kernel"):
        launch(print, processes=2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setitem(sys.modules, "bitsandbytes", object())
    with pytest.raises(RuntimeError, match="bitsandbytes.*Restart the kernel"):
        launch(print, processes=2)


def test_the_lab_table_shows_processes_and_a_ddp_round_is_not_a_one_knob_change(tmp_path):
    import shutil

    import ftlab

    shutil.copytree(Path(__file__).parent / "fixtures" / "lab-0.1.0", tmp_path / "lab")
    lab = ftlab.Lab(tmp_path / "lab")
    assert "processes" not in lab.table().columns  # rounds of one process: the table as it was
    record = tmp_path / "lab" / "round-002" / "round.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "world_size": 2}))
    table = lab.table()
    assert table.loc[1, "processes"] == 1 and table.loc[2, "processes"] == 2
    assert "processes" in table.loc[2, "changed"] and [2, "processes"] in table.attrs["differs"]
    with pytest.warns(ftlab.lab.NotComparableWarning, match="processes"):
        lab.compare([1, 2])


def test_more_processes_than_gpus_is_refused_before_nccl_fails(monkeypatch):
    import ftlab.distributed
    import ftlab.machine
    from ftlab.distributed import too_few_gpus

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(ftlab.distributed, "gpus", lambda: [ftlab.machine.GPU("Tesla T4", (7, 5), 14.7)])  # Colab: one T4
    assert "2 processes" in too_few_gpus() and "--nproc_per_node 1" in too_few_gpus()
    monkeypatch.setattr(ftlab.distributed, "gpus", lambda: [ftlab.machine.GPU("Tesla T4", (7, 5), 14.7)] * 2)  # Kaggle T4 x2
    assert too_few_gpus() is None
    monkeypatch.setattr(ftlab.distributed, "gpus", lambda: [])  # a CPU: gloo, any number of processes
    assert too_few_gpus() is None
