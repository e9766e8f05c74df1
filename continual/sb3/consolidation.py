"""``ConsolidationCallback``: a quadratic regulariser on an SB3 policy, consolidated on call.

It builds the regulariser on ``model.policy`` with the policy's optimizer at training start,
moves its state onto new parameter objects after ``PPO.load``, keeps its hooks attached only
while training, feeds each rollout's observations to a functional anchor if the regulariser
has one, consolidates when told to (a detector's *settled* event), and logs its statistics
under ``continual/``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from continual.regularisers import MAS, FunctionalAnchor, OnlineEWC, QuadraticRegulariser
from continual.regularisers.functional import squared_error
from continual.sb3.estimation import (
    policy_divergence,
    policy_log_likelihood,
    policy_output,
    rollout_observations,
)

__all__ = ["ConsolidationCallback", "RegulariserFactory"]

#: Builds a regulariser from the policy and its optimizer.
RegulariserFactory = Callable[[torch.nn.Module, torch.optim.Optimizer], QuadraticRegulariser]


class ConsolidationCallback(BaseCallback):
    """Keep a consolidation regulariser on the model's policy; :meth:`consolidate` on demand.

    :param regulariser: a :class:`~continual.regularisers.QuadraticRegulariser` subclass (built
        with ``regulariser_kwargs``), a factory ``(policy, optimizer) -> regulariser``, an
        instance already built on the model's policy, or ``None`` (no penalty: consolidations
        are only counted).
    :param n_estimate_samples: rollout observations drawn for the importance estimate of
        data-based methods (online EWC, MAS) at each consolidation.
    :param seed: seed of that draw.
    :param verbose: 1 prints a line per consolidation.
    :param regulariser_kwargs: keyword arguments of the regulariser class.
    """

    def __init__(
        self,
        regulariser: type[QuadraticRegulariser] | RegulariserFactory | QuadraticRegulariser | None,
        *,
        n_estimate_samples: int = 1024,
        seed: int = 0,
        verbose: int = 0,
        **regulariser_kwargs: Any,
    ) -> None:
        super().__init__(verbose=verbose)
        if n_estimate_samples < 1:
            raise ValueError(f"n_estimate_samples: must be >= 1, got {n_estimate_samples}")
        self.spec = regulariser
        self.regulariser_kwargs = regulariser_kwargs
        self.n_estimate_samples = int(n_estimate_samples)
        self.regulariser: QuadraticRegulariser | None = (
            regulariser if isinstance(regulariser, QuadraticRegulariser) else None
        )
        self.n_consolidations = 0
        self._pending: Mapping[str, Any] | None = None
        self._restored_state_bytes = 0
        self._rng = np.random.default_rng(seed)

    @property
    def kind(self) -> str | None:
        """The regulariser's kind (``"si"``, ``"ewc"``, ...), ``None`` without one or if only
        a factory is known and it has not run yet."""
        spec = self.spec
        if isinstance(spec, QuadraticRegulariser) or (
            isinstance(spec, type) and issubclass(spec, QuadraticRegulariser)
        ):
            return spec.kind
        return None if self.regulariser is None else self.regulariser.kind

    def _build(self) -> QuadraticRegulariser:
        spec = self.spec
        policy, optimizer = self.model.policy, self.model.policy.optimizer
        if isinstance(spec, type) and issubclass(spec, QuadraticRegulariser):
            kwargs = dict(self.regulariser_kwargs)
            if issubclass(spec, OnlineEWC | MAS):
                if hasattr(policy, "lstm_actor"):
                    raise ValueError(
                        f"regulariser {spec.kind!r}: importance estimation on recurrent "
                        "policies is not supported (it needs the LSTM states of the rollout); "
                        "use 'si' or 'l2'"
                    )
                make_fn = policy_log_likelihood if issubclass(spec, OnlineEWC) else policy_output
                kwargs["fn"] = make_fn(lambda: self.model.policy)
                kwargs.setdefault("chunk_size", 32 if issubclass(spec, OnlineEWC) else 1)
            return spec(policy, optimizer, **kwargs)
        assert callable(spec)
        reg = spec(policy, optimizer)
        if not isinstance(reg, QuadraticRegulariser):
            raise ValueError(f"regulariser: factory returned {type(reg).__name__}")
        return reg

    @staticmethod
    def _anchors(reg: QuadraticRegulariser | None) -> list[FunctionalAnchor]:
        return [] if reg is None else [a for a in reg.addons if isinstance(a, FunctionalAnchor)]

    def _bind_anchors(self, reg: QuadraticRegulariser) -> None:
        """A functional anchor left with the module's own output anchors the policy's output
        (Gaussian means or logits) under the KL divergence of two policies, looked up on the
        model at every call (the policy object changes after ``PPO.load``)."""
        anchors = self._anchors(reg)
        if anchors and hasattr(self.model.policy, "lstm_actor"):
            raise ValueError(
                "functional anchor: recurrent policies are not supported (the policy's output "
                "on a stored observation needs the LSTM state it was seen in); use 'si'"
            )
        for anchor in anchors:
            if anchor.fn is None or anchor.fn is reg.module:
                anchor.fn = policy_output(lambda: self.model.policy)
            if anchor.divergence is squared_error:
                anchor.divergence = policy_divergence(lambda: self.model.policy)

    def _on_training_start(self) -> None:
        policy, optimizer = self.model.policy, self.model.policy.optimizer
        reg = self.regulariser
        if reg is None and self.spec is not None:
            reg = self.regulariser = self._build()
        elif reg is not None and (reg.module is not policy or reg.optimizer is not optimizer):
            reg.rebind(policy, optimizer)
        if self._pending is not None and reg is not None:
            reg.load_state_dict(self._pending)
        self._pending = None
        if reg is not None:
            self._bind_anchors(reg)
            reg.attach()

    def _on_training_end(self) -> None:
        # Leave the model as the user built it: no hooks.
        if self.regulariser is not None:
            self.regulariser.detach()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.logger.record("continual/consolidations", self.n_consolidations)
        if self.regulariser is None:
            return
        anchors = self._anchors(self.regulariser)
        if anchors:
            observations = rollout_observations(self.model, None, self._rng)
            for anchor in anchors:
                anchor.observe(observations)
        stats = self.regulariser.stats()
        if not math.isfinite(stats["penalty"]):
            raise FloatingPointError(
                f"continual: non-finite penalty {stats['penalty']} at t={self.num_timesteps}"
            )
        for key, value in stats.items():
            self.logger.record(f"continual/{key}", value)

    def consolidate(self) -> None:
        """Consolidate now; online EWC and MAS first estimate importance on the fresh rollout."""
        reg = self.regulariser
        if reg is not None:
            if isinstance(reg, OnlineEWC | MAS):
                reg.estimate(rollout_observations(self.model, self.n_estimate_samples, self._rng))
            reg.consolidate()
        self.n_consolidations += 1
        if self.verbose:
            print(f"[continual] t={self.num_timesteps}: consolidation #{self.n_consolidations}")

    def state_bytes(self) -> int:
        """Bytes of the regulariser's state (its buffers and its add-ons' stores; 0 without
        one), as last built or restored: constant in the number of consolidations."""
        reg = self.regulariser
        return reg.state_bytes() if reg is not None else self._restored_state_bytes

    def state_dict(self) -> dict[str, Any]:
        """The regulariser's state (by parameter name; ``None`` without one), the count and the
        state's bytes."""
        reg = self.regulariser
        return {
            "regulariser": reg.state_dict() if reg is not None else self._pending,
            "n_consolidations": self.n_consolidations,
            "state_bytes": self.state_bytes(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore; the regulariser part applies now if built, else at the next training start.

        :raises ValueError: the saved regulariser is of another kind than this callback's.
        """
        saved = state["regulariser"]
        if (saved is None) != (self.spec is None):
            raise ValueError(
                "state: regulariser mismatch (saved "
                f"{'none' if saved is None else saved.get('kind')}, "
                f"callback has {self.kind or self.spec!r})"
            )
        if saved is not None and self.kind is not None and saved.get("kind") != self.kind:
            raise ValueError(
                f"state: saved regulariser {saved.get('kind')!r}, callback has {self.kind!r}"
            )
        self.n_consolidations = int(state["n_consolidations"])
        self._restored_state_bytes = int(state.get("state_bytes", 0))
        if saved is None:
            return
        if self.regulariser is not None:
            self.regulariser.load_state_dict(saved)
        else:
            self._pending = saved
