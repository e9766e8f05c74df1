"""Mechanisms tried against slow re-learning, kept for the plasticity study.

Under SI none of them made re-learning faster (docs/study/plasticity.md; shrink-and-perturb
did, without a penalty, keeping nothing), so none is in the library.
The shift actions plug into ``train.py`` as ``continual.on_shift`` entries, the regenerative
pull (and the add-on that lets shrink-and-perturb spare the kept weights) as
``continual.addons`` entries, e.g.::

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
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from continual.regularisers.penalty import Addon, QuadraticRegulariser

__all__ = [
    "PublishFreeWeights",
    "RegenerativePull",
    "ResetOptimizer",
    "ResetPolicyHead",
    "ResetValueNet",
    "ShrinkPerturb",
]

_STATE_KEY = "regenerative_initial"

# id(parameter) -> (a weak reference to it, the bool mask of its entries that no consolidation
# kept, Ω = 0), written by PublishFreeWeights: a shift action sees only the model, not the
# regulariser. Keyed by id because tensors compare element-wise.
_free_masks: dict[int, tuple[weakref.ref[torch.Tensor], torch.Tensor]] = {}


def _publish_free(param: torch.Tensor, free: torch.Tensor) -> None:
    for key in [k for k, (ref, _) in _free_masks.items() if ref() is None]:
        del _free_masks[key]
    _free_masks[id(param)] = (weakref.ref(param), free)


def _free_mask(param: torch.Tensor) -> torch.Tensor | None:
    ref, free = _free_masks.get(id(param), (None, None))
    return free if ref is not None and ref() is param else None


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
        layers = _actor_critic_layers(model.policy)
        _reinitialise(model.policy, [layers["value_mlp"], layers["value_head"]])

    def __repr__(self) -> str:
        return "ResetValueNet()"


class ResetPolicyHead:
    """Re-initialise the action head (``policy.action_net``), as ``ActorCriticPolicy`` builds it
    (orthogonal, gain 0.01): the mean action is near 0 again, as in a fresh policy.

    A diagnostic, not a method: it discards what the head knew of every earlier task. It asks
    whether re-learning is slow because the old task's action prior steers exploration.
    """

    def __call__(self, model: BaseAlgorithm) -> None:
        _reinitialise(model.policy, [_actor_critic_layers(model.policy)["action_head"]])

    def __repr__(self) -> str:
        return "ResetPolicyHead()"


def _reinitialise(policy: nn.Module, modules: list[tuple[nn.Module, float]]) -> None:
    """Re-initialise every linear layer of ``modules`` (:func:`_fresh_init`) and drop the
    modules' optimizer state."""
    ortho = bool(getattr(policy, "ortho_init", False))
    with torch.no_grad():
        for module, gain in modules:
            for layer in _linear_layers(module):
                weight, bias = _fresh_init(layer, gain, ortho)
                layer.weight.copy_(weight)
                if layer.bias is not None:
                    layer.bias.copy_(bias)
            for p in module.parameters():
                policy.optimizer.state.pop(p, None)


def _linear_layers(module: nn.Module) -> list[nn.Linear]:
    return [layer for layer in module.modules() if isinstance(layer, nn.Linear)]


def _fresh_init(layer: nn.Linear, gain: float, ortho: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A new draw of ``layer``'s (weight, bias) as ``ActorCriticPolicy`` initialises it:
    orthogonal with ``gain`` and zero bias, or torch's default init without ``ortho_init``."""
    if ortho:
        weight = nn.init.orthogonal_(torch.empty_like(layer.weight), gain=gain)
        return weight, torch.zeros(layer.out_features, dtype=weight.dtype, device=weight.device)
    fresh = nn.Linear(layer.in_features, layer.out_features, device=layer.weight.device)
    return fresh.weight.detach(), fresh.bias.detach()


def _actor_critic_layers(policy: nn.Module) -> dict[str, tuple[nn.Module, float]]:
    """The policy's MLPs and heads, each with the gain ``ActorCriticPolicy`` initialises it with."""
    return {
        "policy_mlp": (policy.mlp_extractor.policy_net, math.sqrt(2)),
        "value_mlp": (policy.mlp_extractor.value_net, math.sqrt(2)),
        "action_head": (policy.action_net, 0.01),
        "value_head": (policy.value_net, 1.0),
    }


class ShrinkPerturb:
    """Shrink the weights of the actor and the critic toward zero and add a fresh draw of the
    initialisation (Ash & Adams 2020, "On warm-starting neural network training"):

        θ ← λ · θ + σ · θ_fresh,   θ_fresh drawn as ``ActorCriticPolicy`` initialises θ

    Shrinking keeps the directions the network has learned and restores the gradient scale
    of a young network; the noise revives units that stopped responding. Adam's state is
    kept; ``log_std`` is left to :class:`continual.ResetExploration`.

    :param shrink: λ, in (0, 1].
    :param perturb: σ, the weight of the fresh draw, ≥ 0.
    :param free_only: only the entries that no consolidation kept (Ω = 0), as published by
        :class:`PublishFreeWeights` among the same callback's add-ons; parameters the
        regulariser does not hold are treated as free. ``False``: every weight, and the
        penalty pulls the important ones back.
    """

    def __init__(self, shrink: float = 0.8, perturb: float = 0.2, free_only: bool = False) -> None:
        if not 0.0 < shrink <= 1.0:
            raise ValueError(f"shrink: must be in (0, 1], got {shrink}")
        if perturb < 0.0:
            raise ValueError(f"perturb: must be >= 0, got {perturb}")
        self.shrink, self.perturb, self.free_only = float(shrink), float(perturb), free_only

    def __call__(self, model: BaseAlgorithm) -> None:
        policy = model.policy
        if self.free_only and all(_free_mask(p) is None for p in policy.parameters()):
            raise ValueError(
                "ShrinkPerturb(free_only=True): no regulariser published its free weights; add "
                "studies.plasticity.PublishFreeWeights to the callback's addons"
            )
        ortho = bool(getattr(policy, "ortho_init", False))
        with torch.no_grad():
            for module, gain in _actor_critic_layers(policy).values():
                for layer in _linear_layers(module):
                    fresh = _fresh_init(layer, gain, ortho)
                    for param, draw in zip((layer.weight, layer.bias), fresh, strict=True):
                        if param is not None:
                            self._blend(param, draw)

    def _blend(self, param: torch.Tensor, draw: torch.Tensor) -> None:
        blended = param * self.shrink + draw * self.perturb
        free = _free_mask(param) if self.free_only else None
        param.copy_(blended if free is None else torch.where(free, blended, param))

    def __repr__(self) -> str:
        return (
            f"ShrinkPerturb(shrink={self.shrink}, perturb={self.perturb}, "
            f"free_only={self.free_only})"
        )


class PublishFreeWeights(Addon):
    """Publishes, at every consolidation, which entries of the regularised parameters carry no
    importance (Ω = 0), for :class:`ShrinkPerturb` with ``free_only=True``: a shift action is
    called with the model alone. Before the first consolidation every entry is free."""

    def bind(self, reg: QuadraticRegulariser) -> None:
        for p in reg.params:
            _publish_free(p, torch.ones_like(p, dtype=torch.bool))

    def coefficients_changed(self, reg: QuadraticRegulariser) -> None:
        for p, omega in zip(reg.params, reg._importance, strict=True):
            _publish_free(p, omega == 0)

    def __repr__(self) -> str:
        return "PublishFreeWeights()"


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
