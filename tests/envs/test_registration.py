"""The registered ids: each passes gymnasium's and stable-baselines3's env checkers, and
``gymnasium.make_vec`` builds the batched vector env."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.gym_vector_env import NavVectorEnv


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_registered_id_passes_both_checkers(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    with warnings.catch_warnings():
        # The continuous action Box is deliberately wider than the force range
        # (saturation penalty), which both checkers only advise against.
        warnings.filterwarnings("ignore", message=".*symmetric and normalized.*")
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    env.close()


def test_mixed_observations_pass_both_checkers() -> None:
    env = gym.make("SynapticNav/Nav-v0", world={"mix_seed": 0})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*symmetric and normalized.*")
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)
    env.close()


def test_expected_ids_are_registered() -> None:
    for name in ("Nav-v0", "NavDiscrete-v0", "NavPOMDP-v0", "NavDrift-v0", "NavNorth-v0"):
        assert f"SynapticNav/{name}" in gym.registry


def test_make_vec_uses_the_batched_vector_env() -> None:
    venv = gym.make_vec("SynapticNav/Nav-v0", num_envs=4, vectorization_mode="vector_entry_point")
    assert isinstance(venv.unwrapped, NavVectorEnv)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (4, *venv.single_observation_space.shape)
    venv.close()
