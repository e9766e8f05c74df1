"""The non-finite guard names what went wrong and where the last good checkpoint is."""

from __future__ import annotations

import math

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure

from agents import make_agent
from agents.guard import NonFiniteError, NonFiniteGuard
from envs import make_vec_env


@pytest.fixture
def model() -> PPO:
    env = make_vec_env({"schedule": [("north", 2048)]}, n_envs=2, seed=0)
    m = make_agent({"n_steps": 32, "batch_size": 64, "pi_layers": [32], "vf_layers": [32]}, env)
    m.set_logger(configure(None, [""]))
    return m


def test_guard_names_non_finite_parameters_and_scalars(model: PPO) -> None:
    extra = {"omega": torch.ones(3)}
    guard = NonFiniteGuard(lambda: extra, lambda: "checkpoint at X")
    guard.init_callback(model)
    assert guard.find_non_finite() == []
    model.logger.record("train/loss", math.inf)
    extra["omega"][1] = math.nan
    with torch.no_grad():
        next(model.policy.parameters()).view(-1)[0] = math.nan
    with pytest.raises(NonFiniteError) as e:
        guard.check()
    msg = str(e.value)
    assert "policy parameter" in msg and "train/loss=inf" in msg and "omega" in msg
    assert "checkpoint at X" in msg
