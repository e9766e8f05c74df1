"""Activation modules for SB3's ``activation_fn``, which SB3 instantiates with no arguments."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LayerNormELU", "LayerNormReLU", "LayerNormTanh"]


class _LayerNormed(nn.Module):
    """Layer normalisation of the pre-activations, without a learned scale or shift (the next
    linear layer has its own), then the activation: ``act((x - mean(x)) / std(x))`` over the
    last dimension. Adds no parameters, so a regulariser holds the same tensors with or
    without it."""

    activation: ClassVar[type[nn.Module]]

    def __init__(self) -> None:
        super().__init__()
        self.act = self.activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(F.layer_norm(x, x.shape[-1:]))


class LayerNormTanh(_LayerNormed):
    activation = nn.Tanh


class LayerNormReLU(_LayerNormed):
    activation = nn.ReLU


class LayerNormELU(_LayerNormed):
    activation = nn.ELU
