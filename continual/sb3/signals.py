"""Signals that the task-shift detector watches, computed from the model after each rollout.

Each is a ``model -> float`` function evaluated at ``_on_rollout_end`` (returns and advantages
are already computed then). A loss-like signal rises when a new task arrives and settles when
it is learned. :data:`PLATEAU_DEFAULTS` holds the plateau trigger's thresholds per built-in
signal; ``docs/study/detector.md`` gives the measurements behind them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

__all__ = [
    "PLATEAU_DEFAULTS",
    "SIGNALS",
    "Signal",
    "negative_return",
    "ppo_loss",
    "unexplained_variance",
    "value_mse",
]

Signal = Callable[[BaseAlgorithm], float]


def _rollout_arrays(model: BaseAlgorithm) -> tuple[np.ndarray, np.ndarray]:
    buf = model.rollout_buffer  # type: ignore[attr-defined]
    values = np.asarray(buf.values, dtype=np.float64).ravel()
    return values, np.asarray(buf.returns, dtype=np.float64).ravel()


def unexplained_variance(model: BaseAlgorithm) -> float:
    """1 − explained variance of the value function on the fresh rollout:
    Var[returns − values] / Var[returns] (dimensionless; NaN when the returns are constant)."""
    values, returns = _rollout_arrays(model)
    var = float(np.var(returns))
    return float(np.var(returns - values)) / var if var > 0 else math.nan


def value_mse(model: BaseAlgorithm) -> float:
    """Mean squared error of the value predictions on the fresh rollout (units of return²)."""
    values, returns = _rollout_arrays(model)
    return float(np.mean((returns - values) ** 2))


def negative_return(model: BaseAlgorithm) -> float:
    """−(mean return of the last 100 finished episodes), SB3's ``rollout/ep_rew_mean`` negated
    (units of reward; NaN before the first episode ends). Needs ``Monitor``/``VecMonitor``
    episode infos, which SB3's ``make_vec_env`` adds.

    A loss-like signal, so the plateau trigger's peak is a drop in return. Use it with
    ``scale="range"``: returns can sit at or across zero, where a spread relative to the mean
    means nothing."""
    episodes = model.ep_info_buffer
    if not episodes:
        return math.nan
    return -float(np.mean([ep["r"] for ep in episodes]))


def ppo_loss(model: BaseAlgorithm) -> float:
    """The training loss of the last update as SB3 logs it (``train/loss``: for PPO the
    clipped surrogate + ``vf_coef`` · value loss − ``ent_coef`` · entropy, of the update's last
    minibatch; NaN before the first update). At a rollout's end the logger holds the previous
    update's values, not yet dumped. It can cross zero, so it uses the return's range-scaled
    thresholds."""
    value = model.logger.name_to_value.get("train/loss")
    return math.nan if value is None else float(value)


#: Built-in signals by name.
SIGNALS: dict[str, Signal] = {
    "unexplained_variance": unexplained_variance,
    "value_mse": value_mse,
    "negative_return": negative_return,
    "ppo_loss": ppo_loss,
}

# The return's thresholds, in shares of the signal's range seen so far (PLATEAU_DEFAULTS).
_RANGE_SCALED: dict[str, Any] = {
    "scale": "range",
    "window": 8,
    "k": 3.0,
    "rel_floor": 0.2,
    "spread_tol": 0.04,
    "slope_tol": 0.1,
    "min_after_peak": 4,
    "min_spacing": 4,
    "min_recovery": 0.3,
}
#: Plateau-trigger settings per built-in signal, under any ``trigger_kwargs`` the user gives.
#: ``negative_return``: a shift is a rise of 20% of the return range seen so far; a window is a
#: plateau once its spread is under 4% of that range, its fitted change under 10%, and it lies
#: 30% of the range below the post-shift peak. ``ppo_loss``, which crosses zero too, uses the
#: same range-scaled settings. ``unexplained_variance`` and ``value_mse`` use the trigger's own
#: mean-scaled defaults.
PLATEAU_DEFAULTS: dict[str, dict[str, Any]] = {
    "negative_return": dict(_RANGE_SCALED),
    "ppo_loss": dict(_RANGE_SCALED),
}
