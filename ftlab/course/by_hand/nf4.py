"""4-bit NF4 written out by hand, and checked against bitsandbytes (chapter 02).

QLoRA stores each frozen weight matrix in NF4: the matrix is cut into blocks of 64 numbers, each block
is divided by its largest absolute value (its *absmax*, kept as a quantisation constant), and every
scaled number in [-1, 1] is replaced by the index (4 bits) of the nearest of 16 fixed levels. The
levels are quantiles of a standard normal distribution, because trained weights are roughly normal:
each level then covers about the same share of the weights. ``nf4_levels`` computes them,
``quantize_nf4`` / ``dequantize_nf4`` do the rest in a few lines of torch, and ``compare_with_bitsandbytes``
checks the hand version against bitsandbytes' own result and measures the error both introduce.

What bitsandbytes keeps per matrix, and the guard its CPU backend needs while training, are in
``ftlab.models.quantized``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftlab.models.quantized import BLOCK_SIZE

NF4_OFFSET = 0.9677083  # QLoRA's outermost quantile: the largest level sits at ~1.85 standard deviations


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


