"""Export: a saved adapter reloads in a fresh process with the same logits; the streamed merge gives the
adapter model's logits (fp32 and 4-bit bases) within stated tolerances, in bounded memory; the Hub
sees a token only when one is given, and no file or lab record ever holds it."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import ftlab  # noqa: E402
from ftlab.export import adapter as export  # noqa: E402
from ftlab.export.merge import MergeError, MergeWontFit, merge_files, nf4_round_trip, planned_merge_memory  # noqa: E402

TARGETS = ["q_proj", "v_proj", "down_proj"]
ROOT = Path(__file__).resolve().parent.parent
# Tolerances, against logits that reach ~14 on the tiny model (measured: fp32 ~4e-6, fp16 ~4e-3 to 7e-3)
FP32_TOLERANCE, FP16_TOLERANCE = 1e-4, 2e-2


def adapted(tiny_path, quantization=None, seed=0):
    """The tiny model with a LoRA adapter whose B is random (a fresh adapter's B is zero: nothing to merge)."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = ftlab.tiny_model(quantization=quantization, path=tiny_path)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data = torch.randn(param.shape, generator=generator) * 0.05
    return peft_model.eval(), tokenizer


def logits(model, tokenizer):
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in export.PROMPTS]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        return model(**batch).logits


def run_python(code: str, timeout: int = 240) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_reloaded_adapter_in_a_fresh_process_gives_the_same_logits_and_answers(tiny_path, tmp_path):
    expected, answers = {}, {}
    for quantization in (None, "4bit"):
        model, tokenizer = adapted(tiny_path, quantization)
        folder = export.save_adapter(model, tokenizer, tmp_path / f"adapter-{quantization}")
        expected[quantization] = logits(model, tokenizer)
        answers[quantization] = ftlab.evaluation.answers(model, tokenizer, list(export.PROMPTS), max_new_tokens=12)
        record = json.loads((folder / export.RECORD).read_text())
        assert record["base_model"] == "tiny"
        assert (record["base_quantization"] or {}).get("bits") == (4 if quantization else None)
        assert (folder / "chat_template.jinja").exists() and (folder / "adapter_model.safetensors").exists()
    out = run_python(f"""
        import json, torch
        import ftlab
        from ftlab.export import adapter as export
        from tests.test_export import logits
        answers = {{}}
        for q in (None, "4bit"):
            model, tokenizer = export.load_adapter({str(tmp_path)!r} + f"/adapter-{{q}}")
            torch.save(logits(model, tokenizer), {str(tmp_path)!r} + f"/reloaded-{{q}}.pt")
            answers[str(q)] = ftlab.evaluation.answers(model, tokenizer, list(export.PROMPTS), max_new_tokens=12)
        print(json.dumps(answers))
    """)
    reloaded_answers = json.loads(out.splitlines()[-1])
    for quantization in (None, "4bit"):
        reloaded = torch.load(tmp_path / f"reloaded-{quantization}.pt")
        assert (reloaded - expected[quantization]).abs().max() <= 1e-5  # measured: 0.0
        assert reloaded_answers[str(quantization)] == answers[quantization]  # the same greedy answers


@pytest.mark.parametrize("quantization", [None, "4bit"])
def test_merged_model_gives_the_adapter_models_logits(tiny_path, tmp_path, quantization):
    from transformers import AutoModelForCausalLM

    model, tokenizer = adapted(tiny_path, quantization)
    folder = export.save_adapter(model, tokenizer, tmp_path / "adapter")
    for dtype, tolerance in (("fp32", FP32_TOLERANCE), ("fp16", FP16_TOLERANCE)):
        report = export.merge_adapter(folder, tmp_path / f"merged-{dtype}", dtype=dtype, progress=False)
        assert report.adapted_layers == 2 * len(TARGETS) and report.scale == 2.0
        assert report.dequantized_layers == (14 if quantization else 0)  # 7 linear layers x 2 blocks, not lm_head
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / f"merged-{dtype}", dtype=torch.float32)
        gap = export.compare_logits(model, merged, tokenizer)
        assert gap.max_abs <= tolerance and gap.same_top1 == 1.0, (dtype, str(gap))
        assert (tmp_path / f"merged-{dtype}" / "chat_template.jinja").exists()
    sharded = export.merge_adapter(folder, tmp_path / "sharded", shard_bytes=1_000_000, progress=False)
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert sharded.shards == len(set(index["weight_map"].values())) > 2
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "sharded", dtype=torch.float32)
    assert export.compare_logits(model, merged, tokenizer).max_abs <= FP16_TOLERANCE
    if quantization:  # merged into the original weights instead of NF4's: the quantization error shows
        from peft import PeftModel

        base, _ = ftlab.tiny_model(path=tiny_path)
        unrounded = PeftModel.from_pretrained(base, folder).merge_and_unload()
        assert export.compare_logits(model, unrounded, tokenizer).max_abs > 10 * FP16_TOLERANCE


def test_nf4_round_trip_reproduces_the_loaded_4bit_weights(tiny_path):
    import bitsandbytes.functional as bnbf
    from safetensors.torch import load_file

    model, _ = ftlab.tiny_model(quantization="4bit", path=tiny_path)
    layer = model.model.layers[1].mlp.down_proj
    original = load_file(str(tiny_path / "model.safetensors"))["model.layers.1.mlp.down_proj.weight"]
    quantization = export.quantization_of(model)
    assert torch.equal(nf4_round_trip(original, quantization), bnbf.dequantize_4bit(layer.weight.data,
                                                                                    layer.weight.quant_state))


def test_a_merge_that_would_not_fit_says_so_before_starting(tiny_path, tmp_path, monkeypatch):
    from ftlab.export import merge

    model, tokenizer = adapted(tiny_path)
    folder = export.save_adapter(model, tokenizer, tmp_path / "adapter")
    monkeypatch.setattr(merge, "available_ram", lambda: 100_000)
    with pytest.raises(MergeWontFit, match=r"Not merging: a streamed merge holds at most 0\.0\d\d GB.*Free RAM here: 0\.0 GB"):
        export.merge_adapter(folder, tmp_path / "merged", progress=False)
    assert not (tmp_path / "merged").exists() and not list(tmp_path.glob(".merged*"))


def test_a_merge_that_fails_writing_the_tokenizer_leaves_no_half_folder_and_the_old_one_untouched(
        tiny_path, tmp_path, monkeypatch):
    from ftlab.export import merge

    model, tokenizer = adapted(tiny_path)
    folder = export.save_adapter(model, tokenizer, tmp_path / "adapter")
    copy_tokenizer = merge.copy_tokenizer

    def fails_halfway(adapter, output):  # one tokenizer file written, then the disk fills up
        (output / "tokenizer.json").write_bytes((adapter / "tokenizer.json").read_bytes())
        raise OSError("No space left on device")

    def files(where):
        return {p.name: p.read_bytes() for p in where.iterdir()}

    monkeypatch.setattr(merge, "copy_tokenizer", fails_halfway)
    with pytest.raises(OSError, match="No space"):
        export.merge_adapter(folder, tmp_path / "merged", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no merged folder, half or whole; no staging
    monkeypatch.setattr(merge, "copy_tokenizer", copy_tokenizer)
    export.merge_adapter(folder, tmp_path / "merged", progress=False)
    before = files(tmp_path / "merged")
    tokenizer_files = set(export.TOKENIZER_FILES) & set(files(folder))
    assert {"model.safetensors", "config.json", "chat_template.jinja", "tokenizer.json"} <= tokenizer_files | {
        "model.safetensors", "config.json"} <= set(before)
    monkeypatch.setattr(merge, "copy_tokenizer", fails_halfway)
    with pytest.raises(OSError, match="No space"):
        export.merge_adapter(folder, tmp_path / "merged", dtype="fp32", progress=False)
    assert files(tmp_path / "merged") == before and sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "merged"]
    monkeypatch.setattr(merge, "copy_tokenizer", copy_tokenizer)
    export.merge_adapter(folder, tmp_path / "merged", dtype="fp32", progress=False)  # a merge replaces an old one
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["dtype"] == "float32"
    assert set(files(tmp_path / "merged")) == set(before) and len(list(tmp_path.iterdir())) == 2


def test_bad_inputs_are_named(tiny_path, tmp_path):
    model, tokenizer = adapted(tiny_path)
    folder = export.save_adapter(model, tokenizer, tmp_path / "adapter")
    for output in (folder, tmp_path):  # the adapter's own folder, or one that holds it: refused, nothing lost
        with pytest.raises(MergeError, match="the adapter's folder"):
            export.merge_adapter(folder, output, progress=False)
    assert (folder / "adapter_config.json").exists()
    with pytest.raises(export.ExportError, match="no adapter_config.json"):
        export.load_adapter(tmp_path)
    with pytest.raises(export.ExportError, match="PeftModel"):
        export.save_adapter(model.base_model.model, tokenizer, tmp_path / "x")
    other = tmp_path / "other-base"
    other.mkdir()
    (other / "config.json").write_text((tiny_path / "config.json").read_text())
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tiny_path / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if "q_proj" not in k}, str(other / "model.safetensors"))
    with pytest.raises(MergeError, match="q_proj.*does not have"):
        merge_files(folder, other, tmp_path / "merged", progress=False)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(MergeError, match="use_dora.*merge_and_unload"):
        merge_files(folder, tiny_path, tmp_path / "merged", progress=False)


ONE_LAYER_TINYLLAMA = {**ftlab.memory.shapes.TINYLLAMA, "num_hidden_layers": 1}


def write_one_layer_tinyllama(folder: Path, r: int = 16) -> int:
    """TinyLlama's exact shapes with 1 of its 22 layers, as bf16 safetensors (zeros) and a random r-16 adapter on
    every linear layer. Every kind of tensor is TinyLlama's own (embeddings, attention, MLP), so the merge's
    working set is the real one; written without building a model (~350 MB). Returns the parameter count."""
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftlab.files.safetensors import write_header

    config = dict(ONE_LAYER_TINYLLAMA)
    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(AutoConfig.for_model(config.pop("model_type"), **config))
    (folder / "base").mkdir(parents=True)
    meta.config.save_pretrained(folder / "base")
    shapes = {name: list(p.shape) for name, p in meta.state_dict().items()}
    with open(folder / "base" / "model.safetensors", "wb") as f:
        write_header(f, [(name, "BF16", shape) for name, shape in shapes.items()])
        for shape in shapes.values():
            f.write(bytes(2 * int(torch.Size(shape).numel())))
    generator, lora = torch.Generator().manual_seed(0), {}
    for name, module in meta.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head":
            key = f"base_model.model.{name}"
            lora[f"{key}.lora_A.weight"] = torch.randn(r, module.in_features, generator=generator) * 0.01
            lora[f"{key}.lora_B.weight"] = torch.randn(module.out_features, r, generator=generator) * 0.01
    (folder / "adapter").mkdir()
    save_file(lora, str(folder / "adapter" / "adapter_model.safetensors"))
    (folder / "adapter" / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "bias": "none", "target_modules": "all-linear"}))
    return sum(int(torch.Size(s).numel()) for s in shapes.values())


def test_merge_peak_memory_stays_under_its_plan_scaled_to_tinyllama(tmp_path):
    """A 4-bit-trained adapter merged into TinyLlama's shapes (1 of 22 layers) in a fresh process: the peak RSS the
    merge adds stays under its plan, far below the model's own size; TinyLlama's plan, from its exact sizes,
    leaves Colab's 12.7 GB almost free beside the process itself."""
    write_one_layer_tinyllama(tmp_path)
    out = run_python(f"""
        import json, transformers, bitsandbytes.functional, safetensors.torch
        from transformers import AutoModelForCausalLM
        from ftlab.export.merge import merge_files
        from ftlab.memory.ram import rss_kib
        quantization = {{"bits": 4, "quant_type": "nf4", "double_quant": True, "blocksize": 64, "load_dtype": "F16"}}
        report = merge_files({str(tmp_path / 'adapter')!r}, {str(tmp_path / 'base')!r},
                               {str(tmp_path / 'merged')!r}, dtype="fp16", quantization=quantization, progress=False)
        print(json.dumps({{"peak": report.peak_rss_bytes, "planned": report.memory.needed_bytes,
                          "process": rss_kib("VmRSS") * 1024, "layers": report.dequantized_layers}}))
    """)
    measured = json.loads(out.splitlines()[-1])
    print(measured)
    assert measured["layers"] == 7
    assert measured["peak"] <= measured["planned"], measured
    # the largest tensors are TinyLlama's, so is the peak: under a fifth of what holding TinyLlama in fp16 takes
    assert measured["peak"] < 2 * 1_100_048_384 / 5, measured
    tinyllama = planned_merge_memory(r=16, targets="all-linear", quantized=True)
    memory_of_one_layer = planned_merge_memory(ONE_LAYER_TINYLLAMA, r=16, targets="all-linear", quantized=True)
    assert tinyllama.output_bytes == 2 * 1_100_048_384  # every parameter once, in fp16 (the plan's exact count)
    assert tinyllama.working_bytes == memory_of_one_layer.working_bytes  # the same largest tensor: the embeddings
    assert measured["process"] + tinyllama.needed_bytes < 12.7e9 / 4


def test_plan_from_sizes_equals_plan_from_files(tiny_path):
    from ftlab.export.merge import merge_memory
    from ftlab.files.safetensors import numel, read_header

    header = read_header(tiny_path / "model.safetensors")
    adapted = {k for k in header if any(f"{t}.weight" in k for t in TARGETS)}
    from_files = merge_memory([(k, numel(v["shape"]), 4, k in adapted, False) for k, v in header.items()],
                              4 * 8 * sum(sum(header[k]["shape"]) for k in adapted))
    from_sizes = planned_merge_memory(tiny_path, r=8, targets=TARGETS, file_dtype="fp32")
    assert (from_files.working_bytes, from_files.adapter_bytes) == (from_sizes.working_bytes, from_sizes.adapter_bytes)


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records what it was given, sends nothing."""

    calls: list = []

    def __init__(self, token=None):
        FakeHub.calls.append(("init", token))

    def create_repo(self, repo_id, **options):
        FakeHub.calls.append(("create_repo", repo_id, options))

    def upload_folder(self, **options):
        FakeHub.calls.append(("upload_folder", options))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{options['repo_id']}/commit/abc"})()


def test_push_needs_a_token_and_the_token_is_written_nowhere(tiny_path, greet_data, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    token = "hf_" + "Xq7" * 11
    monkeypatch.setenv("HF_TOKEN", token)  # as on Colab with the secret exposed: the lab must not record it
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    FakeHub.calls = []
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    train, evaluation = greet_data
    lab = ftlab.Lab(tmp_path / "lab")
    round_ = lab.train(ftlab.RoundConfig.preset("cpu-tiny", max_steps=2, eval_steps=2), model, tokenizer,
                       train[:32], evaluation[:4])
    folder = export.save_adapter(round_.model, tokenizer, tmp_path / "adapter", produced_by=round_)
    assert json.loads((folder / export.RECORD).read_text())["produced_by"]["round"] == round_.id
    assert export.push_to_hub(folder, "learner/greeter") is None and FakeHub.calls == []
    assert "no token given" in capsys.readouterr().out
    url = export.push_to_hub(folder, "learner/greeter", token=token)
    assert url.endswith("/commit/abc")
    assert FakeHub.calls[0] == ("init", token) and FakeHub.calls[1][2]["private"] is True
    assert FakeHub.calls[2][1]["folder_path"] == str(folder) and token not in repr(FakeHub.calls[1:])
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 10 and not [p for p in written if token.encode() in p.read_bytes()]
    with pytest.raises(export.ExportError, match="user-name/model-name"):
        export.push_to_hub(folder, "greeter", token=token)


def test_the_merge_check_names_each_mistake_without_the_answer(tiny_path, tmp_path):
    from safetensors.torch import load_file

    from ftlab.course.checks import CheckFailed, check_merged_weight

    for quantization, layer in ((None, "model.layers.0.self_attn.q_proj"), ("4bit", "model.layers.1.self_attn.v_proj")):
        model, tokenizer = adapted(tiny_path, quantization)
        folder = export.save_adapter(model, tokenizer, tmp_path / f"adapter-{quantization}")
        lora = load_file(str(folder / "adapter_model.safetensors"))
        a, b = (lora[f"base_model.model.{layer}.lora_{x}.weight"] for x in "AB")
        w = load_file(str(tiny_path / "model.safetensors"))[f"{layer}.weight"]
        q = nf4_round_trip(w, export.quantization_of(model)) if quantization else w
        mistakes = {"still None": None, "transposed": (q + 2 * b @ a).T, "base weight": q,
                    "scaled wrongly": q + b @ a, "off by up to": q + 2 * b @ a + 1e-3}
        if quantization:
            mistakes["trained on a 4-bit base"] = w + 2 * b @ a
        for words, answer in mistakes.items():
            with pytest.raises(CheckFailed, match=words) as failure:
                check_merged_weight(answer, folder, layer)
            assert "revisit" in str(failure.value).lower() or words == "still None"
            assert "tensor(" not in str(failure.value)  # the expected matrix is never printed
        assert check_merged_weight(q + 2 * b @ a, folder, layer)


def test_gguf_written_by_ftlab_reads_back_with_the_same_logits_tokens_and_template(tiny_path, tmp_path):
    pytest.importorskip("gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftlab.export.gguf import write_gguf

    model, tokenizer = adapted(tiny_path)
    folder = export.save_adapter(model, tokenizer, tmp_path / "adapter")
    for dtype, gguf_dtype in (("fp32", "f32"), ("fp16", "f16")):
        export.merge_adapter(folder, tmp_path / f"merged-{dtype}", dtype=dtype, progress=False)
        write_gguf(tmp_path / f"merged-{dtype}", tmp_path / f"tiny-{gguf_dtype}.gguf", dtype=gguf_dtype)
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / f"merged-{dtype}", dtype=torch.float32)
        read_back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=f"tiny-{gguf_dtype}.gguf",
                                                         dtype=torch.float32)
        gap = export.compare_logits(merged, read_back, tokenizer)
        assert gap.max_abs <= 1e-6, str(gap)  # measured: 0.0 (the merged weights are already in the file's dtype)
    gguf_tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file="tiny-f16.gguf")
    text = "Greet Ada politely. 你好, café!"
    assert gguf_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    chat = [{"role": "user", "content": "Greet Ada politely."}]  # the template renders as the model's own
    assert gguf_tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
        tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert (gguf_tokenizer.eos_token, gguf_tokenizer.pad_token) == (tokenizer.eos_token, tokenizer.pad_token)


# ------------------------------------------------------------------------------------------ nothing lost at the edges
def contents(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_an_output_folder_holding_other_files_is_refused_and_nothing_in_it_is_lost(tiny_path, tmp_path):
    from ftlab.files.faults import OutputInUse

    model, tokenizer = adapted(tiny_path)
    folder = export.save_adapter(model, tokenizer, tmp_path / "adapter")
    mine = tmp_path / "my_models"  # a learner's folder: notes, another model
    (mine / "other-model").mkdir(parents=True)
    (mine / "other-model" / "model.safetensors").write_bytes(b"weights")
    (mine / "notes.txt").write_text("three weeks of notes")
    before = contents(mine)
    with pytest.raises(OutputInUse, match=r"my_models already exists and holds notes\.txt, other-model/, not a merged "
                                          r"model ftlab wrote\. Not writing over it: .*replace=True"):
        export.merge_adapter(folder, mine, progress=False)
    with pytest.raises(OutputInUse, match=r"holds notes\.txt, other-model/, not an adapter ftlab wrote"):
        export.save_adapter(model, tokenizer, mine)
    assert contents(mine) == before and sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "my_models"]
    merged = tmp_path / "merged"
    export.merge_adapter(folder, merged, progress=False)
    export.merge_adapter(folder, merged, dtype="fp32", progress=False)  # its own earlier merge: replaced
    assert json.loads((merged / "config.json").read_text())["dtype"] == "float32"
    (merged / "notes.txt").write_text("written beside the merge")
    with pytest.raises(OutputInUse, match=r"merged already exists and holds notes\.txt beside the merged model"):
        export.merge_adapter(folder, merged, progress=False)
    export.save_adapter(model, tokenizer, folder)  # an adapter saved again over its own folder: replaced
    export.merge_adapter(folder, mine, progress=False, replace=True)  # asked for: what was there is gone
    assert not (mine / "notes.txt").exists() and (mine / "model.safetensors").exists()


def test_damaged_missing_or_cut_adapter_files_are_named_before_anything_loads(tiny_path, tmp_path):
    import shutil

    from ftlab.files.faults import CutShort, DamagedFile

    model, tokenizer = adapted(tiny_path)
    good = export.save_adapter(model, tokenizer, tmp_path / "adapter")

    def damaged(name, change):
        folder = tmp_path / f"{name}-{change.__name__}"
        shutil.copytree(good, folder)
        change(folder / name)
        return folder

    def cut(path):
        path.write_bytes(path.read_bytes()[:-100])

    def half(path):
        path.write_text(path.read_text()[:40])

    def gone(path):
        path.unlink()

    for call in (export.load_adapter, lambda f: export.merge_adapter(f, tmp_path / "out", progress=False)):
        with pytest.raises(DamagedFile, match=r"adapter_config\.json is damaged: not valid JSON \(.* at line \d+, "
                                              r"column \d+\)\. Save the adapter again"):
            call(damaged("adapter_config.json", half))
        with pytest.raises(DamagedFile, match=r"ftlab_export\.json is damaged: not valid JSON .*base="):
            call(damaged(export.RECORD, half))
        with pytest.raises(export.ExportError, match=r"holds adapter_config\.json but not adapter_model\.safetensors, "
                                                     r"the LoRA weights \(no weights file at all\)"):
            call(damaged("adapter_model.safetensors", gone))
        with pytest.raises(CutShort, match=r"adapter_model\.safetensors is cut short: [\d,]+ of [\d,]+ bytes"):
            call(damaged("adapter_model.safetensors", cut))
        for folder in tmp_path.glob("*-*"):
            shutil.rmtree(folder)
    with pytest.raises(export.ExportError, match="no such folder"):
        export.load_adapter(tmp_path / "nowhere")
    base = tmp_path / "cut-base"  # a base whose copy stopped halfway: refused, not merged from garbage
    shutil.copytree(tiny_path, base)
    weights = base / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CutShort, match=r"cut-base/model\.safetensors is cut short: [\d,]+ of [\d,]+ bytes"):
        merge_files(good, base, tmp_path / "merged", progress=False)
    assert not (tmp_path / "merged").exists() and not (tmp_path / "out").exists()


def test_write_gguf_names_each_mistake_and_never_replaces_a_file_it_did_not_write(tiny_path, tmp_path):
    pytest.importorskip("gguf")
    import shutil

    from ftlab.export.gguf import GGUFExportError, write_gguf
    from ftlab.files.faults import CutShort, OutputInUse

    model, tokenizer = adapted(tiny_path)
    folder = export.save_adapter(model, tokenizer, tmp_path / "adapter")
    with pytest.raises(GGUFExportError, match=r"adapter is a LoRA adapter, not a whole model: .*ftlab\.merge_adapter\("):
        write_gguf(folder, tmp_path / "model.gguf")
    with pytest.raises(GGUFExportError, match="nowhere: no such folder"):
        write_gguf(tmp_path / "nowhere", tmp_path / "model.gguf")
    merged = tmp_path / "merged"
    export.merge_adapter(folder, merged, progress=False)
    target = tmp_path / "not" / "yet" / "model.gguf"  # its folder does not exist yet: made
    write_gguf(merged, target)
    good = target.read_bytes()
    write_gguf(merged, target)  # a GGUF ftlab wrote: replaced
    with pytest.raises(GGUFExportError, match=r"output='.*yet' is a folder: give the GGUF file's own name"):
        write_gguf(merged, target.parent)
    notes = tmp_path / "notes.gguf"
    notes.write_text("not a model")
    with pytest.raises(OutputInUse, match=r"notes\.gguf already exists and is a file of 11 bytes, not a GGUF file"):
        write_gguf(merged, notes)
    assert notes.read_text() == "not a model"
    cut = tmp_path / "cut"
    shutil.copytree(merged, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(CutShort, match=r"cut/model\.safetensors is cut short"):
        write_gguf(cut, target)
    assert target.read_bytes() == good and sorted(p.name for p in target.parent.iterdir()) == ["model.Modelfile",
                                                                                                "model.gguf"]
    write_gguf(merged, notes, replace=True)  # asked for
    assert notes.read_bytes()[:4] == b"GGUF"


def test_a_full_disk_during_any_export_replaces_nothing(tiny_path, tmp_path):
    """In a process whose files may not grow past a limit (RLIMIT_FSIZE: the kernel answers EFBIG, "File too
    large", as a full Drive answers ENOSPC), each writer fails with ftlab's message and leaves its earlier output."""
    pytest.importorskip("gguf")
    pytest.importorskip("resource")
    model, tokenizer = adapted(tiny_path)
    folder = export.save_adapter(model, tokenizer, tmp_path / "adapter")
    export.merge_adapter(folder, tmp_path / "merged", progress=False)
    ftlab.write_gguf(tmp_path / "merged", tmp_path / "model.gguf")
    before = {name: contents(tmp_path / name) for name in ("adapter", "merged")}
    gguf = (tmp_path / "model.gguf").read_bytes()
    out = run_python(f"""
        import resource, signal
        from pathlib import Path
        from peft import PeftModel
        import ftlab
        from ftlab.export import adapter as export
        work = Path({str(tmp_path)!r})
        model, tokenizer = ftlab.tiny_model(path={str(tiny_path)!r})
        model = PeftModel.from_pretrained(model, work / "adapter")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of ending the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
        for name, write in (("adapter", lambda: export.save_adapter(model, tokenizer, work / "adapter")),
                            ("merge", lambda: export.merge_adapter(work / "adapter", work / "merged", dtype="fp32",
                                                                    progress=False)),
                            ("gguf", lambda: ftlab.write_gguf(work / "merged", work / "model.gguf", dtype="f32"))):
            try:
                write()
            except OSError as error:
                print(name, type(error).__name__, error)
        """)
    lines = out.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [["adapter", "WriteFailed"], ["merge", "WriteFailed"],
                                                    ["gguf", "WriteFailed"]], out
    assert all("could not be written" in line and "Nothing was replaced" in line for line in lines)
    assert {name: contents(tmp_path / name) for name in ("adapter", "merged")} == before
    assert (tmp_path / "model.gguf").read_bytes() == gguf
    # no partial copy left (the Modelfile is the first write's: the failed one never reached it)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "merged", "model.Modelfile", "model.gguf"]
