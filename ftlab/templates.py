"""The chat template ftlab trains and generates with, marked for assistant-only loss.

It writes exactly what TinyLlama-1.1B-Chat was trained on (``<|user|>\\n...</s>\\n<|assistant|>\\n...``)
and adds two things the original lacks: ``{% generation %}`` markers around each assistant answer,
so TRL can put the loss on the answers only (``assistant_only_loss=True``), and a BOS token up front,
so the prompt tokenised for generation is exactly the training text up to where the answer begins.
ftlab's tiny model uses the same template, so everything a learner sees on the CPU carries over.
"""

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|assistant|>\\n' -}}"
    "{%- generation -%}{{- message['content'] + eos_token -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)
ROLE_TAGS = ("<|system|>", "<|user|>", "<|assistant|>")
