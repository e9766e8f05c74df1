"""Synaptic Intelligence computed directly from its definition: a plain loop, no hooks.

The fast path (:mod:`continual.regularisers.hooks` with :class:`~continual.regularisers.SI`) is
tested against this. Per step the task gradient g comes from its own backward pass, the penalty
gradient 2cΩ ⊙ (θ − θ*) is added by hand, the sum is clipped if asked, the optimizer steps, and
ω −= g ⊙ Δθ. Slow and simple on purpose: read it next to the paper (Zenke et al. 2017, eqs. 3, 5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import torch
from torch import nn

__all__ = ["SIReference", "reference_si"]


class SIReference(NamedTuple):
    """Per parameter (in ``model.parameters()`` order): ω, Ω, θ* and θ after the run."""

    omega: list[torch.Tensor]
    importance: list[torch.Tensor]
    anchor: list[torch.Tensor]
    theta: list[torch.Tensor]


def reference_si(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    tasks: Sequence[Iterable[tuple[torch.Tensor, torch.Tensor]]],
    *,
    c: float,
    xi: float,
    max_grad_norm: float | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.mse_loss,
    consolidate_last: bool = True,
    use_total_grad: bool = False,
) -> SIReference:
    """Train ``model`` on ``tasks`` in turn with SI, consolidating after each task.

    Per step: g = ∇ task loss; p.grad = g + 2cΩ ⊙ (θ − θ*), clipped to ``max_grad_norm``;
    step; ω ← ω − g ⊙ Δθ. Consolidation: Ω ← max(0, Ω + ω / ((θ − θ*)² + ξ)); θ* ← θ; ω ← 0.

    :param model: trained in place; all its parameters are regularised.
    :param optimizer: the optimizer of ``model.parameters()``.
    :param tasks: per task, its ``(x, y)`` batches.
    :param c: strength.
    :param xi: damping ξ > 0.
    :param max_grad_norm: global-norm gradient clipping of the total gradient, or ``None``.
    :param loss_fn: the task loss ``loss_fn(model(x), y)``.
    :param consolidate_last: consolidate after the last task too (else ω is mid-task).
    :param use_total_grad: integrate the total gradient instead of the task gradient (a known
        bug, for tests that show the two differ).
    """
    params = list(model.parameters())
    omega = [torch.zeros_like(p) for p in params]
    importance = [torch.zeros_like(p) for p in params]
    anchor = [p.detach().clone() for p in params]
    for k, batches in enumerate(tasks):
        for x, y in batches:
            g = torch.autograd.grad(loss_fn(model(x), y), params)
            with torch.no_grad():
                penalty_grad = [
                    2 * c * o * (p - a) for o, p, a in zip(importance, params, anchor, strict=True)
                ]
                total = [gi + pi for gi, pi in zip(g, penalty_grad, strict=True)]
                for p, t in zip(params, total, strict=True):
                    p.grad = t.clone()
                if max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
                before = [p.detach().clone() for p in params]
                optimizer.step()
                used = total if use_total_grad else g
                for w, gi, p, b in zip(omega, used, params, before, strict=True):
                    w -= gi * (p - b)
        if consolidate_last or k < len(tasks) - 1:
            with torch.no_grad():
                for i, p in enumerate(params):
                    importance[i] = torch.clamp(
                        importance[i] + omega[i] / ((p - anchor[i]) ** 2 + xi), min=0
                    )
                    anchor[i] = p.detach().clone()
                    omega[i] = torch.zeros_like(p)
    return SIReference(omega, importance, anchor, [p.detach().clone() for p in params])
