"""A merged Llama model written as a GGUF file (f16 or f32), the format llama.cpp, Ollama and LM Studio run.

``write_gguf(merged_folder, "model.gguf")`` uses the ``gguf`` package (llama.cpp's own Python writer, no C++
build): the architecture's numbers from config.json, the tokenizer (vocabulary, merges, special tokens,
chat template) from tokenizer.json, and every tensor under llama.cpp's name for it. Two details matter:
llama.cpp's rotary embedding pairs the query and key dimensions differently from transformers, so q_proj
and k_proj are permuted as llama.cpp's converter permutes them (transformers undoes it when it reads a GGUF);
and 1-D tensors (the norms) stay f32, as llama.cpp expects. Tensors are spooled through a temporary file,
so the writer holds little more than one tensor in memory.

It handles byte-level BPE tokenizers (ftlab's tiny model, SmolLM2, GPT-2 style) only. TinyLlama's is a
SentencePiece tokenizer: convert its merged folder with llama.cpp's ``convert_hf_to_gguf.py`` (``python
convert_hf_to_gguf.py MERGED_FOLDER --outtype f16``, from a clone of the llama.cpp repository).

The file is written under a temporary name and renamed into place, so a failed write (a full disk) never
replaces a good file; an existing ``output`` is written over only if ftlab wrote it (its ``MARK`` key) or
``replace=True`` (``ftlab.files.atomic.claim``). The merged folder is checked first: an adapter folder is
sent to ``merge_adapter``, and cut weight files are refused (``ftlab.files.safetensors``).
"""

from __future__ import annotations

from pathlib import Path

from ftlab.files.atomic import atomic_file
from ftlab.files.records import read_json
from ftlab.files.safetensors import data_start, read_header, read_tensor

SUPPORTED = ("LlamaForCausalLM",)
KIND = "GGUF file"  # what write_gguf writes (ftlab.files.atomic.claim: what it may replace)
MARK = "ftlab.written_by"  # a key every GGUF file ftlab writes carries (llama.cpp ignores keys it does not know)
MERGE_AGAIN = "Merge the adapter again (ftlab.merge_adapter(adapter_folder, merged_folder)), then write the GGUF from it."
CONVERTER = ("python convert_hf_to_gguf.py MERGED_FOLDER --outtype f16 (llama.cpp's converter, from a clone of the "
             "llama.cpp repository)")


class GGUFExportError(ValueError):
    """A model ftlab cannot write as GGUF; the message says how to convert it instead."""


def permute(weight, heads: int):
    """transformers' rotary layout of q_proj / k_proj rows -> llama.cpp's (convert_hf_to_gguf.py's ``permute``)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def written_by_ftlab(path: Path) -> bool:
    """True for a GGUF file ftlab wrote (it carries ``MARK``): one that ``write_gguf`` may write over."""
    try:
        from gguf import GGUFReader

        return MARK in GGUFReader(path).fields
    except Exception:  # noqa: BLE001 - not a GGUF file, or one gguf cannot read: not ours to replace
        return False


def check_merged_folder(folder: Path, output: Path) -> None:
    """The mistakes a learner makes with ``folder`` before anything is written: refused, saying what to give."""
    if not folder.is_dir():
        raise GGUFExportError(f"{folder}: no such folder; give the folder of a merged model "
                              "(ftlab.merge_adapter(adapter_folder, merged_folder) writes one)")
    if not (folder / "config.json").exists():
        if (folder / "adapter_config.json").exists():
            raise GGUFExportError(f"{folder} is a LoRA adapter, not a whole model: a GGUF file needs the adapter "
                                  f"merged into its base first: ftlab.merge_adapter({str(folder)!r}, 'merged'), "
                                  f"then ftlab.write_gguf('merged', {str(output)!r})")
        raise GGUFExportError(f"{folder} holds no config.json, so it is not a saved model. {MERGE_AGAIN}")
    if not any(folder.glob("*.safetensors")):
        raise GGUFExportError(f"{folder} holds no .safetensors weights. {MERGE_AGAIN}")
    if not (folder / "tokenizer.json").exists():
        raise GGUFExportError(f"{folder} holds no tokenizer.json (a merge copies it from the adapter folder). "
                              f"{MERGE_AGAIN}")
    if output.is_dir():
        raise GGUFExportError(f"output={str(output)!r} is a folder: give the GGUF file's own name, e.g. "
                              f"{str(output / (folder.name + '.gguf'))!r}")


def _tokenizer(folder: Path) -> dict:
    data = read_json(folder / "tokenizer.json", MERGE_AGAIN)
    model, pre = data.get("model", {}), data.get("pre_tokenizer") or {}
    byte_level = pre.get("type") == "ByteLevel" or any(
        p.get("type") == "ByteLevel" for p in pre.get("pretokenizers", []))
    if model.get("type") != "BPE" or not byte_level:
        raise GGUFExportError(f"{folder}: its tokenizer is not byte-level BPE (it is {model.get('type')} with "
                              f"{pre.get('type')} pre-tokenization, e.g. TinyLlama's SentencePiece); convert it with "
                              f"{CONVERTER}")
    return data


def write_gguf(folder, output, dtype: str = "f16", replace: bool = False) -> Path:
    """Write the model in ``folder`` (a merged model: safetensors, config.json, tokenizer) as one GGUF file.

    ``output`` appears whole or not at all; an existing file is replaced only if ftlab wrote it, or with
    ``replace=True``. Its folder is made if it does not exist.
    """
    try:
        from gguf import GGUFWriter
    except ImportError as missing:
        raise GGUFExportError("writing GGUF needs llama.cpp's Python package gguf: pip install gguf==0.19.0 "
                              "(the version ftlab is tested with)") from missing

    folder, output = Path(folder), Path(output)
    if dtype not in ("f16", "f32"):
        raise GGUFExportError(f"dtype={dtype!r}: choose 'f16' or 'f32' (quantize afterwards with llama.cpp's "
                              "llama-quantize)")
    check_merged_folder(folder, output)
    config = read_json(folder / "config.json", MERGE_AGAIN)
    if not set(config.get("architectures") or []) & set(SUPPORTED):
        raise GGUFExportError(f"{folder}: ftlab writes GGUF for {SUPPORTED} only, this is "
                              f"{config.get('architectures')}; convert it with {CONVERTER}")
    tokenizer = _tokenizer(folder)
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    layers, head_dim = config["num_hidden_layers"], config["hidden_size"] // config["num_attention_heads"]

    with atomic_file(output, KIND, replace, ours=written_by_ftlab) as temp:
        writer = GGUFWriter(str(temp), "llama", use_temp_file=True)
        try:
            _write(writer, folder, config, tokenizer, dtype, heads, kv_heads, layers, head_dim)
        finally:
            writer.close()
    return output


def _write(writer, folder: Path, config: dict, tokenizer: dict, dtype: str, heads: int, kv_heads: int, layers: int,
           head_dim: int) -> None:
    """The architecture's numbers, the tokenizer and every tensor (q/k permuted for llama.cpp), into ``writer``."""
    import numpy as np
    from gguf import MODEL_ARCH, LlamaFileType, TokenType, get_tensor_name_map


    writer.add_name(folder.name)
    writer.add_string(MARK, f"ftlab write_gguf of {folder.name}")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_rope_freq_base((config.get("rope_parameters") or {}).get("rope_theta") or config.get("rope_theta", 1e4))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(LlamaFileType.MOSTLY_F16 if dtype == "f16" else LlamaFileType.ALL_F32)
    _add_tokenizer(writer, tokenizer, folder, config["vocab_size"], TokenType)

    names = get_tensor_name_map(MODEL_ARCH.LLAMA, layers)
    for path in sorted(folder.glob("*.safetensors")):
        header, start = read_header(path), data_start(path)
        with open(path, "rb") as f:
            for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
                gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise GGUFExportError(f"{path}: no llama.cpp name for the tensor {name!r}; convert with {CONVERTER}")
                weight = read_tensor(f, info, start).float()
                if name.endswith("q_proj.weight"):
                    weight = permute(weight, heads)
                elif name.endswith("k_proj.weight"):
                    weight = permute(weight, kv_heads)
                keep = np.float16 if dtype == "f16" and weight.dim() > 1 else np.float32
                writer.add_tensor(gguf_name, weight.numpy().astype(keep))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)


def _add_tokenizer(writer, tokenizer: dict, folder: Path, vocab_size: int, token_type) -> None:
    """Vocabulary, merges, special tokens and chat template, as llama.cpp's "gpt2" (byte-level BPE) tokenizer."""
    vocab = dict(tokenizer["model"]["vocab"])
    special = {t["content"]: t["id"] for t in tokenizer.get("added_tokens", [])}
    vocab.update(special)
    by_id = {i: token for token, i in vocab.items()}
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(vocab_size)]
    types = [token_type.CONTROL if t in special else token_type.NORMAL if i in by_id else token_type.UNUSED
             for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    settings = read_json(folder / "tokenizer_config.json", MERGE_AGAIN) if (folder / "tokenizer_config.json").exists() else {}
    for role, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                      ("pad", writer.add_pad_token_id), ("unk", writer.add_unk_token_id)):
        token = settings.get(f"{role}_token")
        token = token.get("content") if isinstance(token, dict) else token
        if token in vocab:
            add(vocab[token])
    template = folder / "chat_template.jinja"
    if template.exists():
        writer.add_chat_template(template.read_text())
    elif settings.get("chat_template"):
        writer.add_chat_template(settings["chat_template"])
