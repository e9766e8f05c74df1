"""A functional anchor: keep the model's outputs on a fixed-size sample of past inputs.

    L_F(θ) = λ · E_{x ~ M} [ D( f°(x), f_θ(x) ) ]

M is a reservoir of every input seen so far (:class:`~continual.regularisers.reservoir.
ReservoirBuffer`, task-free, fixed size), f°(x) the output of the model as it was consolidated
just after x was seen, and D a divergence: ½‖f°(x) − f_θ(x)‖² by default; for a policy, the
KL divergence KL(π°(·|x) ‖ π_θ(·|x)) (``continual.sb3.estimation.policy_divergence``).

The quadratic penalty protects parameters; when tasks share their inputs the parameters that
matter to an old task are those the new one needs too, and protecting them blocks one task or
the other. This anchor protects the function where the old tasks' inputs are, and leaves the
parameters free to move elsewhere. It rides on a quadratic regulariser as an add-on: its
gradient joins the quadratic penalty's at the end of each backward pass, before gradient
clipping and outside SI's task gradient, and its targets are set at each consolidation. Why and
when: ``docs/study/shared-inputs.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from continual.regularisers.penalty import Addon
from continual.regularisers.reservoir import ReservoirBuffer

if TYPE_CHECKING:
    from continual.regularisers.penalty import QuadraticRegulariser

__all__ = ["Divergence", "FunctionalAnchor", "squared_error"]

#: ``divergence(target, output)``: one value per sample, shape ``[B]``, differentiable in output.
Divergence = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_STATE_KEY = "functional_anchor"


def squared_error(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """½‖output − target‖² per sample (summed over every dimension after the first)."""
    return 0.5 * (output - target).pow(2).flatten(1).sum(dim=1)


class FunctionalAnchor(Addon):
    """Add-on penalty λ · mean over a reservoir batch of D(f°(x), f_θ(x)).

    Feed it inputs with :meth:`observe` (a trainer does, e.g. each rollout's observations).
    At every consolidation of its regulariser, the entries seen since the last one get the
    consolidated model's outputs as targets; entries without a target are never sampled. The
    memory is fixed at ``capacity`` inputs and targets, whatever the number of consolidations.

    :param strength: λ, the weight of the mean divergence (>= 0; 0: targets are kept, no
        gradient). 0.3 held every task on the shared-input streams where 1 and 3 blocked some
        (``docs/study/shared-inputs.md``).
    :param capacity: reservoir entries (>= 1). Memory: ``capacity`` × (input + output) values.
    :param batch_size: reservoir entries drawn for each backward pass (>= 1).
    :param fn: ``fn(inputs) -> outputs`` of the model; ``None``: the regulariser's module.
    :param divergence: ``divergence(target, output) -> [B]``; ``None``: :func:`squared_error`.
    :param seed: seed of the reservoir's draws.
    """

    adds_gradient: ClassVar[bool] = True

    def __init__(
        self,
        strength: float = 0.3,
        *,
        capacity: int = 4096,
        batch_size: int = 64,
        fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        divergence: Divergence | None = None,
        seed: int = 0,
    ) -> None:
        if not (isinstance(strength, int | float) and 0.0 <= strength < float("inf")):
            raise ValueError(f"strength: must be finite and >= 0, got {strength!r}")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
        self.strength = float(strength)
        self.batch_size = int(batch_size)
        self.buffer = ReservoirBuffer(capacity, seed=seed)
        self.fn = fn
        self.divergence: Divergence = divergence or squared_error
        self._last_penalty: torch.Tensor | None = None

    @property
    def capacity(self) -> int:
        return self.buffer.capacity

    def bind(self, reg: QuadraticRegulariser) -> None:
        if self.fn is None and reg.module is not None:
            self.fn = reg.module

    def _model(self) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.fn is None:
            raise ValueError(
                "FunctionalAnchor: no model function; pass fn=, or build the regulariser on an "
                "nn.Module"
            )
        return self.fn

    def observe(self, inputs: torch.Tensor) -> None:
        """Offer a batch of model inputs ``[n, *input_shape]`` to the reservoir."""
        self.buffer.add(inputs)

    def before_consolidate(self, reg: QuadraticRegulariser, fresh: list[torch.Tensor]) -> None:
        # θ is the consolidated θ here: f°(x) for every entry seen since the last consolidation.
        fn = self._model()
        device = reg.params[0].device
        with reg.hooks_disabled():
            self.buffer.label(lambda x: fn(x.to(device)))

    def penalty_gradient(self, reg: QuadraticRegulariser) -> list[torch.Tensor | None] | None:
        if self.strength == 0.0:
            return None
        batch = self.buffer.sample(self.batch_size)
        if batch is None:
            return None
        inputs, targets = batch
        device = reg.params[0].device
        # L_F = λ · 1/B Σ_x D(f°(x), f_θ(x))
        divergence = self.divergence(targets.to(device), self._model()(inputs.to(device)))
        penalty = self.strength * divergence.mean()
        self._last_penalty = penalty.detach()
        return list(torch.autograd.grad(penalty, reg.params, allow_unused=True))

    def state_bytes(self) -> int:
        return self.buffer.state_bytes()

    def stats(self, reg: QuadraticRegulariser) -> dict[str, float]:
        out = {"anchor/labelled": float(self.buffer.n_labelled)}
        if self._last_penalty is not None:
            out["anchor/penalty"] = float(self._last_penalty)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {_STATE_KEY: {"strength": self.strength, "buffer": self.buffer.state_dict()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = state.get(_STATE_KEY)
        if saved is None:
            raise ValueError(
                "state: saved without a FunctionalAnchor; resume it with the method it was "
                "saved with"
            )
        self.buffer.load_state_dict(saved["buffer"])

    def __repr__(self) -> str:
        return (
            f"FunctionalAnchor(strength={self.strength:g}, capacity={self.capacity}, "
            f"batch_size={self.batch_size})"
        )
