"""Mechanisms tried against slow re-learning, kept for the plasticity study.

None of them made re-learning faster (docs/study/plasticity.md), so none is in the library.
The shift actions plug into ``train.py`` as ``continual.on_shift`` entries, the regenerative
pull as a ``continual.addons`` entry, e.g.::

    python train.py stream=relearn continual=si_keep continual.trigger=boundary \\
        'continual.on_shift=[{_target_:continual.ResetExploration},{_target_:studies.plasticity.ResetOptimizer}]'
    python train.py stream=relearn continual=si_keep continual.trigger=boundary \\
        'continual.addons=[{_target_:studies.plasticity.RegenerativePull,rate:0.001}]'

A shift action is a callable ``action(model) -> None``
(:class:`continual.sb3.shift_actions.ShiftAction`); the pull is a regulariser
:class:`~continual.regularisers.penalty.Addon`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from continual.regularisers.penalty import Addon, QuadraticRegulariser

__all__ = ["RegenerativePull", "ResetOptimizer", "ResetPolicyHead", "ResetValueNet"]

_STATE_KEY = "regenerative_initial"


class ResetOptimizer:
    """Forget the optimizer's running state (Adam's moments and step counts).

    After a long stretch on one task, Adam's second moments are scaled to that task's
    gradients; the hypothesis is that the next task's first steps are then mis-sized.
    """

    def __call__(self, model: BaseAlgorithm) -> None:
        model.policy.optimizer.state.clear()

    def __repr__(self) -> str:
        return "ResetOptimizer()"


class ResetValueNet:
    """Re-initialise the value MLP and the value head as ``ActorCriticPolicy`` builds them, and
    drop their optimizer state.

    The critic fitted to the last task predicts that task's returns, so the next task's first
    advantages are biased; a fresh critic starts unbiased. Only for methods that leave the
    critic unregularised (``select="actor"``).
    """

    def __call__(self, model: BaseAlgorithm) -> None:
        policy = model.policy
        _reinitialise(
            policy, [(policy.mlp_extractor.value_net, math.sqrt(2)), (policy.value_net, 1.0)]
        )

    def __repr__(self) -> str:
        return "ResetValueNet()"


class ResetPolicyHead:
    """Re-initialise the action head (``policy.action_net``), as ``ActorCriticPolicy`` builds it
    (orthogonal, gain 0.01): the mean action is near 0 again, as in a fresh policy.

    A diagnostic, not a method: it discards what the head knew of every earlier task. It asks
    whether re-learning is slow because the old task's action prior steers exploration.
    """

    def __call__(self, model: BaseAlgorithm) -> None:
        _reinitialise(model.policy, [(model.policy.action_net, 0.01)])

    def __repr__(self) -> str:
        return "ResetPolicyHead()"


def _reinitialise(policy: nn.Module, modules: list[tuple[nn.Module, float]]) -> None:
    """Orthogonal init with the given gains and zero biases (torch's default init when the
    policy was built without ``ortho_init``); the modules' optimizer state is dropped."""
    ortho = bool(getattr(policy, "ortho_init", False))
    with torch.no_grad():
        for module, gain in modules:
            for layer in module.modules():
                if not isinstance(layer, nn.Linear):
                    continue
                if ortho:
                    nn.init.orthogonal_(layer.weight, gain=gain)
                    if layer.bias is not None:
                        layer.bias.zero_()
                else:
                    layer.reset_parameters()
            for p in module.parameters():
                policy.optimizer.state.pop(p, None)


class RegenerativePull(Addon):
    """Pull the regularised parameters that no consolidation kept back toward their initial
    values, after every optimizer step:

        θ_i ← θ_i − ρ · 1[Ω_i = 0] · (θ_i − θ⁰_i)

    Kumar et al. (2023, "Maintaining plasticity in continual learning via regenerative
    regularization", L2 Init) pull every weight toward its initial value θ⁰ so that a network
    keeps the trainability of its initialisation. Here only the weights without importance
    (Ω = 0, e.g. those ``keep_top`` dropped) are pulled, so the pull never competes with the
    penalty; it is decoupled from the gradient, like AdamW's weight decay, so ρ is a fraction
    of the distance per step whatever Adam's scaling.

    θ⁰ is the parameters' value when the regulariser is built (at the start of training); it
    is saved in the state dict, so a resumed run pulls toward the same point.

    :param rate: ρ, the fraction of the distance to θ⁰ removed per optimizer step, in [0, 1).
    """

    # The pull runs in the optimizer's step post-hook, which the hooks register only then.
    needs_task_grad: ClassVar[bool] = True

    def __init__(self, rate: float = 1e-3) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate: must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.initial: list[torch.Tensor] = []
        self.free: list[torch.Tensor] = []

    def bind(self, reg: QuadraticRegulariser) -> None:
        if len(self.initial) != len(reg.params):  # first bind; a rebind keeps θ⁰
            self.initial = [p.detach().clone() for p in reg.params]

    def coefficients_changed(self, reg: QuadraticRegulariser) -> None:
        self.free = [
            (omega == 0).to(p.dtype) for omega, p in zip(reg._importance, reg.params, strict=True)
        ]

    def after_step(
        self,
        reg: QuadraticRegulariser,
        task_grad: list[torch.Tensor | None],
        idx: list[int] | None,
    ) -> None:
        theta, initial, free = reg._detached, self.initial, self.free
        if idx is not None:
            theta, initial, free = ([seq[i] for i in idx] for seq in (theta, initial, free))
        diff = torch._foreach_sub(theta, initial)
        torch._foreach_mul_(diff, free)
        torch._foreach_add_(theta, diff, alpha=-self.rate)

    def stats(self, reg: QuadraticRegulariser) -> dict[str, float]:
        n = sum(f.numel() for f in self.free)
        return {"regenerative/free_fraction": float(sum(f.sum() for f in self.free)) / max(n, 1)}

    def state_dict(self) -> dict[str, Any]:
        return {_STATE_KEY: [t.clone() for t in self.initial]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = state.get(_STATE_KEY)
        if saved is None:
            return
        if len(saved) != len(self.initial):
            raise ValueError(
                f"state: {_STATE_KEY} has {len(saved)} tensors, the regulariser {len(self.initial)}"
            )
        for dst, src in zip(self.initial, saved, strict=True):
            dst.copy_(src)

    def __repr__(self) -> str:
        return f"RegenerativePull(rate={self.rate})"
