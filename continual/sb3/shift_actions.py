"""What to do when the detector reports a ``shift`` (a new task seems to arrive).

A shift action is any callable ``action(model) -> None``. PPO's exploration collapses on a
task, and the next task is then never found; :class:`ResetExploration` raises it again
(``docs/study/detector.md``).
"""

from __future__ import annotations

from typing import Protocol

import torch
from stable_baselines3.common.base_class import BaseAlgorithm

__all__ = ["ResetExploration", "ShiftAction"]


class ShiftAction(Protocol):
    """Called with the model at every detected shift, between two rollouts."""

    def __call__(self, model: BaseAlgorithm) -> None: ...


class ResetExploration:
    """Raise a Gaussian policy's ``log_std`` to at least ``log_std`` (never lowers it).

    Policies without a ``log_std`` parameter (discrete actions) are left as they are.

    :param log_std: the floor, in log units of the action standard deviation (0: std 1).
    """

    def __init__(self, log_std: float = 0.0) -> None:
        self.log_std = float(log_std)

    def __call__(self, model: BaseAlgorithm) -> None:
        current = getattr(model.policy, "log_std", None)
        if isinstance(current, torch.Tensor):
            with torch.no_grad():
                current.clamp_(min=self.log_std)

    def __repr__(self) -> str:
        return f"ResetExploration(log_std={self.log_std})"
