"""NavVecEnv (the SB3 VecEnv) and the factories that build it."""

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecMonitor

from envs import NavVecEnv, StreamSpec, TaskSpec, WorldConfig, make_vec_env

QUIET = {"sensor_noise": 0.0, "action_noise": 0.0}


def test_time_limit_autoreset_same_step() -> None:
    env = make_vec_env(
        StreamSpec(schedule=[("north", 10**6)]),
        n_envs=4,
        seed=0,
        world={**QUIET, "max_episode_steps": 5},
    )
    obs0 = env.reset()
    zero = np.zeros((4, 2), dtype=np.float32)
    for _ in range(4):
        obs, _, dones, infos = env.step(zero)
        assert not dones.any()
        assert all("terminal_observation" not in i for i in infos)
    obs, _rewards, dones, infos = env.step(zero)
    assert dones.all()
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        assert info["is_success"] is False
        assert 0.0 <= info["progress"] <= 1.0
        # without forces or noise the agent stays at its start until the time limit
        np.testing.assert_allclose(info["terminal_observation"][:2], obs0[i, :2], atol=1e-6)
        # the returned observation is the new episode's first one
        np.testing.assert_allclose(obs[i, :2], env.core.pos[i], atol=1e-6)
        assert env.core.ep_t[i] == 0
    assert env.t == 5 * 4


def test_success_terminates_with_bonus() -> None:
    near = TaskSpec(
        "near",
        goal=(0.3, 0.0),
        goal_radius=0.1,
        start=(0.0, 0.0),
        start_radius=0.0,
        friction=1.0,
        action_noise=0.0,
    )
    env = NavVecEnv(
        StreamSpec(schedule=[("near", 10**6)]), n_envs=2, seed=0, world=QUIET, tasks={"near": near}
    )
    env.reset()
    push = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    for _ in range(100):
        _obs, rewards, dones, infos = env.step(push)
        if dones[0]:
            break
    assert dones[0] and not dones[1]
    assert infos[0]["is_success"] is True and infos[0]["TimeLimit.truncated"] is False
    assert infos[0]["progress"] == pytest.approx(1.0)
    assert rewards[0] > 1.0  # success bonus plus the last shaping step


def test_info_keys_and_shared_mixture() -> None:
    env = make_vec_env(
        StreamSpec.joint(["north", "south"], 10**6, drift=[{"param": "wind"}]), n_envs=8, seed=1
    )
    env.reset()
    _, _, _, infos = env.step(np.zeros((8, 2), dtype=np.float32))
    assert env.task_names == ["north", "south"]
    assert env.drift_param_names == ["wind_x", "wind_y"]
    mix = infos[0]["mixture"]
    for info in infos:
        assert info["mixture"] is mix
        assert info["task_id"] in (0, 1)
        assert info["dominant_task_id"] == 0
        assert info["drift"].shape == (2,)
    np.testing.assert_allclose(mix, [0.5, 0.5])
    with pytest.raises(ValueError):
        mix[0] = 1.0  # shared, so read-only


def test_attr_methods_and_render() -> None:
    env = make_vec_env(StreamSpec(schedule=[("north", 100)]), n_envs=3, seed=0)
    env.reset()
    assert env.get_attr("render_mode") == ["rgb_array"] * 3
    assert [int(x) for x in env.get_attr("task")] == [0, 0, 0]
    pos = env.get_attr("pos", indices=[1])
    np.testing.assert_array_equal(pos[0], env.core.pos[1])
    env.set_attr("pos", np.array([0.5, 0.5]), indices=1)
    np.testing.assert_array_equal(env.core.pos[1], [0.5, 0.5])
    with pytest.raises(ValueError, match="shared"):
        env.set_attr("render_mode", None, indices=[0])
    assert env.env_is_wrapped(VecMonitor) == [False] * 3
    frames = env.env_method("render", indices=[0, 2])
    assert len(frames) == 2 and frames[0].shape == (256, 256, 3)
    assert env.env_method("mixture")[0].tolist() == [1.0]
    assert env.seed(7) == [7, 8, 9]
    tiled = env.render()
    assert tiled.dtype == np.uint8 and tiled.ndim == 3


def test_vec_monitor_wrapping_records_episodes() -> None:
    env = VecMonitor(
        make_vec_env(
            StreamSpec(schedule=[("north", 10**6)]), 4, seed=0, world={"max_episode_steps": 3}
        )
    )
    env.reset()
    for _ in range(3):
        _, _, dones, infos = env.step(np.zeros((4, 2), dtype=np.float32))
    assert dones.all() and all("episode" in i for i in infos)


def test_envs_of_one_core_can_run_different_tasks() -> None:
    env = make_vec_env(
        StreamSpec.joint(["north", "southwest", "southeast"], 10**6),
        64,
        seed=0,
        world={"sensor_noise": 0.0},
    )
    obs = env.reset()
    c = env.core
    R, lm0 = c.n_rays, c._lm0
    for i in range(64):
        kind = {"north": 0, "southwest": 1, "southeast": 2}[env.task_names[c.task[i]]]
        blocks = obs[i, lm0 : lm0 + c.n_channels * R].reshape(c.n_channels, R)
        active = np.flatnonzero(blocks.max(axis=1) > 0)
        assert active.tolist() in ([kind], [])
    assert len(set(c.task.tolist())) == 3


def test_world_config_changes_shapes() -> None:
    env = make_vec_env(
        StreamSpec(schedule=[("north", 100)]),
        2,
        seed=0,
        world=WorldConfig(n_rays=8, landmark_channels=1, wall_lidar=False, discrete_actions=True),
    )
    assert env.observation_space.shape == (4 + 8,)
    assert env.action_space.n == 8
    env.reset()
    obs, *_ = env.step(np.array([0, 4]))
    assert obs.shape == (2, 12)
