"""A merged Llama model written as a GGUF file, the format llama.cpp, Ollama and LM Studio run, with its Modelfile.

``write_gguf(merged_folder, "model-q4_0.gguf", dtype="q4_0")`` uses the ``gguf`` package (llama.cpp's own Python
writer and its numpy quantizers, no C++ build): the architecture's numbers from config.json, the tokenizer
(``ftlab.export.gguf_vocab``: byte-level BPE as in ftlab's tiny model and SmolLM2, or SentencePiece BPE as in
TinyLlama and Llama 2), the chat template and its end-of-turn token, and every tensor under llama.cpp's name
for it. Beside it goes an Ollama Modelfile (``model-q4_0.Modelfile``: ``ftlab.export.ollama``).

``dtype`` takes llama.cpp's names: ``f32``, ``f16``, ``q8_0`` (8 bits a weight, about half of f16, close to it
in quality) and ``q4_0`` (4.5 bits, about a quarter; the output layer stays q8_0 there, as llama.cpp's own
quantizer keeps it finer). ``q4_k_m`` needs a Q4_K quantizer the ``gguf`` package does not have (0.19.0):
quantize an f16 file with llama.cpp's llama-quantize for it. The norms (1-D tensors) stay f32 in every file, as
llama.cpp expects, and a matrix whose rows do not divide into 32-number blocks stays f16, as llama.cpp's
converter does.

Two details matter: llama.cpp's rotary embedding pairs the query and key dimensions differently from
transformers, so q_proj and k_proj are permuted as llama.cpp's converter permutes them (transformers undoes it
when it reads a GGUF); and tensors are spooled through a temporary file, so the writer holds little more than
one tensor in memory.

The file is written under a temporary name and renamed into place, so a failed write (a full disk) never
replaces a good file; an existing ``output`` (or Modelfile) is written over only if ftlab wrote it (its
``MARK`` key, the Modelfile's first line) or ``replace=True`` (``ftlab.files.atomic.claim``), and both are
checked before anything is written. The merged folder is checked first: an adapter folder is sent to
``merge_adapter``, and cut weight files are refused (``ftlab.files.safetensors``).
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from ftlab.export import ollama
from ftlab.export.gguf_vocab import CONVERTER, Vocabulary, VocabularyError, read_vocabulary
from ftlab.files.atomic import atomic_file, atomic_write_text, claim
from ftlab.files.records import read_json
from ftlab.files.safetensors import data_start, read_header, read_tensor

SUPPORTED = ("LlamaForCausalLM",)
KIND = "GGUF file"  # what write_gguf writes (ftlab.files.atomic.claim: what it may replace)
MARK = "ftlab.written_by"  # a key every GGUF file ftlab writes carries (llama.cpp ignores keys it does not know)
MERGE_AGAIN = "Merge the adapter again (ftlab.merge_adapter(adapter_folder, merged_folder)), then write the GGUF from it."
# llama.cpp's names -> (the matrices' tensor type, the output layer's, the file type), as gguf names them
DTYPES = {"f32": ("F32", "F32", "ALL_F32"), "f16": ("F16", "F16", "MOSTLY_F16"),
          "q8_0": ("Q8_0", "Q8_0", "MOSTLY_Q8_0"), "q4_0": ("Q4_0", "Q8_0", "MOSTLY_Q4_0"),
          "q4_k_m": ("Q4_K", "Q6_K", "MOSTLY_Q4_K_M")}
# transformers' {% generation %} markers (they mark the answers for training): llama.cpp's template engine has no such tag
GENERATION_MARKERS = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


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


def modelfile_by_ftlab(path: Path) -> bool:
    """True for an Ollama Modelfile ``write_gguf`` wrote (its first line says so)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().startswith(ollama.MARK)
    except (OSError, UnicodeDecodeError):
        return False


def modelfile_path(output) -> Path:
    """Where the Modelfile of the GGUF file ``output`` goes: beside it, ``model-q4_0.gguf`` -> ``model-q4_0.Modelfile``."""
    output = Path(output)
    return output.with_name(output.stem + ".Modelfile")


def quantizer_missing(dtype: str) -> str | None:
    """Why the installed ``gguf`` package cannot write ``dtype`` (None when it can): a probe of its quantizers."""
    import numpy as np
    from gguf import GGMLQuantizationType, quants

    for name in dict.fromkeys(DTYPES[dtype][:2]):
        try:
            quants.quantize(np.zeros((1, 256), dtype=np.float32), GGMLQuantizationType[name])
        except NotImplementedError:
            return f"the installed gguf package ({version('gguf')}) has no {name} quantizer"
    return None


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


def check_architecture(folder: Path, config: dict) -> None:
    """A model llama.cpp's "llama" architecture cannot hold as ftlab writes it: refused, naming what and why."""
    if not set(config.get("architectures") or []) & set(SUPPORTED):
        raise GGUFExportError(f"{folder}: ftlab writes GGUF for {', '.join(SUPPORTED)} only, this is "
                              f"{', '.join(config.get('architectures') or ['unnamed'])}; convert it with {CONVERTER}")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", "default") != "default":
        raise GGUFExportError(f"{folder}: its rotary embedding is scaled ({rope.get('rope_type')!r} in config.json), "
                              f"which ftlab does not write; convert it with {CONVERTER}")
    for flag in ("attention_bias", "mlp_bias"):
        if config.get(flag):
            raise GGUFExportError(f"{folder}: config.json has {flag}=true (biases on the Llama layers), which ftlab "
                                  f"does not write; convert it with {CONVERTER}")


def write_gguf(folder, output, dtype: str = "f16", replace: bool = False, modelfile: bool = True) -> Path:
    """Write the model in ``folder`` (a merged model: safetensors, config.json, tokenizer) as one GGUF file.

    ``dtype``: ``"f32"``, ``"f16"``, ``"q8_0"`` or ``"q4_0"`` (llama.cpp's names; see the module's docstring).
    With ``modelfile`` (the default) an Ollama Modelfile goes beside it (``modelfile_path(output)``).
    ``output`` appears whole or not at all; an existing file is replaced only if ftlab wrote it, or with
    ``replace=True``. Its folder is made if it does not exist.
    """
    try:
        from gguf import GGUFWriter
    except ImportError as missing:
        raise GGUFExportError("writing GGUF needs llama.cpp's Python package gguf: pip install gguf==0.19.0 "
                              "(the version ftlab is tested with)") from missing

    folder, output = Path(folder), Path(output)
    if dtype not in DTYPES:
        raise GGUFExportError(f"dtype={dtype!r}: choose one of {', '.join(repr(d) for d in DTYPES if d != 'q4_k_m')} "
                              "(llama.cpp's names: f16 is the full model, q8_0 about half its size, q4_0 a quarter)")
    if (why := quantizer_missing(dtype)) is not None:
        raise GGUFExportError(f"dtype={dtype!r}: {why}. Write 'q4_0' or 'q8_0' instead, or write 'f16' and "
                              f"quantize it with llama.cpp's llama-quantize (llama-quantize model-f16.gguf "
                              f"model-{dtype}.gguf {dtype.upper()})")
    check_merged_folder(folder, output)
    config = read_json(folder / "config.json", MERGE_AGAIN)
    check_architecture(folder, config)
    try:
        vocabulary = read_vocabulary(folder, config["vocab_size"])
    except VocabularyError as error:
        raise GGUFExportError(str(error)) from None
    if modelfile:  # both outputs are claimed before either is written
        claim(modelfile_path(output), ollama.KIND, replace, ours=modelfile_by_ftlab)

    with atomic_file(output, KIND, replace, ours=written_by_ftlab) as temp:
        writer = GGUFWriter(str(temp), "llama", use_temp_file=True)
        try:
            _write(writer, folder, config, vocabulary, dtype)
        finally:
            writer.close()
    if modelfile:
        _write_modelfile(folder, output, vocabulary)
    return output


def _write(writer, folder: Path, config: dict, vocabulary: Vocabulary, dtype: str) -> None:
    """The architecture's numbers, the tokenizer and every tensor (q/k permuted for llama.cpp), into ``writer``."""
    from gguf import (
        GGML_QUANT_SIZES,
        MODEL_ARCH,
        GGMLQuantizationType,
        LlamaFileType,
        get_tensor_name_map,
        quants,
    )

    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    layers = config["num_hidden_layers"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    matrix_type, output_type, file_type = DTYPES[dtype]
    writer.add_name(folder.name)
    writer.add_string(MARK, f"ftlab write_gguf of {folder.name}")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    if head_dim != config["hidden_size"] // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_rope_freq_base((config.get("rope_parameters") or {}).get("rope_theta") or config.get("rope_theta", 1e4))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(LlamaFileType[file_type])
    _add_tokenizer(writer, vocabulary)

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
                kind = GGMLQuantizationType[output_type if gguf_name == "output.weight" else matrix_type]
                if weight.dim() < 2:
                    kind = GGMLQuantizationType.F32  # the norms: llama.cpp computes them in f32
                elif weight.shape[-1] % GGML_QUANT_SIZES[kind][0]:
                    kind = GGMLQuantizationType.F16  # rows that do not divide into blocks (llama.cpp's fallback)
                writer.add_tensor(gguf_name, quants.quantize(weight.numpy(), kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)


def _add_tokenizer(writer, vocabulary: Vocabulary) -> None:
    """Vocabulary, merges or scores, special tokens and the chat template, as llama.cpp reads them."""
    writer.add_tokenizer_model(vocabulary.model)
    if vocabulary.pre:
        writer.add_tokenizer_pre(vocabulary.pre)
    writer.add_token_list(vocabulary.tokens)
    writer.add_token_types(vocabulary.types)
    if vocabulary.scores is not None:
        writer.add_token_scores(vocabulary.scores)
    if vocabulary.merges:  # llama.cpp merges a "llama" vocabulary by score; transformers reads these when given
        writer.add_token_merges(vocabulary.merges)
    if vocabulary.add_space_prefix is not None:
        writer.add_add_space_prefix(vocabulary.add_space_prefix)
    writer.add_add_bos_token(vocabulary.add_bos)
    writer.add_add_eos_token(False)
    for role, token_id in vocabulary.special.items():
        getattr(writer, f"add_{role}_token_id")(token_id)
    if vocabulary.chat_template:
        writer.add_chat_template(GENERATION_MARKERS.sub("", vocabulary.chat_template))


def _write_modelfile(folder: Path, output: Path, vocabulary: Vocabulary) -> None:
    def render(messages, add_generation_prompt):
        return vocabulary.tokenizer.apply_chat_template(messages, chat_template=vocabulary.chat_template, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)

    atomic_write_text(modelfile_path(output), ollama.modelfile(output.name, render, vocabulary.stops, vocabulary.template_bos,
                                                        folder.name))
