"""LoRA written out by hand on one linear layer, to read before using PEFT (chapter 00).

A frozen ``nn.Linear`` computes ``W x``. LoRA adds a trainable low-rank update beside it:

    y = W x + (alpha / r) * B (A x)        A: r x in_features, B: out_features x r

``A`` starts random and ``B`` starts at zero, so before the first step the wrapped layer answers
exactly as the base layer did; training moves only ``A`` and ``B``, ``r * (in + out)`` numbers instead
of ``in * out``. ``alpha / r`` scales the update; the LoRA paper divides by ``r`` so that a learning rate
that works at one rank needs less retuning at another. ``LoRALinear`` is those lines; ``peft_linear`` wraps the
same base layer with PEFT's own LoRA, and ``copy_into_peft`` gives it the same A and B, so chapter 00
(and a test) can check that the two compute the same output.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) * B(A(x))`` with ``base`` frozen: LoRA in ten lines."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: int = 16):
        super().__init__()
        self.base, self.scale = base, alpha / r
        base.requires_grad_(False)  # the pretrained weights stay as they are
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))  # zero: the layer starts as the base layer
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear (and PEFT) initialise a weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T


def peft_linear(base: nn.Linear, r: int = 8, alpha: int = 16) -> nn.Module:
    """The same base layer wrapped by PEFT's LoRA (``get_peft_model``, dropout off): PEFT's ``lora.Linear``."""
    from peft import LoraConfig, get_peft_model

    holder = nn.Module()
    holder.layer = base
    wrapped = get_peft_model(holder, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=["layer"]))
    return wrapped.base_model.model.layer


def copy_into_peft(mine: LoRALinear, theirs: nn.Module) -> None:
    """Give PEFT's layer the hand-written layer's A and B (PEFT keeps them as two Linear layers' weights)."""
    with torch.no_grad():
        theirs.lora_A["default"].weight.copy_(mine.A)
        theirs.lora_B["default"].weight.copy_(mine.B)


def trainable(module: nn.Module) -> int:
    """How many numbers in ``module`` would train."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
