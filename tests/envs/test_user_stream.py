"""Streams over third-party Gymnasium envs (CartPole, MiniGrid): the checkers, the mixture and
drift the stream promises, seeding, and the errors for bad input."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import EnvTask, StreamSpec, UserStreamEnv, UserStreamVectorEnv
from envs.adapters import require_minigrid
from envs.user_stream import UserStreamCore, name_env_tasks

SHORT = {"max_episode_steps": 5}  # 5-step episodes: many task draws in few env steps


def cartpole_tasks(**make_kwargs: int) -> dict[str, EnvTask]:
    return {
        "a": EnvTask("CartPole-v1", {"force_mag": 10.0}, make_kwargs=make_kwargs),
        "b": EnvTask("CartPole-v1", {"force_mag": -10.0, "length": 1.0}, make_kwargs=make_kwargs),
    }


DRIFT = [{"param": "length", "process": "sine", "bound": 0.2, "period": 700, "update": "step"}]


def random_actions(n: int, steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(steps, n))


def episode_starts(core: UserStreamCore, steps: int) -> list[tuple[int, int]]:
    """(stream time, task) of every episode started while stepping ``core``."""
    core.reset()
    starts = [(core.t, int(k)) for k in core.task]
    for a in random_actions(core.n, steps):
        _, _, _, _, _, ended = core.step(a)
        starts += [(core.t, int(core.task[i])) for i in ended]
    return starts


def test_gymnasium_check_env_on_a_single_env_view() -> None:
    stream = StreamSpec(schedule=[("a", 300), ("b", 300)], blur=200, drift=DRIFT)
    env = UserStreamEnv(cartpole_tasks(), stream, seed=0, observe=["force_mag"])
    check_env(env, skip_render_check=True)
    check_env(UserStreamEnv(cartpole_tasks()), skip_render_check=True)


def test_gymnasium_check_env_on_minigrid() -> None:
    require_minigrid()
    from minigrid.wrappers import ImgObsWrapper

    def empty() -> gym.Env:
        return ImgObsWrapper(gym.make("MiniGrid-Empty-5x5-v0"))

    tasks = {"short": EnvTask(empty, {"max_steps": 20}), "long": EnvTask(empty)}
    stream = StreamSpec(
        schedule=[("short", 200), ("long", 200)],
        drift=[{"param": "max_steps", "process": "sine", "bound": 5, "period": 100}],
    )
    env = UserStreamEnv(tasks, stream, seed=0)
    check_env(env, skip_render_check=True)
    core = env.core
    env.reset(seed=1)
    for _ in range(300):
        _, _, term, trunc, info = env.step(env.action_space.sample())
        k = info["task_id"]
        expected = (20 if k == 0 else 100) + info["drift"][0]
        assert core.env(0).unwrapped.max_steps == round(expected)
        if term or trunc:
            env.reset()


def test_task_shares_follow_the_ramp() -> None:
    blur, n = 4000, 16
    stream = StreamSpec(schedule=[("a", 6000), ("b", 6000)], blur=blur, ramp="linear")
    core = UserStreamCore(cartpole_tasks(**SHORT), stream, n_envs=n, seed=3)
    starts = np.array(episode_starts(core, 12_000 // n))
    edges = np.arange(4000, 8001, 1000)
    for lo, hi in itertools.pairwise(edges):
        in_bin = (starts[:, 0] >= lo) & (starts[:, 0] < hi)
        share_b = starts[in_bin, 1].mean()
        expected = np.mean([core.stream.mixture(t)[1] for t in range(lo, hi, 50)])
        assert in_bin.sum() > 150
        assert share_b == pytest.approx(expected, abs=0.08), (lo, hi)


def test_blur_zero_is_a_hard_switch() -> None:
    stream = StreamSpec(schedule=[("a", 1000), ("b", 1000)], blur=0)
    core = UserStreamCore(cartpole_tasks(**SHORT), stream, n_envs=8, seed=0)
    starts = np.array(episode_starts(core, 2000 // 8))
    assert (starts[starts[:, 0] < 1000, 1] == 0).all()
    assert (starts[starts[:, 0] >= 1000, 1] == 1).all()
    assert len(starts) > 300


@pytest.mark.parametrize("update", ["episode", "step"])
def test_drift_stays_in_bounds_and_reaches_the_env(update: str) -> None:
    drift = [{"param": "length", "process": "ou", "bound": 0.2, "sigma": 0.02, "update": update}]
    stream = StreamSpec(schedule=[("a", 1500), ("b", 1500)], blur=500, drift=drift)
    vec = UserStreamVectorEnv(cartpole_tasks(), stream, num_envs=4, seed=0)
    vec.reset(seed=0)
    core = vec.core
    seen = []
    for a in random_actions(4, 600):
        vec.step(a)
        for i in range(4):
            base = core.env(i).unwrapped
            canonical = 0.5 if core.task[i] == 0 else 1.0
            # the value the episode runs with, read back from the env
            assert base.length == pytest.approx(canonical + core.drift_rows[i, 0])
            assert canonical - 0.2 <= base.length <= canonical + 0.2
            assert base.polemass_length == pytest.approx(base.masspole * base.length)
            assert base.force_mag == (10.0 if core.task[i] == 0 else -10.0)
            seen.append(core.drift_rows[i, 0])
    assert np.ptp(seen) > 0.05  # it did drift


def test_seeded_runs_are_identical_and_seed_restarts_the_stream() -> None:
    def run(seed: int) -> list[np.ndarray]:
        stream = StreamSpec(schedule=[("a", 400), ("b", 400)], blur=200, drift=DRIFT)
        vec = UserStreamVectorEnv(cartpole_tasks(), stream, num_envs=3, seed=seed)
        out = []
        for _ in range(2):  # the second reset(seed) must replay the first
            obs, info = vec.reset(seed=seed)
            out += [obs, info["task_id"]]
            for a in random_actions(3, 200):
                obs, rew, term, _, info = vec.step(a)
                out += [obs, rew, term, info["task_id"], info["drift"]]
            assert vec.core.t == 600
        half = len(out) // 2
        for x, y in zip(out[:half], out[half:], strict=True):
            np.testing.assert_array_equal(x, y)
        return out

    a, b, c = run(5), run(5), run(6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_vector_env_final_info_on_same_step_autoreset() -> None:
    stream = StreamSpec(schedule=[("a", 100)])
    vec = UserStreamVectorEnv(cartpole_tasks(**SHORT), stream, num_envs=2, seed=0)
    vec.reset(seed=0)
    for _ in range(4):
        _, _, _, trunc, info = vec.step(np.zeros(2, dtype=np.int64))
        assert "final_obs" not in info
    _, _, term, trunc, info = vec.step(np.zeros(2, dtype=np.int64))
    assert info["_final_obs"].all()
    assert info["final_info"]["is_success"].tolist() == (trunc & ~term).tolist()


# ---------------------------------------------------------------------- bad input
def test_mismatched_spaces_name_both() -> None:
    tasks = {"cart": EnvTask("CartPole-v1"), "acro": EnvTask("Acrobot-v1")}
    with pytest.raises(ValueError) as err:
        UserStreamCore(tasks, StreamSpec(schedule=[("cart", 10), ("acro", 10)]))
    msg = str(err.value)
    assert "tasks must share their observation_space: task 'cart' has Box(" in msg
    assert "task 'acro' has Box(" in msg and "(6,)" in msg and "(4,)" in msg


def test_unknown_env_id() -> None:
    tasks = {"x": EnvTask("CartPol-v1")}
    with pytest.raises(
        ValueError,
        match=r"task 'x': env='CartPol-v1' is not a registered "
        r"Gymnasium id .*pass a factory as env",
    ):
        UserStreamCore(tasks, StreamSpec(schedule=[("x", 10)]))


def test_unknown_drift_parameter() -> None:
    stream = StreamSpec(schedule=[("a", 10)], drift=[{"param": "wind"}])
    with pytest.raises(
        ValueError,
        match=r"DriftSpec.param='wind': parameter 'wind' is unknown "
        r"to ClassicControlAdapter for CartPole-v1; known: \[",
    ):
        UserStreamCore(cartpole_tasks(), stream)


def test_unknown_task_parameter() -> None:
    tasks = {"a": EnvTask("CartPole-v1", {"pole_colour": 1.0})}
    with pytest.raises(ValueError, match=r"tasks\['a'\].pole_colour: parameter 'pole_colour'"):
        UserStreamCore(tasks, StreamSpec(schedule=[("a", 10)]))


def test_task_value_out_of_range() -> None:
    tasks = {"a": EnvTask("CartPole-v1", {"length": -0.5})}
    with pytest.raises(
        ValueError,
        match=r"tasks\['a'\].length=-0.5 is out of range; allowed: "
        r"\[0.05, 5\]",
    ):
        UserStreamCore(tasks, StreamSpec(schedule=[("a", 10)]))


def test_drift_out_of_range() -> None:
    stream = StreamSpec(schedule=[("a", 10)], drift=[{"param": "length", "bound": 0.5}])
    with pytest.raises(
        ValueError,
        match=r"drift of 'length' reaches \[0, 1\] in task 'a', "
        r"outside the allowed \[0.05, 5\]; lower DriftSpec.bound",
    ):
        UserStreamCore({"a": EnvTask("CartPole-v1", {"length": 0.5})}, stream)


def test_other_bad_input() -> None:
    with pytest.raises(ValueError, match=r"EnvTask.success='often' is unknown"):
        EnvTask("CartPole-v1", success="often")
    with pytest.raises(ValueError, match=r"tasks \['c'\] are not defined"):
        UserStreamCore(cartpole_tasks(), StreamSpec(schedule=[("c", 10)]))
    with pytest.raises(ValueError, match=r"'gravity' is not a parameter of any task or drift"):
        UserStreamCore(cartpole_tasks(), StreamSpec(schedule=[("a", 10)]), observe=["gravity"])
    with pytest.raises(ValueError, match=r"give them distinct 'name' keys"):
        name_env_tasks([{"env": "CartPole-v1", "name": "a"}, {"env": "Acrobot-v1", "name": "a"}])


def test_yaml_task_names() -> None:
    names, tasks = name_env_tasks(
        [
            {"env": "CartPole-v1", "length": 0.5},
            {"env": "CartPole-v1", "name": "swap", "force_mag": -10},
        ]
    )
    assert names == ["CartPole-v1[length=0.5]", "swap"]
    assert tasks["swap"].params == {"force_mag": -10.0}
