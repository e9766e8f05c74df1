"""The SB3 VecEnv over third-party envs: SB3's checker, SB3's conventions, the navigation
envs' info keys, and save/restore."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecMonitor

from envs import (
    EnvTask,
    StreamSpec,
    UserStreamEnv,
    UserStreamVecEnv,
    make_user_eval_envs,
    make_user_vec_env,
    make_vec_env,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "user-envs.md"
TASKS = {
    "a": EnvTask("CartPole-v1", {"force_mag": 10.0}),
    "b": EnvTask("CartPole-v1", {"force_mag": -10.0, "length": 1.0}),
}
DRIFT = [{"param": "gravity", "process": "ou", "bound": 1.0, "sigma": 0.05, "update": "step"}]


def stream(**kwargs: object) -> StreamSpec:
    return StreamSpec(schedule=[("a", 600), ("b", 600)], blur=400, drift=DRIFT, **kwargs)


def test_sb3_check_env_on_a_single_env_view() -> None:
    check_env(UserStreamEnv(TASKS, stream(), seed=0, observe=["force_mag"]), warn=True)


def test_same_info_keys_as_the_navigation_env() -> None:
    nav = make_vec_env({"schedule": [("north", 100)], "drift": [{"param": "goal"}]}, n_envs=2)
    env = UserStreamVecEnv(TASKS, stream(), n_envs=2, seed=0)
    for venv in (nav, env):
        venv.reset()
    nav_info = nav.step(np.zeros((2, 2), dtype=np.float32))[3][0]
    info = env.step(np.zeros(2, dtype=np.int64))[3][0]
    assert set(nav_info) <= set(info)
    assert info["mixture"].shape == (2,) and info["drift"].shape == (1,)
    assert env.reset_infos[0]["task_id"] in (0, 1)
    assert env.drift_param_names == ["gravity"]


def test_same_step_autoreset_and_terminal_observation() -> None:
    tasks = {"a": EnvTask("CartPole-v1", make_kwargs={"max_episode_steps": 5})}
    env = VecMonitor(UserStreamVecEnv(tasks, StreamSpec(schedule=[("a", 100)]), n_envs=2, seed=0))
    first = env.reset()
    for _ in range(4):
        obs, _, done, infos = env.step(np.ones(2, dtype=np.int64))
        assert not done.any()
    obs, _, done, infos = env.step(np.ones(2, dtype=np.int64))
    for i in range(2):
        info = infos[i]
        if info["TimeLimit.truncated"]:  # survived the 5 steps: a success for CartPole
            assert done[i] and info["is_success"] and info["episode"]["l"] == 5
            assert not np.array_equal(info["terminal_observation"], obs[i])
            assert np.abs(obs[i]).max() <= 0.05  # CartPole's reset state
    assert first.shape == (2, 4)
    assert env.env_is_wrapped(Monitor) == [False, False]
    assert env.get_attr("spec")[0].id == "CartPole-v1"


def test_save_and_restore_continue_exactly() -> None:
    def make() -> UserStreamVecEnv:
        return UserStreamVecEnv(TASKS, stream(), n_envs=3, seed=4, observe=["force_mag"])

    actions = np.random.default_rng(0).integers(0, 2, size=(400, 3))
    a = make()
    a.reset()
    for act in actions[:250]:
        a.step(act)
    state = pickle.loads(pickle.dumps(a.get_stream_state()))  # as in a checkpoint file
    b = make()
    b.reset()
    b.set_stream_state(state)
    assert b.t == a.t == 750
    for act in actions[250:]:
        oa, ra, da, ia = a.step(act)
        ob, rb, db, ib = b.step(act)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(da, db)
        assert [i["task_id"] for i in ia] == [i["task_id"] for i in ib]
        np.testing.assert_array_equal(ia[0]["drift"], ib[0]["drift"])
        assert b.core.env(0).unwrapped.gravity == a.core.env(0).unwrapped.gravity


def test_seed_then_reset_restarts_the_stream() -> None:
    env = UserStreamVecEnv(TASKS, stream(), n_envs=2, seed=0)
    env.seed(9)
    first = env.reset()
    for _ in range(10):
        env.step(np.zeros(2, dtype=np.int64))
    env.seed(9)
    np.testing.assert_array_equal(env.reset(), first)
    assert env.t == 0
    env.reset()  # a plain reset keeps stream time
    assert env.t == 0


def test_eval_envs_run_each_task_canonically() -> None:
    envs = make_user_eval_envs(TASKS, ["a", "b"], n_envs=2, seed=0, observe=["force_mag"])
    for k, (name, env) in enumerate(envs.items()):
        env.reset()
        info = env.step(np.zeros(2, dtype=np.int64))[3][0]
        assert info["task_id"] == k and info["drift"].shape == (0,)
        assert env.core.env(0).unwrapped.force_mag == TASKS[name].params["force_mag"]
    train = make_user_vec_env(TASKS, stream(), n_envs=2, observe=["force_mag"])
    assert train.observation_space == envs["a"].observation_space


def test_the_docs_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/user-envs.md's first Python block, with its training shortened."""
    text = DOC.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    assert 10 <= len(code.strip().splitlines()) <= 20
    code = code.replace("total_timesteps=40_000", "total_timesteps=256")
    code = code.replace('PPO("MlpPolicy", env', 'PPO("MlpPolicy", env, n_steps=32, batch_size=64')
    scope: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), scope)
    assert scope["model"].num_timesteps >= 256  # type: ignore[attr-defined]
