"""Stop training on non-finite values (loss, penalty, importance, parameters) before they are
checkpointed, and a test hook that injects one."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["NonFiniteError", "NonFiniteGuard"]


class NonFiniteError(FloatingPointError):
    """Training produced NaN or Inf; the run stopped and its last checkpoint is intact."""


class NonFiniteGuard(BaseCallback):
    """Check for NaN/Inf at every rollout start (right after each PPO update).

    Checked: the policy's parameters, the logger's latest ``train/*`` and ``continual/*``
    scalars (loss, penalty, ...), and the tensors returned by ``tensors`` (e.g. the continual
    regulariser's importance Ω and anchor θ*). Put it before the checkpoint callback, so a bad
    state is never saved. ``describe_checkpoint`` adds where the last good checkpoint is to the
    error message.
    """

    def __init__(
        self,
        tensors: Callable[[], Mapping[str, torch.Tensor]] | None = None,
        describe_checkpoint: Callable[[], str] | None = None,
        prefixes: tuple[str, ...] = ("train/", "continual/"),
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.tensors = tensors
        self.describe_checkpoint = describe_checkpoint
        self.prefixes = prefixes

    def find_non_finite(self) -> list[str]:
        """Names of everything non-finite right now (empty if all is well)."""
        bad: list[str] = []
        if self.model is None:
            return bad
        for name, p in self.model.policy.named_parameters():
            if not bool(torch.isfinite(p).all()):
                bad.append(f"policy parameter {name!r}")
        for key, value in self.model.logger.name_to_value.items():
            if (
                key.startswith(self.prefixes)
                and isinstance(value, (int, float))
                and not math.isfinite(float(value))
            ):
                bad.append(f"{key}={value}")
        if self.tensors is not None:
            for name, t in self.tensors().items():
                if (
                    isinstance(t, torch.Tensor)
                    and t.is_floating_point()
                    and not bool(torch.isfinite(t).all())
                ):
                    bad.append(name)
        return bad

    def error(self, bad: list[str], cause: BaseException | None = None) -> NonFiniteError:
        """The error to raise for ``bad`` (from :meth:`find_non_finite`)."""
        shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        msg = f"non-finite values in the update ending at env step {self.num_timesteps}: {shown}."
        if cause is not None:
            first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
            if len(first) > 160:
                first = first[:160] + "..."
            msg += f" (surfaced as {type(cause).__name__}: {first})"
        if self.describe_checkpoint is not None:
            msg += " " + self.describe_checkpoint()
        return NonFiniteError(msg)

    def check(self, cause: BaseException | None = None) -> None:
        """Raise :class:`NonFiniteError` if anything is non-finite."""
        bad = self.find_non_finite()
        if bad:
            raise self.error(bad, cause) from cause

    def _on_rollout_start(self) -> None:
        self.check()

    def _on_step(self) -> bool:
        return True
