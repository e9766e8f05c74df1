"""What the data-based parts of a regulariser need from an SB3 model: observations, outputs.

Online EWC needs per-sample log-likelihoods of the policy's own actions (the true Fisher), MAS
the policy's output, both on observations of the fresh rollout; the functional anchor needs
the policy's output and the divergence between two policies given by their outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
)

__all__ = [
    "policy_divergence",
    "policy_log_likelihood",
    "policy_output",
    "rollout_observations",
]


def rollout_observations(model: BaseAlgorithm, n: int | None, rng: np.random.Generator) -> Any:
    """Up to ``n`` observations drawn without replacement from the fresh rollout (``None``:
    all of them, in rollout order, without a draw).

    :return: a tensor of shape ``[min(n, N), *obs_shape]`` (or a dict of such tensors for dict
        observation spaces), on the model's device; N = n_steps · n_envs.
    """
    obs = model.rollout_buffer.observations  # type: ignore[attr-defined]

    def flat(a: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        return a.reshape(-1, *shape)

    if isinstance(obs, Mapping):
        space = model.observation_space.spaces  # type: ignore[attr-defined]
        arrays = {k: flat(v, space[k].shape) for k, v in obs.items()}
        total = len(next(iter(arrays.values())))
    else:
        arrays = flat(obs, model.observation_space.shape)  # type: ignore[arg-type]
        total = len(arrays)
    idx = np.arange(total) if n is None else rng.choice(total, size=min(n, total), replace=False)
    if isinstance(arrays, dict):
        return {k: torch.as_tensor(v[idx], device=model.device) for k, v in arrays.items()}
    return torch.as_tensor(arrays[idx], device=model.device)


def policy_log_likelihood(get_policy: Callable[[], Any]) -> Callable[[Any], torch.Tensor]:
    """``obs -> log π(a|s)``, shape ``[B]``, with a drawn from π(·|s) itself (true Fisher).

    :param get_policy: returns the current policy; looked up at call time because the policy
        object changes after ``PPO.load``.
    """

    def fn(obs: Any) -> torch.Tensor:
        dist = get_policy().get_distribution(obs)
        with torch.no_grad():
            actions = dist.get_actions()
        return dist.log_prob(actions)

    return fn


def policy_output(get_policy: Callable[[], Any]) -> Callable[[Any], torch.Tensor]:
    """``obs -> f(x)``, the policy's output as ``[B, d]``: Gaussian means or categorical logits.

    :param get_policy: returns the current policy (looked up at call time).
    """

    def fn(obs: Any) -> torch.Tensor:
        dist = get_policy().get_distribution(obs).distribution
        parts = dist if isinstance(dist, list | tuple) else [dist]
        outs = []
        for d in parts:
            if isinstance(d, torch.distributions.Normal):
                outs.append(d.mean)
            elif isinstance(d, torch.distributions.Categorical | torch.distributions.Bernoulli):
                outs.append(d.logits)
            else:
                raise ValueError(
                    f"regulariser 'mas': unsupported action distribution {type(d).__name__}"
                )
        return torch.cat([o.reshape(len(o), -1) for o in outs], dim=1)

    return fn


def policy_divergence(
    get_policy: Callable[[], Any],
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(target, output) -> KL(π°(·|s) ‖ π_θ(·|s))`` per sample, shape ``[B]``, for policies
    given by their :func:`policy_output` (``[B, d]``).

    - Gaussian (``DiagGaussianDistribution``): both policies take the current std σ, which is
      state-independent, so KL = ½ Σ_d ((μ_d − μ°_d) / σ_d)², with σ held constant (the shift
      action raises it to explore; the anchor does not pull it back).
    - Categorical: KL = Σ_a p°(a) (log p°(a) − log p_θ(a)) from the logits.

    :param get_policy: returns the current policy (looked up at call time).
    :raises ValueError: another action distribution (the message names it).
    """

    def gaussian(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        std = get_policy().log_std.detach().exp()
        return 0.5 * ((output - target) / std).pow(2).sum(dim=1)

    def categorical(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        log_p_old = torch.log_softmax(target, dim=1)
        return (log_p_old.exp() * (log_p_old - torch.log_softmax(output, dim=1))).sum(dim=1)

    dist = get_policy().action_dist
    if isinstance(dist, DiagGaussianDistribution):
        return gaussian
    if isinstance(dist, CategoricalDistribution):
        return categorical
    raise ValueError(
        f"functional anchor: action distribution {type(dist).__name__} is not supported; "
        "use a Box (diagonal Gaussian) or Discrete (categorical) action space"
    )
