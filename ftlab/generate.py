"""Asking a model questions the way it was trained: same chat template, batched, stopping at eos.

The prompt is built by the tokenizer's chat template with ``add_generation_prompt=True``: exactly the
training text up to where the answer begins (a mismatch here cost one seed learner half its
accuracy). Batches are padded on the left, so every answer starts right after its own prompt.
Greedy decoding is the default for evaluation; ``sample=True`` gives chat-style variety, and a
repetition penalty keeps a small model from looping.
"""

from __future__ import annotations


def _as_messages(prompt) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def answers(model, tokenizer, prompts: list, max_new_tokens: int = 64, sample: bool = False,
            temperature: float = 0.7, top_p: float = 0.9, repetition_penalty: float = 1.1,
            no_repeat_ngram_size: int = 0, batch_size: int = 16) -> list[str]:
    """The model's answers to ``prompts`` (strings, or lists of chat turns), in order."""
    import torch

    device = next(model.parameters()).device
    outputs: list[str] = []
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            chats = [_as_messages(p) for p in prompts[start:start + batch_size]]
            texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats]
            # the template already wrote the BOS token: adding special tokens again would double it
            batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(device)
            options = dict(max_new_tokens=max_new_tokens, do_sample=sample, repetition_penalty=repetition_penalty,
                           eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            if sample:
                options.update(temperature=temperature, top_p=top_p)
            if no_repeat_ngram_size:
                options["no_repeat_ngram_size"] = no_repeat_ngram_size
            with torch.no_grad():
                generated = model.generate(**batch, **options)
            new_tokens = generated[:, batch["input_ids"].shape[1]:]
            outputs += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return outputs


def chat(model, tokenizer, prompt, max_new_tokens: int = 64, sample: bool = False) -> str:
    """One answer to one prompt."""
    return answers(model, tokenizer, [prompt], max_new_tokens=max_new_tokens, sample=sample)[0]
