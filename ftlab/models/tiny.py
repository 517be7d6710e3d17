"""ftlab's tiny offline model: a 1.6M-parameter Llama that runs a whole lesson on a laptop CPU.

No GPU and no Hub? Then the course runs on this model. It is built like TinyLlama, only smaller:
the same class (``LlamaForCausalLM``), the same chat format, and grouped-query attention (8 query heads
share 2 key/value heads, as TinyLlama's 32 share 4), so counting LoRA's parameters by hand needs the
same care. Its layers are 256 wide, so the course's LoRA (r 16 on the attention projections) is a
genuinely low-rank update that trains a few percent of the weights, as on TinyLlama.

Its byte-level BPE tokenizer is built deterministically from ftlab's synthetic tasks and some plain
English sentences (so it can encode any text, Chinese included). The model is briefly pre-trained
(``PRETRAIN``: 800 steps from seed 0) on ftlab's instruction *skills* and on those sentences, which use the
words the course's new tasks answer with ("good", "day", "to", "you", ...). Fine-tuning it on a *new* task
then shows real learning, never a faked number.

ftlab ships the pre-trained model (``SHIPPED``, 6.3 MB: the weights in fp32, the tokenizer, and ``pretrain.json``
with the loss of every pre-training step), so a first ``ftlab demo`` copies it into the cache in a fraction of a
second instead of pre-training for minutes (benchmarks/bench_tiny.py times both). ``python -m ftlab.models
build-tiny`` rebuilds it from the recipe (the maintainers' command; tests/test_tiny_shipped.py checks that a
rebuild reproduces it), and ``build("my-tiny")`` pre-trains one for a learner who wants to watch it happen,
printing every 50th step.
"""

from __future__ import annotations

import json
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

from ftlab.data.course_sets.synthetic import NAMES, THINGS, instructions
from ftlab.files.atomic import atomic_folder
from ftlab.files.cache import cache_root, save_atomically
from ftlab.machine import use_cpu_threads
from ftlab.templates.template import CHAT_TEMPLATE, ROLE_TAGS

TINY_VERSION = "v2"  # bump when the recipe below changes, so old caches are not reused
VOCAB_SIZE = 1024
ARCHITECTURE = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
                    num_key_value_heads=2, max_position_embeddings=256)
PRETRAIN = dict(rows=6000, sentences=2000, steps=800, batch_size=32, learning_rate=1e-3, seed=0)
SPECIAL = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
SHIPPED = Path(__file__).with_name("tiny_pretrained")  # the pre-trained model in the package (package-data)
RECORD = "pretrain.json"  # beside the weights: the recipe, every step's loss, the time, what built it


def cache_dir() -> Path:
    """Where the built tiny model lives: ``tiny-<version>`` in ftlab's cache (``$FTLAB_CACHE`` or ~/.cache/ftlab)."""
    return cache_root() / f"tiny-{TINY_VERSION}"


TIMES = ("morning", "day", "evening", "night")
SENTENCES = (
    "Good {time}, {name}.", "{name} said good {time} to {other}.", "{name} wished {other} a good {time}.",
    "This {thing} is for you, {name}.", "Thank you, {name}, and good {time} to all of you.",
    "It was a good {time}, and {name} was happy.", "{name} gave {other} {a_thing} and said thank you.",
    "{name} greeted {other} politely.", "To you, {name}, I give {a_thing}.", "The {thing} is {colour}, said {name}.",
    "{name} has {n} {thing}s and {other} has {m}.", "{name} and {other} count {n} and {m}.",
    "Welcome, {name}! It is good to see you.", "{name} was polite to {other} all day.",
    # names said twice: answering to a name given in the question is copying, which these teach
    "{name} met {other}. Good {time}, {other}, said {name}.", "Where is {name}? {name} is with {other}.",
    "{other} asked for {name}, and {name} came.", "Hello {name}. Thank you, {name}.",
)


def sentences(n: int, seed: int = 0) -> list[str]:
    """Plain English sentences with the words the course's tasks answer with (names, things, greetings)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        colour, thing = rng.choice(list(THINGS.items()))
        name, other = rng.sample(NAMES, 2)
        out.append(rng.choice(SENTENCES).format(
            time=rng.choice(TIMES), name=name, other=other, thing=thing, colour=colour,
            a_thing=("an " if thing[0] in "aeiou" else "a ") + thing, n=rng.randint(2, 49), m=rng.randint(2, 49)))
    return out


def _corpus(rows: list[dict], prose: list[str]) -> list[str]:
    texts = [f"{m['content']}" for row in rows for m in row["messages"]] + prose
    # the new tasks' words too, so fine-tuning on them never meets an unknown word piece
    texts += [" ".join(r["messages"][0]["content"] + " " + r["messages"][1]["content"]
                       for r in instructions(200, ["greet_politely", "double_and_name"], seed=99))]
    texts += [" ".join(NAMES), " ".join(THINGS), " ".join(THINGS.values())]
    return texts


def build_tokenizer(rows: list[dict], prose: list[str] = ()):
    """A byte-level BPE tokenizer with distinct pad and eos, and ftlab's chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=SPECIAL["unk_token"]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, show_progress=False,
                                  special_tokens=[*SPECIAL.values(), *ROLE_TAGS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_corpus(rows, list(prose)), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, **SPECIAL)
    tokenizer.add_special_tokens({"extra_special_tokens": list(ROLE_TAGS)})  # transformers 5's name for them
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "right"
    return tokenizer


def build_model(tokenizer, seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` of ftlab's tiny size."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False, **ARCHITECTURE)
    return LlamaForCausalLM(config)


def pretrain(model, tokenizer, rows: list[dict], steps: int, batch_size: int, learning_rate: float,
             seed: int = 0, progress: bool = True, prose: list[str] = (), stop_after: int | None = None) -> list[float]:
    """A plain PyTorch loop over whole chats and sentences (loss on every token): it makes the tiny model a base.

    ``stop_after``: only the first steps of the ``steps``-step run (its schedule unchanged): a check that a rebuild
    starts as the recorded one did takes seconds.
    """
    import torch

    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    texts += [tokenizer.bos_token + sentence + tokenizer.eos_token for sentence in prose]
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps,
                                                   pct_start=0.1)
    model.train()
    losses, started = [], time.perf_counter()
    for step in range(1, (stop_after or steps) + 1):
        batch = tokenizer(rng.sample(texts, batch_size), add_special_tokens=False, padding=True,
                          return_tensors="pt")
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if progress and (step % 50 == 0 or step == steps):
            print(f"  pre-training the tiny model: step {step}/{steps}, loss {loss.item():.2f}, "
                  f"{time.perf_counter() - started:.0f}s", flush=True)
    model.eval()
    return losses


def build(path: Path | None = None, progress: bool = True) -> Path:
    """Build, pre-train and save the tiny model (atomically: a crash never leaves half a model); prints its steps.

    ``ftlab.tiny_model()`` copies the pre-trained model ftlab ships instead; call this to watch pre-training
    (``build("my-tiny")``, then ``ftlab.tiny_model(path="my-tiny")``): a minute or a few on one CPU thread
    (``pretrain.json`` in ``SHIPPED`` records how long the shipped one took, and on what).
    """
    import tokenizers
    import torch
    import transformers

    path = Path(path or cache_dir())
    started = time.perf_counter()
    rows = instructions(PRETRAIN["rows"], "skills", seed=PRETRAIN["seed"])
    prose = sentences(PRETRAIN["sentences"], seed=PRETRAIN["seed"])
    tokenizer = build_tokenizer(rows, prose)
    model = build_model(tokenizer, seed=PRETRAIN["seed"])
    if progress:
        print(f"Building ftlab's tiny model ({model.num_parameters() / 1e6:.2f}M parameters); "
              f"it is saved in {path}.", flush=True)
    losses = pretrain(model, tokenizer, rows, steps=PRETRAIN["steps"], batch_size=PRETRAIN["batch_size"],
                      learning_rate=PRETRAIN["learning_rate"], seed=PRETRAIN["seed"], progress=progress,
                      prose=prose)
    seconds = time.perf_counter() - started
    if progress:
        print(f"  built in {seconds:.0f} s", flush=True)
    record = {"version": TINY_VERSION, "architecture": ARCHITECTURE, "pretrain": PRETRAIN, "seconds": round(seconds, 1),
              "torch_threads": torch.get_num_threads(), "losses": [round(loss, 6) for loss in losses],
              "built_with": {"python": platform.python_version(), "torch": torch.__version__,
                             "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                             "machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}}
    return save_atomically(path, model, tokenizer, {RECORD: json.dumps(record, indent=1) + "\n"})


def shipped() -> bool:
    """Whether this installation holds the pre-trained tiny model whole (weights, tokenizer and record)."""
    return all((SHIPPED / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json", RECORD))


def install(path: Path | None = None, progress: bool = True) -> Path:
    """The tiny model in ``path`` (default: the cache): the pre-trained copy ftlab ships, copied (milliseconds);
    built and pre-trained here only if this installation lacks it."""
    path = Path(path or cache_dir())
    if not shipped():
        return build(path, progress=progress)
    copy_model(SHIPPED, path)
    return path


def copy_model(source: Path, target: Path, replace: bool = False) -> None:
    """Every file of the saved model ``source`` into ``target``, whole or not at all."""
    with atomic_folder(target, replace=replace) as staging:
        for file in sorted(Path(source).iterdir()):
            if file.is_file():
                shutil.copy2(file, staging / file.name)


def rebuild(target: Path = SHIPPED) -> Path:
    """Pre-train the tiny model from its recipe into ``target`` (default ``SHIPPED``, the copy ftlab ships), on one
    thread as at a learner's first use; ``python -m ftlab.models build-tiny`` runs it (then commit the folder)."""
    use_cpu_threads()
    with tempfile.TemporaryDirectory() as folder:
        copy_model(build(Path(folder) / "tiny"), Path(target), replace=True)
    return Path(target)
