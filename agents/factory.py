"""Build stable-baselines3 agents from an :class:`~agents.config.AgentConfig`."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from agents.config import AgentConfig, validate_agent_config
from agents.layers import LayerNormELU, LayerNormReLU, LayerNormTanh
from envs.coerce import coerce

_ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
}
_LAYER_NORMED: dict[str, type[torch.nn.Module]] = {
    "tanh": LayerNormTanh,
    "relu": LayerNormReLU,
    "elu": LayerNormELU,
}


def as_agent_config(cfg: AgentConfig | Mapping[str, Any]) -> AgentConfig:
    """An :class:`AgentConfig` from itself, a plain mapping or a Hydra ``DictConfig``."""
    out = coerce(AgentConfig, cfg, "agent")
    # Hydra hands lists over as ListConfig; the policy builders want plain lists.
    out.pi_layers, out.vf_layers = list(out.pi_layers), list(out.vf_layers)
    validate_agent_config(out)
    return out


def algo_class(cfg: AgentConfig | Mapping[str, Any]) -> type[OnPolicyAlgorithm]:
    """``PPO`` or ``RecurrentPPO`` for ``cfg.algo``."""
    return RecurrentPPO if as_agent_config(cfg).algo == "recurrent_ppo" else PPO


def set_torch_threads(n: int) -> None:
    """Set torch's intra-op thread count (see ``AgentConfig.torch_threads``)."""
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def make_agent(
    cfg: AgentConfig | Mapping[str, Any],
    env: VecEnv,
    seed: int | None = None,
    tensorboard_log: str | Path | None = None,
) -> OnPolicyAlgorithm:
    """A fresh ``PPO`` (MlpPolicy) or ``RecurrentPPO`` (MlpLstmPolicy) on ``env``.

    Policy and value function get separate MLPs (``pi_layers``, ``vf_layers``), so a
    regulariser can protect the actor without constraining the critic.

    :param cfg: the agent config (AgentConfig, plain mapping or Hydra ``DictConfig``).
    :param env: the training VecEnv.
    :param seed: seed of the agent's random generators (None: random).
    :param tensorboard_log: TensorBoard log directory (None: no TensorBoard logging).
    :return: the untrained agent.
    :raises ValueError: an unknown field or an out-of-range value in ``cfg``, naming it.
    """
    c = as_agent_config(cfg)
    set_torch_threads(c.torch_threads)
    policy_kwargs: dict[str, Any] = {
        "net_arch": {"pi": list(c.pi_layers), "vf": list(c.vf_layers)},
        "activation_fn": (_LAYER_NORMED if c.layer_norm else _ACTIVATIONS)[c.activation],
        "ortho_init": c.ortho_init,
    }
    if not _is_discrete(env):
        policy_kwargs["log_std_init"] = c.log_std_init
    common: dict[str, Any] = {
        "learning_rate": c.learning_rate,
        "n_steps": c.n_steps,
        "batch_size": c.batch_size,
        "n_epochs": c.n_epochs,
        "gamma": c.gamma,
        "gae_lambda": c.gae_lambda,
        "clip_range": c.clip_range,
        "ent_coef": c.ent_coef,
        "vf_coef": c.vf_coef,
        "max_grad_norm": c.max_grad_norm,
        "target_kl": c.target_kl,
        "seed": seed,
        "device": c.device,
        "verbose": c.verbose,
        "tensorboard_log": None if tensorboard_log is None else str(tensorboard_log),
    }
    if c.algo == "recurrent_ppo":
        policy_kwargs.update(
            lstm_hidden_size=c.lstm_hidden_size,
            n_lstm_layers=c.n_lstm_layers,
            shared_lstm=c.shared_lstm,
            enable_critic_lstm=c.enable_critic_lstm and not c.shared_lstm,
        )
        return RecurrentPPO("MlpLstmPolicy", env, policy_kwargs=policy_kwargs, **common)
    return PPO("MlpPolicy", env, policy_kwargs=policy_kwargs, **common)


def load_agent(
    cfg: AgentConfig | Mapping[str, Any],
    model_zip: bytes | str | Path,
    env: VecEnv,
    tensorboard_log: str | Path | None = None,
) -> OnPolicyAlgorithm:
    """Load a saved agent (parameters and optimizer state) onto ``env`` to continue training.

    :param cfg: the agent config the model was built with (sets the class and device).
    :param model_zip: the bytes of an SB3 ``.zip`` or a path to one.
    :param env: the VecEnv to continue on.
    :param tensorboard_log: TensorBoard log directory (None: no TensorBoard logging).
    :return: the loaded agent.
    """
    c = as_agent_config(cfg)
    set_torch_threads(c.torch_threads)
    src: Any = io.BytesIO(model_zip) if isinstance(model_zip, bytes) else str(model_zip)
    return algo_class(c).load(
        src,
        env=env,
        device=c.device,
        tensorboard_log=None if tensorboard_log is None else str(tensorboard_log),
    )


def _is_discrete(env: VecEnv) -> bool:
    from gymnasium import spaces

    return isinstance(env.action_space, (spaces.Discrete, spaces.MultiDiscrete))
