"""4-bit weights as bitsandbytes keeps them: their size, and the guard that keeps QLoRA's gradients right on a CPU.

QLoRA stores each frozen weight matrix in NF4: blocks of ``BLOCK_SIZE`` numbers, each scaled by its
absmax and replaced by 4-bit indices (``ftlab.course.by_hand.nf4`` writes it out). ``nf4_bytes`` is what
one matrix costs in memory, constants included; the planner (``ftlab.memory``) adds it up.

``keep_4bit_trainable`` fixes a defect of bitsandbytes 0.50 on CPUs with AVX512-BF16: the first
forward pass in eval mode without gradients (an evaluation, a generation) repacks every ``Linear4bit``
weight into an inference-only layout whose matmul has no backward, after which LoRA gradients are
wrong (missing or thousands of times too small) although the loss still falls a little.
"""

from __future__ import annotations

import math

BLOCK_SIZE = 64


def keep_4bit_trainable(model) -> int:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference; undo a repack already done.

    bitsandbytes 0.50 converts a ``Linear4bit`` weight to an AVX512-BF16 inference layout the first
    time it runs in eval mode without gradients (``Linear4bit.support_avx512bf16_for_cpu``). That
    layout's matmul has no backward, so after ``trainer.evaluate()`` or a generation the gradient no
    longer flows through the frozen layers to earlier LoRA adapters. Call this before any forward
    pass of a model that will train (ftlab does, when it loads or trains a 4-bit model). Returns how
    many layers had already been repacked (their constants went through bf16, so a repacked-then-
    restored weight can differ from the loaded one in the last bits of its absmax).
    """
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
    from bitsandbytes.nn import Linear4bit

    restored = 0
    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.support_avx512bf16_for_cpu = False
            state = getattr(module.weight, "quant_state", None)
            if state is not None and getattr(state, "packing_format_for_cpu", False):
                module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                    module.weight.data, state)
                restored += 1
    return restored


def is_4bit(model) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False)) or any(
        type(m).__name__ == "Linear4bit" for m in model.modules())


def nf4_bytes(n_weights: int, double_quant: bool = True, block_size: int = BLOCK_SIZE) -> int:
    """Bytes bitsandbytes keeps for one ``n_weights``-number matrix in NF4: 4 bits each, plus constants.

    Without double quantization each block of 64 keeps an fp32 absmax (0.5 bit per weight). With it,
    the absmaxes are quantized to 8 bits in blocks of 256 that each keep an fp32 constant, plus one
    fp32 offset and a 256-entry fp32 code table per matrix: ~0.127 bit per weight instead of 0.5.
    Every matrix also keeps its 16-entry fp32 NF4 table.
    """
    blocks = math.ceil(n_weights / block_size)
    constants = blocks + 4 * math.ceil(blocks / 256) + 4 + 256 * 4 if double_quant else 4 * blocks
    return math.ceil(n_weights / 2) + constants + 16 * 4
