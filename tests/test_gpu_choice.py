"""Kaggle's T4 x2: setup() hides the second GPU before CUDA starts, and says so (device counts faked)."""

import os

import pytest

from ftlab.machine import choose_gpus


def test_two_gpus_one_wanted_hides_the_second_and_says_so():
    environ = {}
    said = choose_gpus(2, 1, environ, cuda_started=False)
    assert environ == {"CUDA_VISIBLE_DEVICES": "0"} and "only GPU 0" in said and "gpus=2" in said


def test_nothing_is_changed_when_there_is_nothing_to_choose_or_the_user_chose():
    for found, wanted in ((0, 1), (1, 1), (2, 2)):
        environ = {}
        assert choose_gpus(found, wanted, environ, cuda_started=False) is None and environ == {}
    environ = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert "yours, kept" in choose_gpus(2, 1, environ, cuda_started=False)
    assert environ == {"CUDA_VISIBLE_DEVICES": "0,1"}


def test_too_late_when_cuda_has_started():
    environ = {}
    said = choose_gpus(2, 1, environ, cuda_started=True)
    assert environ == {} and "Restart the kernel" in said and "DataParallel" in said


def test_setup_chooses_before_cuda_starts(monkeypatch, capsys):
    import torch

    import ftlab

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset by the test")  # so that monkeypatch restores the original
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # Kaggle's T4 x2, faked
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    env = ftlab.setup(check_hub=False)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert "only GPU 0" in env.gpu_choice and "only GPU 0" in capsys.readouterr().out


@pytest.mark.parametrize("gpus", [2])
def test_setup_keeps_both_when_asked(monkeypatch, gpus):
    import torch

    import ftlab

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset by the test")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    env = ftlab.setup(check_hub=False, verbose=False, gpus=gpus)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and env.gpu_choice is None
