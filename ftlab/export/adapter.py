"""Taking a trained adapter out of the notebook: save it, reload it elsewhere, merge it, share it.

* ``save_adapter(model, tokenizer, folder, produced_by=round)``: the LoRA weights, the tokenizer with its
  chat template (a model answers well only in the format it trained in), and ``ftlab_export.json``:
  the base model, how it was loaded (4-bit or not), the round and knobs that produced the adapter.
* ``load_adapter(folder)``: in a fresh runtime, the base loaded as it was in training and the adapter
  put back on it with ``PeftModel.from_pretrained``: the same logits as before saving.
* ``merge_adapter(folder, output)``: the adapter folded into an fp16 base, streamed (``ftlab.export.merge``), with
  the tokenizer beside it: a plain model that transformers or vLLM load; ``ftlab.write_gguf`` turns it into a
  GGUF file for llama.cpp / Ollama (``ftlab.export.gguf``).
* ``push_to_hub(folder, repo_id, token=...)``: only when a token is given; the token goes to the Hub
  client and nowhere else (no file, no record).
* ``compare_logits(a, b, tokenizer)``: how far two models' next-token scores are apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from ftlab.data.formats import prompt_turns
from ftlab.export.merge import (  # noqa: F401 - TOKENIZER_FILES: what a merged folder gets
    SAVE_AGAIN,
    TOKENIZER_FILES,
    ExportError,
    adapter_weights,
    merge_files,
)
from ftlab.files.atomic import atomic_folder, atomic_write_json
from ftlab.files.records import read_json
from ftlab.files.safetensors import dtype_code
from ftlab.machine import VERSION
from ftlab.models import tiny
from ftlab.models.loading import load_model, resolve

RECORD = "ftlab_export.json"
ADAPTER = "adapter"  # the kind of output save_adapter writes (ftlab.files.atomic.claim: what it may replace)


def save_adapter(model, tokenizer, folder, produced_by=None, replace: bool = False) -> Path:
    """Save the LoRA adapter of ``model`` (a PeftModel), ``tokenizer`` and what produced them into ``folder``.

    ``produced_by``: a lab ``Round``, a ``RoundResult`` or a ``RoundConfig`` (its knobs are recorded).
    ``folder`` appears whole or not at all; an existing one is replaced only if it is an adapter ftlab saved
    there and holds nothing else, or ``replace=True`` (``ftlab.files.atomic.claim``).
    """
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        raise ExportError(f"save_adapter needs the model with its LoRA adapters (a peft.PeftModel, e.g. a round's "
                          f"result.model), not a {type(model).__name__}")
    folder = Path(folder)
    record = {"ftlab_export": 1, "saved": time.strftime("%Y-%m-%dT%H:%M:%S"), "base_model": base_name(model),
              "base_quantization": quantization_of(model), "produced_by": _provenance(produced_by),
              "libraries": _versions()}
    with atomic_folder(folder, replace, kind=ADAPTER) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        atomic_write_json(staging / RECORD, record)
    return folder


def base_name(model) -> str:
    """The base model's name as a fresh runtime can load it: ``"tiny"`` for ftlab's tiny model, else its id/path."""
    name = str(next(iter(model.peft_config.values())).base_model_name_or_path or "")
    return "tiny" if name and Path(name).resolve() == tiny.cache_dir().resolve() else name


def quantization_of(model) -> dict | None:
    """How bitsandbytes quantized the base (what a merge needs to reproduce its rounding), or None."""
    layer = next((m for m in model.modules() if type(m).__name__ == "Linear4bit"), None)
    if layer is None:
        return None
    config = getattr(model.config, "quantization_config", None) or {}
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    state = layer.weight.quant_state
    return {"bits": 4, "quant_type": state.quant_type, "double_quant": bool(state.nested), "blocksize": state.blocksize,
            "load_dtype": dtype_code(state.dtype),
            "skip": list(get("llm_int8_skip_modules") or [])}


def _provenance(produced_by) -> dict | None:
    if produced_by is None:
        return None
    if hasattr(produced_by, "record"):  # a lab Round
        record = produced_by.record
        return {"lab": str(produced_by.path.parent), "round": record["id"], "name": record.get("name"),
                "config": record.get("config")}
    config = getattr(produced_by, "config", produced_by)  # a RoundResult, or the RoundConfig itself
    if hasattr(config, "to_dict"):
        return {"config": config.to_dict(), "output_dir": getattr(produced_by, "output_dir", None)}
    raise ExportError(f"produced_by={produced_by!r}: give the lab Round, the RoundResult or the RoundConfig")


def _versions() -> dict:
    return {"ftlab": VERSION, **{name: version(name) for name in ("torch", "transformers", "peft")}}


def read_record(folder) -> dict:
    """``ftlab_export.json`` of an adapter folder, or what PEFT's own adapter_config.json says.

    Checked before anything loads: both records parse, and the LoRA weights file is there and whole
    (``ftlab.files.faults``: the file named, and what to do).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"{folder}: no such folder; give the folder an adapter was saved in "
                          "(ftlab.save_adapter(model, tokenizer, folder), or a lab round's adapter folder)")
    if not (folder / "adapter_config.json").exists():
        raise ExportError(f"{folder} holds no adapter_config.json, so it is not a saved adapter (save one with "
                          "ftlab.export.save_adapter(model, tokenizer, folder))")
    config = read_json(folder / "adapter_config.json", SAVE_AGAIN)
    adapter_weights(folder)
    if (folder / RECORD).exists():
        record = read_json(folder / RECORD, f"{SAVE_AGAIN} Or delete {RECORD} and give the base model yourself "
                                            "(merge_adapter(..., base=...)); it also said whether the base was 4-bit.")
        if not isinstance(record.get("base_model"), str):
            raise ExportError(f"{folder / RECORD} names no base model (base_model: {record.get('base_model')!r}). "
                              f"{SAVE_AGAIN}")
        return record
    return {"base_model": config.get("base_model_name_or_path"), "base_quantization": None}


def load_adapter(folder, quantization: str | None = "as saved"):
    """The base model loaded as in training, with the saved adapter on it, and the saved tokenizer.

    ``quantization``: "as saved" (4-bit if the adapter trained on a 4-bit base), None or "4bit".
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    record = read_record(folder)
    if quantization == "as saved":
        quantization = "4bit" if record.get("base_quantization") else None
    name = record["base_model"]
    base, _ = load_model(name, quantization)  # "tiny" included
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = PeftModel.from_pretrained(base, folder)
    model.eval()
    return model, tokenizer


def base_folder(name: str) -> Path:
    """A local folder with the base model's safetensors files: ftlab's tiny model, a folder, or a Hub download."""
    source, _ = resolve(name)  # ftlab's tiny model copied into the cache once, a GGUF dequantized once
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source, allow_patterns=["*.safetensors", "*.json"]))


def merge_adapter(folder, output, dtype: str = "fp16", base: str | None = None, shard_bytes: int = 2 * 10**9,
                  progress: bool = True, replace: bool = False):
    """Merge the adapter saved in ``folder`` into its base, streamed, with the adapter's tokenizer in the same folder.

    The base is the one recorded at saving (or ``base``); a 4-bit base is dequantized first, exactly
    as bitsandbytes rounded it in training. Shards hold at most ``shard_bytes`` each (a loader reads one at
    a time). ``output`` appears complete (weights, config, tokenizer) or not at all; a failed merge leaves an
    existing ``output`` as it was. An existing ``output`` is written over only if it is an earlier merge of
    ftlab's holding nothing else, or with ``replace=True``: a folder of your own files is refused, naming them. Returns ``ftlab.export.merge.MergeReport``: what was merged, the peak memory
    planned and measured.
    """
    record = read_record(folder)
    if not (base or record.get("base_model")):
        raise ExportError(f"{folder}: its records name no base model; give it with base= (a Hub id, a folder or 'tiny')")
    return merge_files(folder, base_folder(base or record["base_model"]), output, dtype=dtype,
                       quantization=record.get("base_quantization"), shard_bytes=shard_bytes, progress=progress,
                       replace=replace)


def push_to_hub(folder, repo_id: str, token: str | None = None, private: bool = True):
    """Upload ``folder`` (an adapter or a merged model) to the Hub as ``repo_id``, only when ``token`` is given.

    The token is handed to the Hub client and nowhere else. Without one, nothing is sent and the
    message says how to give one (on Colab: ``from google.colab import userdata; userdata.get('HF_TOKEN')``).
    """
    folder = Path(folder)
    if not token:
        print(f"Not pushing {folder}: no token given. Pass token=... (a write token from "
              "huggingface.co/settings/tokens; on Colab keep it in the Secrets panel and read it with "
              "google.colab.userdata.get('HF_TOKEN')). ftlab never reads or stores it elsewhere.")
        return None
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ExportError(f"repo_id={repo_id!r}: give it as 'your-user-name/model-name'")
    leaked = [p.name for p in folder.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    if leaked:
        raise ExportError(f"not pushing: the token appears in {leaked} in {folder}; remove it from those files")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload with ftlab")
    url = str(getattr(commit, "commit_url", commit))
    if (folder / RECORD).exists():  # where it went, never with what
        record = read_json(folder / RECORD, SAVE_AGAIN)
        record.setdefault("pushed", []).append({"repo": repo_id, "private": private, "commit": url})
        atomic_write_json(folder / RECORD, record)
    print(f"Pushed {folder} to https://huggingface.co/{repo_id} ({'private' if private else 'public'}).")
    return url


@dataclass(frozen=True)
class LogitGap:
    """How far two models' next-token scores are apart on the same inputs."""

    max_abs: float  # the largest |difference| of any logit at any position
    mean_abs: float
    logit_scale: float  # the largest |logit| of the reference, to read max_abs against
    same_top1: float  # share of positions where both models rank the same token first

    def __str__(self) -> str:
        return (f"largest logit difference {self.max_abs:.2e} (mean {self.mean_abs:.2e}; logits reach "
                f"{self.logit_scale:.1f}); same top token at {self.same_top1:.0%} of positions")


PROMPTS = ("Greet Ada politely.", "Double 7 and name a red thing.", "What is the capital of France?")


def compare_logits(reference, other, tokenizer, prompts=PROMPTS) -> LogitGap:
    """Run both models on the same chat prompts (fp32 on the CPU or as loaded) and compare their logits."""
    import torch

    texts = [tokenizer.apply_chat_template(prompt_turns(p), tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        a = reference(**batch.to(reference.device)).logits.float().cpu()
        b = other(**batch.to(other.device)).logits.float().cpu()
    keep = batch["attention_mask"].cpu().bool()
    diff = (a - b).abs()[keep]
    return LogitGap(diff.max().item(), diff.mean().item(), a[keep].abs().max().item(),
                    (a.argmax(-1) == b.argmax(-1))[keep].float().mean().item())
