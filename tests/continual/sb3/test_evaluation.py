"""ContinualEvalCallback and evaluate_episodes, on toy gymnasium envs with known answers and
on the navigation envs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from agents import make_agent
from continual.sb3.evaluation import (
    MATRICES,
    ContinualEvalCallback,
    InfoArrayLogger,
    evaluate_episodes,
    write_matrix_csv,
)
from envs import make_eval_envs, make_vec_env

TASKS = ["north", "southwest"]
SMALL = {"n_steps": 32, "batch_size": 64, "n_epochs": 1, "pi_layers": [32], "vf_layers": [32]}


class Countdown(gym.Env):
    """Episodes of ``length`` steps with reward 1 per step; the last step reports
    ``is_success`` and ``progress``, and ``mixture`` is in every step's info."""

    def __init__(self, length: int, success: bool, progress: float | None = None) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.length, self.success, self.progress = length, success, progress
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        info: dict = {"mixture": np.array([0.25, 0.75])}
        if done:
            info["is_success"] = self.success
            if self.progress is not None:
                info["progress"] = self.progress
        return np.zeros(2, np.float32), 1.0, done, False, info


def toy_env(length: int, success: bool, progress: float | None = None, n: int = 2) -> DummyVecEnv:
    return DummyVecEnv([lambda: Countdown(length, success, progress) for _ in range(n)])


@pytest.fixture
def toy_model() -> PPO:
    model = PPO("MlpPolicy", toy_env(3, True), n_steps=16, batch_size=16, n_epochs=1, seed=0)
    model.set_logger(configure(None, [""]))
    return model


def test_evaluate_episodes_averages_success_progress_and_return(toy_model) -> None:
    r = evaluate_episodes(toy_model, toy_env(3, True, 0.5, n=3), 7, deterministic=True, seed=0)
    assert r == {"success": 1.0, "progress": 0.5, "return": 3.0}
    r = evaluate_episodes(toy_model, toy_env(4, False), 2, deterministic=False)
    assert r["success"] == 0.0 and r["return"] == 4.0 and math.isnan(r["progress"])
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate_episodes(toy_model, toy_env(3, True), 0, deterministic=True)


def test_matrices_and_metrics_of_known_rows(toy_model) -> None:
    envs = {"a": toy_env(3, True, 1.0), "b": toy_env(5, False, 0.2)}
    cb = ContinualEvalCallback(envs, eval_freq=10, n_eval_episodes=2, stochastic=False)
    cb.init_callback(toy_model)
    cb.evaluate()
    assert cb.eval_steps == [0]
    np.testing.assert_array_equal(cb.matrix("success"), [[1.0, 0.0]])
    np.testing.assert_array_equal(cb.matrix("return"), [[3.0, 5.0]])
    np.testing.assert_array_equal(cb.matrix("progress"), [[1.0, 0.2]])
    assert np.all(np.isnan(cb.matrix("success_stochastic")))
    assert cb.windows() == [(0, 0), (0, 0)]  # no windows given: the evaluated span
    with pytest.raises(ValueError, match="unknown matrix"):
        cb.matrix("accuracy")

    # A history where task a is learned in its window and forgotten in b's.
    history = {
        "eval_steps": [0, 10, 20],
        "rows": {m: [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]] for m in MATRICES},
        "task_names": ["a", "b"],
    }
    windowed = ContinualEvalCallback(
        envs, eval_freq=10, n_eval_episodes=2, task_windows=[(0, 10), (10, 20)]
    )
    windowed.load_state_dict(history)
    m = windowed.compute_metrics()
    assert m["per_task"]["a"]["plasticity"] == 1.0 and m["per_task"]["a"]["final"] == 0.0
    assert m["per_task"]["a"]["forgetting"] == 1.0
    assert m["per_task"]["b"]["forgetting"] is None  # the last task has no later window
    assert m["average_performance"] == 0.5 and m["average_forgetting"] == 1.0
    assert m["eval_steps"] == [0, 10, 20] and m["n_evals"] == 3
    assert m["final_return"] == 0.5
    # a reaches 0.8 10 steps into its window (from scratch), b 10 steps into its own: cost 1
    assert m["relearn"]["steps_to_threshold"] == {"a": 10.0, "b": 10.0}
    assert m["relearn"]["cost"] == {"a": 1.0, "b": 1.0} and m["median_relearn_cost"] == 1.0


def test_outputs_are_written_completely(tmp_path: Path) -> None:
    steps = np.array([0, 10])
    matrices = {"success": np.array([[0.0, 1.0], [1.0, 0.5]]), "return": np.ones((2, 2))}
    path = tmp_path / "m.csv"
    write_matrix_csv(path, steps, ["a", "b"], matrices)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["step", "success/a", "success/b", "return/a", "return/b"]
    assert rows[2] == ["10", "1", "0.5", "1", "1"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_info_array_logger_records_the_stream_weights(tmp_path: Path) -> None:
    model = PPO("MlpPolicy", toy_env(3, True), n_steps=8, batch_size=16, n_epochs=1, seed=0)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(32, callback=InfoArrayLogger("mixture", "stream/weight_"))
    rows = list(csv.DictReader((tmp_path / "progress.csv").open()))
    assert float(rows[-1]["stream/weight_0"]) == 0.25
    assert float(rows[-1]["stream/weight_1"]) == 0.75


@pytest.fixture
def model() -> PPO:
    env = make_vec_env({"schedule": [(t, 2048) for t in TASKS]}, n_envs=4, seed=0)
    m = make_agent(SMALL, env, seed=0)
    m.set_logger(configure(None, [""]))
    return m


def test_evaluation_is_repeatable_and_leaves_training_rng_alone(model: PPO) -> None:
    envs = make_eval_envs(TASKS, n_envs=3, seed=0)
    cb = ContinualEvalCallback(envs, eval_freq=100, n_eval_episodes=5, seed=0)
    cb.init_callback(model)
    state = torch.get_rng_state()
    cb.evaluate()
    cb.evaluate()
    assert torch.equal(state, torch.get_rng_state())
    for name in ("success", "success_stochastic", "progress", "return"):
        m = cb.matrix(name)
        assert m.shape == (2, 2)
        np.testing.assert_array_equal(m[0], m[1])  # same policy, same seeded episodes
    r = evaluate_episodes(model, envs["north"], 5, deterministic=True, seed=1)
    assert set(r) == {"success", "progress", "return"} and 0 <= r["success"] <= 1
    assert 0 <= r["progress"] <= 1


def test_eval_grid_state_roundtrip_and_metrics(model: PPO, tmp_path: Path) -> None:
    envs = make_eval_envs(TASKS, n_envs=2, seed=0)
    cb = ContinualEvalCallback(
        envs,
        eval_freq=256,
        n_eval_episodes=2,
        task_windows=[(0, 512), (512, 1024)],
        stochastic=False,
    )
    model.learn(1024, callback=cb)
    # start, every 256 steps on the grid (updates of 4 x 32 = 128 steps), end
    assert cb.eval_steps == [0, 256, 512, 768, 1024]
    assert np.all(np.isnan(cb.matrix("success_stochastic")))
    m = cb.final_metrics
    assert m is not None and m["task_names"] == TASKS and m["n_evals"] == 5
    assert m["per_task"]["southwest"]["forgetting"] is None
    cb2 = ContinualEvalCallback(envs, eval_freq=256, n_eval_episodes=2)
    cb2.load_state_dict(cb.state_dict())
    np.testing.assert_array_equal(cb2.matrix(), cb.matrix())
    paths = cb.save_outputs(tmp_path)
    assert all(p.is_file() for p in paths.values())
    with pytest.raises(ValueError, match="tasks"):
        ContinualEvalCallback(make_eval_envs(["south"], 1), 10, 1).load_state_dict(cb.state_dict())
    with pytest.raises(ValueError, match="eval_freq"):
        ContinualEvalCallback(envs, eval_freq=0, n_eval_episodes=1)
    with pytest.raises(ValueError, match="task_windows"):
        ContinualEvalCallback(envs, eval_freq=1, n_eval_episodes=1, task_windows=[(0, 1)])
