"""The ``envs`` package: what importing it loads and registers, and its public names."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import envs

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> None:
    """Run ``code`` in a fresh interpreter from the repository root (fails on any error)."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_import_does_not_load_stable_baselines3_but_registers_the_ids() -> None:
    _run(
        """
        import sys
        import gymnasium as gym
        import envs
        assert "stable_baselines3" not in sys.modules
        assert all(env_id in gym.registry for env_id in envs.ENV_IDS)
        env = gym.make("SynapticNav/NavDrift-v0")
        env.reset(seed=0)
        env.step(env.action_space.sample())
        venv = gym.make_vec(
            "SynapticNav/Nav-v0", num_envs=2, vectorization_mode="vector_entry_point"
        )
        venv.reset(seed=0)
        assert "stable_baselines3" not in sys.modules
        """
    )


def test_import_loads_neither_continual_nor_agents() -> None:
    _run(
        """
        import sys
        import envs
        bad = [m for m in sys.modules if m.split(".")[0] in ("continual", "agents")]
        assert not bad, bad
        """
    )


def test_sb3_names_load_on_first_use() -> None:
    _run(
        """
        import sys
        from envs import NavVecEnv, make_eval_envs, make_vec_env
        assert "stable_baselines3" in sys.modules
        from envs.sb3_vec_env import NavVecEnv as defined
        assert NavVecEnv is defined
        assert isinstance(make_vec_env({"schedule": [("north", 10)]}, n_envs=1), NavVecEnv)
        assert set(make_eval_envs(["north"], n_envs=1)) == {"north"}
        """
    )


def test_all_names_resolve() -> None:
    for name in envs.__all__:
        assert getattr(envs, name) is not None
    assert set(envs.__all__) <= set(dir(envs))


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchName"):
        envs.NoSuchName  # noqa: B018
