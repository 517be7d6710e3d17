"""GGUF for the course's models, read back without llama.cpp (tests/test_llama_cpp.py runs them in llama.cpp):
a SentencePiece Llama (TinyLlama's kind of tokenizer) reads back in transformers with the same logits, tokens and
template; each dtype holds the weights within its quantization step, norms in f32; the Modelfile speaks each
real chat format; a model, tokenizer or dtype GGUF cannot hold is refused by name, and nothing is written."""

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")

from ftlab.export.gguf import GGUFExportError, modelfile_path, permute, write_gguf  # noqa: E402
from ftlab.templates.template import Template  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"
SPECIAL = ("<unk>", "<s>", "</s>")
# chats whose prompts a GGUF file must read token for token as transformers does
CHATS = ["Greet Ada politely.", "Double 7 and name a red thing.", "Hello  world   x\n\n y 123 4567 it's 你好, café!",
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
          {"role": "assistant", "content": "Good day, Ada."}, {"role": "user", "content": "Again, please."}]]


def sentencepiece_llama(folder: Path, seed: int = 0) -> Path:
    """A tiny random Llama with a tokenizer of TinyLlama's kind, built offline: SentencePiece BPE with byte fallback.

    Laid out as Llama's: <unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>, then the pieces in merge order, the
    merges recovered from the pieces' order as transformers recovers them from a SentencePiece model, and loaded by
    transformers' ``LlamaTokenizer`` (the ▁ metaspace, prepended to a text's first word only: ``legacy=False``) with
    TinyLlama's chat template. Trained by ``tokenizers`` on ftlab's sentences and tasks in a fraction of a second.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    from ftlab.data.course_sets.synthetic import instructions
    from ftlab.models.tiny import sentences

    rows = instructions(300, "skills", seed=seed)
    corpus = sentences(500, seed=seed) + [m["content"] for r in rows for m in r["messages"]] + ["<|user|>\n"] * 20
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=700, special_tokens=list(SPECIAL),
                                                        show_progress=False))
    pieces = [t for t, _ in sorted(bpe.get_vocab().items(), key=lambda item: item[1]) if t not in SPECIAL]
    vocab = {t: i for i, t in enumerate([*SPECIAL, *(f"<0x{b:02X}>" for b in range(256)), *pieces])}
    merges = generate_merges(vocab, {piece: -rank for rank, piece in enumerate(pieces)})
    tokenizer = LlamaTokenizer(vocab=vocab, merges=merges, legacy=False, add_prefix_space=True, add_bos_token=True)
    tokenizer.chat_template = json.loads((FIXTURES / "tinyllama.json").read_text())["chat_template"]
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def spm_llama(tmp_path_factory):
    return sentencepiece_llama(tmp_path_factory.mktemp("spm") / "model")


def prompt_ids(tokenizer, chats) -> list[list[int]]:
    template = Template.chat(tokenizer)
    return [tokenizer(template.prompt(chat), add_special_tokens=False)["input_ids"] for chat in chats]


def fields(path) -> dict:
    reader = gguf.GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def test_a_sentencepiece_llama_reads_back_with_the_same_logits_tokens_and_template(spm_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spm_llama)
    write_gguf(spm_llama, tmp_path / "spm.gguf", dtype="f32")
    meta = fields(tmp_path / "spm.gguf")
    assert meta["tokenizer.ggml.model"] == "llama" and meta["tokenizer.ggml.add_bos_token"] is True
    assert meta["tokenizer.ggml.add_space_prefix"] is False  # prepend_scheme "first": see ftlab.export.gguf_vocab
    assert meta["tokenizer.ggml.eot_token_id"] == meta["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    scores, tokens = meta["tokenizer.ggml.scores"], meta["tokenizer.ggml.tokens"]
    assert tokens[3:259] == [f"<0x{b:02X}>" for b in range(256)] and set(meta["tokenizer.ggml.token_type"][3:259]) == {6}
    merged = [s for t, s in zip(tokens, scores, strict=True) if len(t) > 1 and s > -len(meta["tokenizer.ggml.merges"])]
    assert len(merged) > 300 and merged == sorted(merged, reverse=True)  # llama.cpp merges best score first

    read_back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="spm.gguf", dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(spm_llama, dtype=torch.float32)
    ids = torch.tensor([prompt_ids(tokenizer, CHATS[:1])[0]])
    with torch.no_grad():
        gap = (read_back(ids).logits - model(ids).logits).abs().max().item()
    assert gap <= 1e-5, gap  # measured: ~1e-7 (the same f32 weights, q and k permuted there and back)
    gguf_tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file="spm.gguf")
    assert prompt_ids(gguf_tokenizer, CHATS) == prompt_ids(tokenizer, CHATS)
    chat = CHATS[3]
    assert gguf_tokenizer.apply_chat_template(chat, tokenize=False) == tokenizer.apply_chat_template(chat, tokenize=False)
    modelfile = modelfile_path(tmp_path / "spm.gguf").read_text()
    assert 'FROM ./spm.gguf\nTEMPLATE """{{ range .Messages }}{{ if eq .Role "system" }}<|system|>\n' in modelfile
    assert modelfile.endswith('PARAMETER stop "</s>"\n')


def test_each_dtype_holds_the_weights_within_its_quantization_step_with_norms_in_f32(tiny_path, tmp_path):
    from safetensors.torch import load_file

    from ftlab.export.gguf import DTYPES

    original = load_file(str(tiny_path / "model.safetensors"))
    config = json.loads((tiny_path / "config.json").read_text())
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    # the largest error each type allows, as a share of its 32-number block's largest weight: half a step of the
    # scale (q8_0: largest/127, kept in f16), a whole step at q4_0's clipped end (largest/8), f16's rounding
    allowed = {"F32": 0.0, "F16": 2**-11, "Q8_0": 0.6 / 127, "Q4_0": 1.05 / 8}
    sizes = {}
    for dtype in ("f32", "f16", "q8_0", "q4_0"):
        path = write_gguf(tiny_path, tmp_path / f"tiny-{dtype}.gguf", dtype=dtype)
        sizes[dtype] = path.stat().st_size
        assert fields(path)["general.file_type"] == gguf.LlamaFileType[DTYPES[dtype][2]]
        for tensor in gguf.GGUFReader(path).tensors:
            source = next(name for name in original if names.get_name(name, try_suffixes=(".weight",)) == tensor.name)
            weight = original[source].float()
            if "q_proj" in source or "k_proj" in source:  # in llama.cpp's rotary layout
                weight = permute(weight, config["num_attention_heads" if "q_proj" in source else "num_key_value_heads"])
            expected = DTYPES[dtype][1 if tensor.name == "output.weight" else 0] if weight.dim() > 1 else "F32"
            assert tensor.tensor_type.name == expected, (dtype, tensor.name)
            values = torch.from_numpy(gguf.quants.dequantize(tensor.data, tensor.tensor_type).copy())
            blocks = weight.reshape(-1, 32) if weight.dim() > 1 else weight.reshape(-1, 1)
            error = (values.reshape(blocks.shape) - blocks).abs()
            bound = blocks.abs().amax(dim=1, keepdim=True) * allowed[expected]
            assert (error <= bound + 1e-8).all(), (dtype, tensor.name, (error - bound).max().item())
    print({dtype: f"{size / 1e6:.2f} MB" for dtype, size in sizes.items()})
    assert sizes["f32"] > sizes["f16"] > sizes["q8_0"] > sizes["q4_0"]
    assert 0.45 < sizes["q8_0"] / sizes["f16"] < 0.6 and sizes["q4_0"] / sizes["f16"] < 0.4


def test_the_modelfile_speaks_each_real_chat_format_or_says_why_not(tiny_path):
    from ftlab.export.ollama import CannotTranslate, go_template, wrappers
    from tests.test_chat_templates import NAMES, ROWS, fixture_tokenizer

    translated = {}
    for name in NAMES:
        tokenizer, spec = fixture_tokenizer(tiny_path, name)

        def render(messages, add_generation_prompt, tokenizer=tokenizer):
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

        bos = spec["bos_token"] if spec["bos_token"] and "bos_token" in spec["chat_template"] else ""
        try:
            found = wrappers(render, bos)
        except CannotTranslate as why:
            translated[name] = str(why)
            continue
        translated[name] = go_template(found)
        assert found.default_system == spec["default_system_prompt"]
        for row in ROWS:  # Ollama's rendering of each conversation's prompts is the model's own
            for end in range(1, len(row) + 1, 2):
                chat = row[:end] if row[end - 1]["role"] == "user" else row[:end + 1]
                expected = render(chat, True)
                assert bos + found.render(chat) == expected, (name, chat)
    assert "System role not supported" in translated["gemma"]  # no TEMPLATE: Ollama reads the one in the file
    assert "roles must alternate" in translated["mistral"]
    assert translated["smollm2"] == (
        '{{ range .Messages }}{{ if eq .Role "system" }}<|im_start|>system\n{{ .Content }}<|im_end|>\n'
        '{{ else if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
        '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}<|im_end|>\n'
        '{{ end }}{{ end }}<|im_start|>assistant\n')
    assert translated["tinyllama"].startswith('{{ range .Messages }}{{ if eq .Role "system" }}<|system|>\n{{ .Content }}</s>\n')


def test_what_gguf_cannot_hold_is_refused_by_name_and_nothing_is_written(tiny_path, spm_llama, tmp_path):
    import shutil

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ftlab.files.faults import OutputInUse

    out = tmp_path / "out" / "model.gguf"
    with pytest.raises(GGUFExportError, match=r"dtype='q5': choose one of 'f32', 'f16', 'q8_0', 'q4_0'"):
        write_gguf(tiny_path, out, dtype="q5")
    with pytest.raises(GGUFExportError, match=r"dtype='q4_k_m': the installed gguf package .* no Q4_K quantizer.*"
                                              r"llama-quantize"):
        write_gguf(tiny_path, out, dtype="q4_k_m")

    def copy(name, config_change=None, tokenizer=None):
        folder = tmp_path / name
        shutil.copytree(tiny_path, folder)
        if config_change:
            config = json.loads((folder / "config.json").read_text())
            (folder / "config.json").write_text(json.dumps({**config, **config_change}))
        if tokenizer is not None:
            for file in ("tokenizer.json", "tokenizer_config.json"):
                (folder / file).unlink()
            tokenizer.save_pretrained(folder)
        return folder

    with pytest.raises(GGUFExportError, match=r"ftlab writes GGUF for LlamaForCausalLM only, this is "
                                              r"MistralForCausalLM; convert it with llama\.cpp's own converter"):
        write_gguf(copy("mistral", {"architectures": ["MistralForCausalLM"]}), out)
    with pytest.raises(GGUFExportError, match=r"rotary embedding is scaled \('linear'"):
        write_gguf(copy("scaled", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}), out)
    with pytest.raises(GGUFExportError, match=r"token ids up to \d+ but the model has only 512 embedding rows"):
        write_gguf(copy("small-vocab", {"vocab_size": 512}), out)
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.train_from_iterator(["good day to you, Ada"] * 50, trainers.UnigramTrainer(vocab_size=30, show_progress=False))
    with pytest.raises(GGUFExportError, match=r"its tokenizer is a Unigram model, Metaspace pre-tokenization, which "
                                              r"ftlab cannot write.*SentencePiece BPE with byte fallback"):
        write_gguf(copy("unigram", tokenizer=PreTrainedTokenizerFast(tokenizer_object=unigram)), out)
    no_fallback = Tokenizer.from_str((spm_llama / "tokenizer.json").read_text())
    no_fallback.model.byte_fallback = False
    with pytest.raises(GGUFExportError, match=r"a BPE model, Metaspace pre-tokenization"):
        write_gguf(copy("no-fallback", tokenizer=PreTrainedTokenizerFast(tokenizer_object=no_fallback)), out)
    assert not (tmp_path / "out").exists()
    # a Modelfile ftlab did not write, where the new one would go: refused before the GGUF file is written
    out.parent.mkdir()
    modelfile_path(out).write_text("FROM llama3\nSYSTEM my own\n")
    with pytest.raises(OutputInUse, match=r"model\.Modelfile already exists"):
        write_gguf(tiny_path, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.Modelfile"]
    write_gguf(tiny_path, out, replace=True)
    assert modelfile_path(out).read_text().startswith("# Ollama Modelfile written by ftlab for model.gguf")
    write_gguf(tiny_path, out, dtype="q8_0")  # its own files: replaced
