"""Small SB3 models on gymnasium's own environments, for the callback tests."""

from __future__ import annotations

from sb3_contrib import RecurrentPPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env


def make_model(algo: str, env_id: str = "Pendulum-v1", seed: int = 0, **kwargs):
    env = make_vec_env(env_id, n_envs=2, seed=seed)
    if algo == "ppo":
        return PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=seed, **kwargs)
    if algo == "a2c":
        return A2C("MlpPolicy", env, n_steps=16, seed=seed, **kwargs)
    return RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=32,
        batch_size=32,
        n_epochs=2,
        seed=seed,
        policy_kwargs={"lstm_hidden_size": 16, "net_arch": [32]},
        **kwargs,
    )
