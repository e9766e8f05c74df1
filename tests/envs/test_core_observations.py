"""Observation layout: lidar readings, channels, sensor noise, POMDP cue, task one-hot."""

import math

import numpy as np
import pytest

from envs import TASKS, StreamSpec, WorldConfig, make_vec_env
from envs.tasks import N_KINDS


def _reference_lidar(pos, circles, n_rays, lidar_range, n_channels):
    """Scalar ray casting: (wall readings (R,), landmark readings (C, R))."""
    wall = np.zeros(n_rays)
    marks = np.zeros((n_channels, n_rays))
    for r in range(n_rays):
        a = 2 * math.pi * (r + 0.5) / n_rays
        u = (math.cos(a), math.sin(a))
        d_wall = min((math.copysign(1.0, u[k]) - pos[k]) / u[k] for k in range(2))
        for x, y, rad, kind, solid in circles:
            cx, cy = x - pos[0], y - pos[1]
            b = cx * u[0] + cy * u[1]
            c2 = cx * cx + cy * cy - rad * rad
            disc = b * b - c2
            if c2 < 0:
                d = 0.0
            elif disc >= 0 and b > 0:
                d = b - math.sqrt(disc)
            else:
                continue
            prox = max(0.0, 1 - d / lidar_range)
            if solid:
                d_wall = min(d_wall, d)
            else:
                ch = kind % n_channels
                marks[ch, r] = max(marks[ch, r], prox)
        wall[r] = max(0.0, 1 - d_wall / lidar_range)
    return wall, marks


@pytest.mark.parametrize("task", ["north", "south", "pillars"])
@pytest.mark.parametrize("n_rays,channels,lidar_range", [(16, N_KINDS, 2.0), (7, 1, 0.8)])
def test_lidar_matches_reference(task, n_rays, channels, lidar_range) -> None:
    world = WorldConfig(
        n_rays=n_rays, landmark_channels=channels, lidar_range=lidar_range, sensor_noise=0.0
    )
    env = make_vec_env(StreamSpec(schedule=[(task, 10**6)]), n_envs=32, seed=0, world=world)
    obs = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, *_ = env.step(rng.uniform(-2, 2, (32, 2)).astype(np.float32))
    c = env.core
    spec = TASKS[task]
    circles = [(lm.x, lm.y, lm.radius, lm.kind, lm.solid) for lm in spec.landmarks]
    for i in range(32):
        wall, marks = _reference_lidar(c.pos[i], circles, n_rays, lidar_range, channels)
        np.testing.assert_allclose(obs[i, 0:2], c.pos[i], atol=1e-6)
        np.testing.assert_allclose(obs[i, 2:4], c.vel[i], atol=1e-6)
        np.testing.assert_allclose(obs[i, 4 : 4 + n_rays], wall, atol=1e-5)
        got = obs[i, 4 + n_rays : 4 + n_rays * (1 + channels)].reshape(channels, n_rays)
        np.testing.assert_allclose(got, marks, atol=1e-5)
    assert obs.shape[1] == 4 + n_rays * (1 + channels)


def test_landmark_inside_reads_one() -> None:
    env = make_vec_env(
        StreamSpec(schedule=[("north", 10**6)]), n_envs=1, seed=0, world={"sensor_noise": 0.0}
    )
    env.reset()
    lm = TASKS["north"].landmarks[0]
    env.core.pos[0] = (lm.x, lm.y)
    obs = env.core._observe(None)
    R = env.core.n_rays
    np.testing.assert_allclose(obs[0, 4 + R : 4 + 2 * R], 1.0)


def test_sensor_noise_keeps_unused_channels_exactly_zero() -> None:
    env = make_vec_env(
        StreamSpec(schedule=[("southwest", 10**6)]), n_envs=16, seed=0, world={"sensor_noise": 0.05}
    )
    obs = env.reset()
    for _ in range(5):
        obs, *_ = env.step(np.zeros((16, 2), dtype=np.float32))
    R = env.core.n_rays
    blocks = obs[:, 4 + R :].reshape(16, N_KINDS, R)
    kind = TASKS["southwest"].landmarks[0].kind
    others = np.delete(blocks, kind, axis=1)
    assert (others == 0).all()
    assert (blocks[:, kind] > 0).any()
    # position readings are noisy
    assert not np.allclose(obs[:, 0:2], env.core.pos, atol=1e-3)
    assert env.observation_space.contains(obs[0])


def test_cue_steps_zero_landmark_channels() -> None:
    k = 3
    env = make_vec_env(
        StreamSpec(schedule=[("north", 10**6)]),
        n_envs=4,
        seed=0,
        world={"cue_steps": k, "max_episode_steps": 6},
    )
    c = env.core
    lm = slice(c._lm0, c._lm1)
    obs = env.reset()
    assert (obs[:, lm] > 0).any(axis=1).all()
    zero = np.zeros((4, 2), dtype=np.float32)
    for step in range(1, 7):
        obs, _, dones, infos = env.step(zero)
        if step < k:
            assert (obs[:, lm] > 0).any(axis=1).all()
        elif step < 6:
            assert (obs[:, lm] == 0).all()
            assert (obs[:, 4 : c._lm0] > 0).any()  # walls stay visible
    assert dones.all()
    assert (infos[0]["terminal_observation"][lm] == 0).all()
    assert (obs[:, lm] > 0).any(axis=1).all()  # the new episodes show the cue again


def test_observe_task_id_one_hot() -> None:
    names = ["north", "southwest", "southeast"]
    env = make_vec_env(
        StreamSpec.joint(names, 10**6),
        n_envs=32,
        seed=0,
        world={"observe_task_id": True, "max_episode_steps": 4},
    )
    obs = env.reset()
    assert obs.shape[1] == WorldConfig(observe_task_id=True).obs_dim(3) == 148 + 3
    for _ in range(6):
        obs, _, _, infos = env.step(np.zeros((32, 2), dtype=np.float32))
        one_hot = obs[:, -3:]
        np.testing.assert_array_equal(one_hot.sum(axis=1), 1.0)
        np.testing.assert_array_equal(one_hot.argmax(axis=1), env.core.task)
        for i, info in enumerate(infos):
            if "terminal_observation" in info:
                assert info["terminal_observation"][-3:].argmax() == info["task_id"]
            else:
                assert one_hot[i].argmax() == info["task_id"]


def test_default_observation_is_off_the_task_id() -> None:
    env = make_vec_env(StreamSpec.joint(["north", "south"], 10**6), n_envs=2, seed=0)
    assert env.observation_space.shape == (WorldConfig().obs_dim(2),)
    assert env.observation_space.shape == (4 + 16 * (1 + N_KINDS),)


def test_each_builtin_task_is_identifiable_along_the_way() -> None:
    """From the start region to the goal, every task's own landmark channel sees something
    on most steps, so a policy can tell the tasks apart."""
    for name, spec in TASKS.items():
        env = make_vec_env(
            StreamSpec(schedule=[(name, 10**6)]), n_envs=64, seed=0, world={"sensor_noise": 0.0}
        )
        env.reset()
        c = env.core
        kind = spec.landmarks[-1].kind
        seen = []
        for _ in range(40):
            direction = c.goal - c.pos
            obs, *_ = env.step(np.clip(3 * direction, -1, 1).astype(np.float32))
            block = obs[:, c._lm0 + kind * c.n_rays : c._lm0 + (kind + 1) * c.n_rays]
            seen.append((block > 0).any(axis=1))
        assert np.mean(seen) > 0.97, name


def test_builtin_tasks_conflict_and_have_own_landmarks() -> None:
    """Goals at least 60 degrees apart; landmarks clear of their own goal; one kind each."""
    from envs import DEFAULT_TASKS

    goals = [np.array(TASKS[n].goal) for n in DEFAULT_TASKS]
    for i, gi in enumerate(goals):
        for gj in goals[i + 1 :]:
            cos = gi @ gj / (np.linalg.norm(gi) * np.linalg.norm(gj))
            assert cos <= math.cos(math.radians(60)) + 1e-4
    kinds = []
    for spec in TASKS.values():
        own = {lm.kind for lm in spec.landmarks}
        assert len(own) == 1
        kinds.append(own.pop())
        for lm in spec.landmarks:
            gap = math.dist((lm.x, lm.y), spec.goal) - lm.radius - spec.goal_radius
            assert gap > 0.02, spec.name
    assert len(set(kinds)) == len(kinds)


def test_mixed_observation_is_a_fixed_rotation_of_the_plain_one() -> None:
    """``mix_seed``: every entry is dense (no zero in any task), the plain observation is
    ``Q^T`` times the mixed one, Q is the same for every env and run, and the Box holds it."""
    spec = StreamSpec(schedule=[("north", 300), ("southeast", 300)], blur=0)
    plain = make_vec_env(spec, n_envs=8, seed=3)
    mixed = make_vec_env(spec, n_envs=8, seed=3, world={"mix_seed": 5})
    q = WorldConfig(mix_seed=5).mixing_matrix(len(mixed.task_names))
    assert q is not None and q.shape == (plain.observation_space.shape[0],) * 2
    np.testing.assert_allclose(q @ q.T, np.eye(len(q)), atol=1e-5)
    assert np.array_equal(q, WorldConfig(mix_seed=5).mixing_matrix(len(mixed.task_names)))
    a, b = plain.reset(), mixed.reset()
    rng = np.random.default_rng(0)
    box = mixed.observation_space
    for _ in range(400):
        np.testing.assert_allclose(b @ q, a, atol=1e-5)
        assert np.all(b >= box.low) and np.all(b <= box.high)
        assert np.count_nonzero(b) == b.size and np.count_nonzero(a) < 0.3 * a.size
        act = rng.uniform(-2, 2, (8, 2)).astype(np.float32)
        a, b = plain.step(act)[0], mixed.step(act)[0]
