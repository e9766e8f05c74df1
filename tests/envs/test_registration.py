"""Every registered id passes gymnasium's and stable-baselines3's env checkers."""

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


def test_expected_ids_are_registered() -> None:
    for name in ("Nav-v0", "NavDiscrete-v0", "NavPOMDP-v0", "NavDrift-v0", "NavNorth-v0"):
        assert f"SynapticNav/{name}" in gym.registry


def test_make_vec_uses_the_batched_vector_env() -> None:
    venv = gym.make_vec("SynapticNav/Nav-v0", num_envs=4, vectorization_mode="vector_entry_point")
    assert isinstance(venv.unwrapped, NavVectorEnv)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (4, *venv.single_observation_space.shape)
    venv.close()


def test_envs_imports_neither_continual_nor_agents() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, envs\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('continual', 'agents')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2]
    )
