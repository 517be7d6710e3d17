"""4-bit NF4 written out by hand, and the guard that keeps QLoRA's gradients right on a CPU.

QLoRA stores each frozen weight matrix in NF4: the matrix is cut into blocks of 64 numbers, each block
is divided by its largest absolute value (its *absmax*, kept as a quantisation constant), and every
scaled number in [-1, 1] is replaced by the index (4 bits) of the nearest of 16 fixed levels. The
levels are quantiles of a standard normal distribution, because trained weights are roughly normal:
each level then covers about the same share of the weights. ``nf4_levels`` computes them,
``quantize_nf4`` / ``dequantize_nf4`` do the rest in a few lines of torch, and ``compare_with_bitsandbytes``
checks the hand version against bitsandbytes' own result and measures the error both introduce.

``keep_4bit_trainable`` fixes a defect of bitsandbytes 0.50 on CPUs with AVX512-BF16: the first
forward pass in eval mode without gradients (an evaluation, a generation) repacks every ``Linear4bit``
weight into an inference-only layout whose matmul has no backward, after which LoRA gradients are
wrong (missing or thousands of times too small) although the loss still falls a little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NF4_OFFSET = 0.9677083  # QLoRA's outermost quantile: the largest level sits at ~1.85 standard deviations
BLOCK_SIZE = 64


def nf4_levels():
    """The 16 NF4 levels: 8 positive and 7 negative normal quantiles plus an exact zero, scaled to [-1, 1]."""
    import torch

    def quantiles(n):  # n equally spaced probabilities from NF4_OFFSET down to (not including) 0.5
        return torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, n + 1, dtype=torch.float64)[:-1])

    levels = torch.cat([quantiles(8), torch.zeros(1, dtype=torch.float64), -quantiles(7)]).sort().values
    return (levels / levels.max()).float()


def quantize_nf4(weight, block_size: int = BLOCK_SIZE):
    """(codes, absmax): one level index (0..15) per number, one absmax per block of ``block_size``."""
    import torch

    flat = weight.detach().float().reshape(-1)
    if flat.numel() % block_size:
        raise ValueError(f"{flat.numel()} numbers do not split into blocks of {block_size}")
    blocks = flat.reshape(-1, block_size)
    absmax = blocks.abs().max(dim=1).values
    scaled = (blocks * (1.0 / absmax.clamp(min=1e-38)).unsqueeze(1)).clamp(-1, 1)
    codes = (scaled.unsqueeze(-1) - nf4_levels()).abs().argmin(dim=-1)  # nearest level
    return codes.reshape(-1).to(torch.uint8), absmax


def dequantize_nf4(codes, absmax, shape, block_size: int = BLOCK_SIZE):
    """The weight the model computes with: level[code] times its block's absmax."""
    values = nf4_levels()[codes.long()].reshape(-1, block_size) * absmax.unsqueeze(1)
    return values.reshape(shape)


@dataclass
class NF4Check:
    """How the hand-written NF4 compares with bitsandbytes on one matrix, and the error it introduces."""

    same_levels: bool  # the 16 levels equal bitsandbytes' table (to float32 rounding)
    codes_equal: float  # share of numbers given the same 4-bit code
    absmax_equal: bool
    max_dequant_diff: float  # largest difference between the two dequantized matrices
    relative_error: float  # ||W - dequant(W)|| / ||W||
    mean_abs_error: float
    bits_per_weight: float  # 4 bits + the fp32 absmax spread over its block

    def __str__(self) -> str:
        return (f"levels equal bitsandbytes' table: {self.same_levels}; codes equal: {self.codes_equal:.2%}; "
                f"absmax equal: {self.absmax_equal}; largest difference after dequantizing: "
                f"{self.max_dequant_diff:.2e}\nerror NF4 introduces: {self.relative_error:.2%} of the weight's "
                f"norm (mean |error| {self.mean_abs_error:.2e}); {self.bits_per_weight:g} bits per weight")


def bnb_nf4(weight, block_size: int = BLOCK_SIZE):
    """bitsandbytes' own NF4 of ``weight`` (no double quantization): (codes 0..15, absmax, dequantized)."""
    import bitsandbytes.functional as bnbf
    import torch

    packed, state = bnbf.quantize_4bit(weight.detach().float(), blocksize=block_size, quant_type="nf4")
    packed = packed.reshape(-1)
    codes = torch.stack([packed >> 4, packed & 0xF], dim=1).reshape(-1)[: weight.numel()]  # high nibble first
    return codes, state.absmax, bnbf.dequantize_4bit(packed.unsqueeze(1), state).float()


def compare_with_bitsandbytes(weight, block_size: int = BLOCK_SIZE) -> NF4Check:
    """Quantize ``weight`` by hand and with bitsandbytes, and say how close they are."""
    import bitsandbytes.functional as bnbf
    import torch

    codes, absmax = quantize_nf4(weight, block_size)
    mine = dequantize_nf4(codes, absmax, weight.shape, block_size)
    bnb_codes, bnb_absmax, theirs = bnb_nf4(weight, block_size)
    table = bnbf.get_4bit_type("nf4", device="cpu")[:16].float()
    w = weight.detach().float()
    return NF4Check(
        same_levels=bool(torch.allclose(nf4_levels(), table, atol=1e-6)),
        codes_equal=(codes == bnb_codes).float().mean().item(),
        absmax_equal=bool(torch.equal(absmax, bnb_absmax.float())),
        max_dequant_diff=(mine - theirs).abs().max().item(),
        relative_error=((w - mine).norm() / w.norm()).item(),
        mean_abs_error=(w - mine).abs().mean().item(),
        bits_per_weight=4 + 32 / block_size)


# --------------------------------------------------------------------------- QLoRA on a CPU
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
