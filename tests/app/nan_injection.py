"""A callback that makes training diverge on purpose, for the non-finite guard's tests.

Given to ``train.py`` through its ``callbacks`` list (:func:`inject_at`).
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback


class NaNInjection(BaseCallback):
    """At the first rollout end at or after env step ``at_step``, set one entry of
    the first value-function weight to NaN (just before the PPO update, as a diverging loss
    would)."""

    def __init__(self, at_step: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.at_step = int(at_step)
        self.done = False

    def _on_rollout_end(self) -> None:
        if self.done or self.num_timesteps < self.at_step:
            return
        params: dict[str, Any] = dict(self.model.policy.named_parameters())
        name = next((n for n in params if "value" in n and n.endswith("weight")), None)
        if name is None:
            name = next(iter(params))
        with torch.no_grad():
            params[name].view(-1)[0] = float("nan")
        self.done = True
        if self.verbose:
            print(f"debug: injected NaN into {name} at env step {self.num_timesteps}")

    def _on_step(self) -> bool:
        return True


def inject_at(step: int) -> str:
    """The ``train.py`` override that adds a :class:`NaNInjection` at env step ``step``."""
    return f"callbacks=[{{_target_:tests.app.nan_injection.NaNInjection,at_step:{step}}}]"
