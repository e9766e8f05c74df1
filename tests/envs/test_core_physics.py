"""Dynamics and rewards of the core."""

import numpy as np
import pytest

from envs import NavVecEnv, StreamSpec, TaskSpec, make_vec_env
from envs.core import DIRECTIONS_8
from envs.tasks import TASKS

QUIET = {"sensor_noise": 0.0, "action_noise": 0.0}


def _env(task: str = "north", n: int = 2, **world):
    return make_vec_env(
        StreamSpec(schedule=[(task, 10**6)]), n_envs=n, seed=0, world={**QUIET, **world}
    )


def test_walls_clamp_and_stop_normal_velocity() -> None:
    env = _env(max_episode_steps=500)
    env.reset()
    for _ in range(80):
        env.step(np.array([[1.0, 0.2], [-1.0, 0.0]], dtype=np.float32))
    c = env.core
    assert c.pos[0, 0] == pytest.approx(1.0) and c.vel[0, 0] == 0.0
    assert c.pos[1, 0] == pytest.approx(-1.0)
    assert c.vel[0, 1] != 0.0  # tangential motion continues
    assert (np.abs(c.pos) <= 1.0).all()


def test_speed_limit_and_terminal_speed() -> None:
    env = _env(max_episode_steps=500, max_speed=0.3)
    env.reset()
    c = env.core
    c.pos[:] = (-0.9, -0.9)
    for _ in range(10):
        env.step(np.array([[1.0, 1.0], [1.0, 0.0]], dtype=np.float32))
        assert (np.hypot(*c.vel.T) <= 0.3 + 1e-12).all()


def test_solid_circles_block_and_landmarks_do_not() -> None:
    spec = TASKS["pillars"]
    pillar = spec.landmarks[0]
    env = _env("pillars", n=1, max_episode_steps=500)
    env.reset()
    c = env.core
    c.pos[0] = (pillar.x - 0.3, pillar.y)
    for _ in range(40):
        env.step(np.array([[1.0, 0.0]], dtype=np.float32))
        assert np.hypot(*(c.pos[0] - (pillar.x, pillar.y))) >= pillar.radius - 1e-9
    assert c.pos[0, 0] < pillar.x
    # a landmark-only circle is passed through
    env2 = _env("north", n=1, max_episode_steps=500)
    env2.reset()
    lm = TASKS["north"].landmarks[0]
    env2.core.pos[0] = (lm.x - 0.3, lm.y)
    for _ in range(15):
        env2.step(np.array([[0.0, 0.0]], dtype=np.float32))
    env2.core.vel[0] = (0.5, 0.0)
    for _ in range(4):
        env2.step(np.array([[1.0, 0.0]], dtype=np.float32))
    assert env2.core.pos[0, 0] > lm.x - 0.3 + 0.15


def test_saturation_penalty_on_excess_action() -> None:
    rewards = []
    for a in (1.0, 2.0):
        env = _env(n=1)
        env.reset()
        _, r, _, _ = env.step(np.array([[a, 0.0]], dtype=np.float32))
        rewards.append(float(r[0]))
    assert rewards[0] - rewards[1] == pytest.approx(0.1 * 1.0**2, abs=1e-6)


def test_shaping_is_potential_based() -> None:
    env = _env(n=1, max_episode_steps=1000)
    env.reset()
    c = env.core
    d0 = np.hypot(*(c.pos[0] - c.goal[0]))
    total = 0.0
    rng = np.random.default_rng(0)
    for _ in range(30):
        _, r, done, _ = env.step(rng.uniform(-1, 1, (1, 2)).astype(np.float32))
        assert not done[0]
        total += float(r[0])
    d1 = np.hypot(*(c.pos[0] - c.goal[0]))
    assert total == pytest.approx(2.0 * (d0 - d1), abs=1e-4)


def test_discrete_actions_move_in_eight_directions() -> None:
    for k in range(8):
        env = _env(n=1, discrete_actions=True, max_episode_steps=1000)
        env.reset()
        c = env.core
        start = c.pos[0].copy()
        for _ in range(3):
            env.step(np.array([k]))
        moved = c.pos[0] - start
        np.testing.assert_allclose(moved / np.linalg.norm(moved), DIRECTIONS_8[k], atol=1e-6)


def test_wind_and_friction() -> None:
    windy = TaskSpec(
        "w", goal=(0.0, 0.8), wind=(0.5, 0.0), friction=1.0, action_noise=0.0, start_radius=0.0
    )
    env = NavVecEnv(
        StreamSpec(schedule=[("w", 10**6)]), n_envs=1, seed=0, world=QUIET, tasks={"w": windy}
    )
    env.reset()
    for _ in range(20):
        env.step(np.zeros((1, 2), dtype=np.float32))
    # v_k = wind/friction * (1 - (1 - friction*dt)^k): approaching the terminal speed 0.5
    assert env.core.vel[0, 0] == pytest.approx(0.5 * (1 - 0.9**20))
    assert env.core.vel[0, 1] == 0.0
