"""Task streams: blur ramps, hard switches, drift bounds, seeding and resumable state."""

import itertools
import math
import pickle

import numpy as np
import pytest

from envs import DriftSpec, StreamSpec, TaskStream, make_vec_env
from envs.stream import _ramp


def _expected_share(stream: TaskStream, t0: int, t1: int, k: int) -> float:
    return float(np.mean([stream.mixture(t)[k] for t in range(t0, t1)]))


@pytest.mark.parametrize("ramp", ["linear", "sigmoid"])
def test_mixture_ramp_shape(ramp: str) -> None:
    s = TaskStream(StreamSpec(schedule=[("north", 1000), ("south", 1000)], blur=400, ramp=ramp))
    assert s.boundaries == [1000] and s.total_steps == 2000
    assert s.mixture(799).tolist() == [1.0, 0.0]
    assert s.mixture(1200).tolist() == [0.0, 1.0]
    assert s.mixture(1000)[1] == pytest.approx(0.5)
    w = [s.mixture(t)[1] for t in range(800, 1200)]
    assert all(b >= a for a, b in itertools.pairwise(w))
    if ramp == "linear":
        assert s.mixture(900)[1] == pytest.approx(0.25)
    else:
        assert s.mixture(900)[1] == pytest.approx(_ramp(0.25, "sigmoid"))
        assert s.mixture(900)[1] < 0.25
    assert s.dominant_task(999) == 0 and s.dominant_task(1001) == 1
    assert s.mixture(10**9).tolist() == [0.0, 1.0]


def test_repeated_task_and_mixture_phases() -> None:
    s = TaskStream(
        StreamSpec(schedule=[("north", 10), ({"north": 0.25, "south": 0.75}, 10), ("north", 10)])
    )
    assert s.task_names == ["north", "south"]
    assert s.mixture(15).tolist() == [0.25, 0.75]
    assert s.mixture(25).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("ramp", ["linear", "sigmoid"])
def test_blurred_task_draws_follow_the_ramp(ramp: str) -> None:
    """Episode tasks drawn across the window match p_k(t) within binomial 4-sigma."""
    n, duration, blur = 64, 40_000, 32_000
    env = make_vec_env(
        StreamSpec(schedule=[("north", duration), ("south", duration)], blur=blur, ramp=ramp),
        n_envs=n,
        seed=0,
        world={"max_episode_steps": 1},
    )  # every step starts n new episodes
    env.reset()
    stream = env.stream
    actions = np.zeros((n, 2), dtype=np.float32)
    start, stop = duration - blur // 2 - 2048, duration + blur // 2 + 2048
    times, draws = [], []
    while env.t < stop:
        t = env.t
        env.step(actions)
        if t >= start:
            times.append(t)
            draws.append(env.core.task.copy())
    times_a, draws_a = np.array(times), np.array(draws)
    edges = np.linspace(start, stop, 19)
    for lo, hi in itertools.pairwise(edges):
        sel = (times_a >= lo) & (times_a < hi)
        k = draws_a[sel]
        p = float(np.mean([stream.mixture(int(t))[1] for t in times_a[sel]]))
        share = float(np.mean(k == 1))
        sigma = math.sqrt(max(p * (1 - p), 1e-12) / k.size)
        assert abs(share - p) <= 4 * sigma + 1e-9, (lo, hi, share, p)


def test_hard_switch_without_blur() -> None:
    n = 16
    env = make_vec_env(
        StreamSpec(schedule=[("north", 1600), ("south", 1600)], blur=0),
        n_envs=n,
        seed=0,
        world={"max_episode_steps": 1},
    )
    env.reset()
    while env.t < 3200:
        t = env.t
        _, _, _, infos = env.step(np.zeros((n, 2), dtype=np.float32))
        expected = 0 if t < 1600 else 1
        assert (env.core.task == expected).all()
        assert infos[0]["dominant_task_id"] == expected


@pytest.mark.parametrize("process", ["random_walk", "ou", "sine"])
@pytest.mark.parametrize("param", ["goal", "landmarks", "wind", "friction"])
def test_drift_stays_within_bounds(process: str, param: str) -> None:
    spec = DriftSpec(param=param, process=process, bound=0.2, sigma=0.05, theta=1e-3, period=500)
    s = TaskStream(StreamSpec(schedule=[("north", 10**6)], drift=[spec]), seed=1)
    values = []
    for step in [1] * 5000 + [97] * 3000:
        s.advance(step)
        values.append(s.drift_values())
    v = np.array(values)
    assert v.shape[1] == spec.dim
    assert np.abs(v).max() <= 0.2 + 1e-12
    assert np.abs(v).max() > 0.1  # the process does move
    assert np.std(v[:, 0]) > 0.01


def test_drift_reaches_the_env_within_bounds() -> None:
    env = make_vec_env(
        StreamSpec(
            schedule=[("north", 10**6)],
            drift=[
                DriftSpec("goal", "random_walk", bound=0.2, sigma=0.05, update="step"),
                DriftSpec("friction", "sine", bound=0.5, period=3000, update="episode"),
            ],
        ),
        n_envs=8,
        seed=0,
        world={"max_episode_steps": 20},
    )
    env.reset()
    canonical = np.array(env.core.t_goal[0])
    for _ in range(600):
        _, _, _, infos = env.step(env.action_space.sample()[None].repeat(8, 0))
        off = env.core.goal - canonical
        assert np.abs(off).max() <= 0.2 + 1e-9
        np.testing.assert_allclose(off, env.core.drift_rows[:, 0:2], atol=1e-9)
        assert infos[0]["drift"].shape == (3,)
        assert (np.abs(env.core.friction - 2.0) <= 0.5 + 1e-9).all()
    assert env.drift_param_names == ["goal_x", "goal_y", "friction"]


def _rollout(env, n_steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    rng = np.random.default_rng(seed)
    obs_seq, rew_seq, tasks = [], [], []
    for _ in range(n_steps):
        a = rng.uniform(-2, 2, size=(env.num_envs, 2)).astype(np.float32)
        obs, rew, _, infos = env.step(a)
        obs_seq.append(obs)
        rew_seq.append(rew)
        tasks.append([i["task_id"] for i in infos])
    return np.array(obs_seq), np.array(rew_seq), tasks


BLURRED_DRIFT = StreamSpec(
    schedule=[("north", 300), ("southwest", 300), ("southeast", 300)],
    blur=200,
    drift=[
        DriftSpec("goal", "ou", sigma=0.01, theta=1e-3),
        DriftSpec("wind", "random_walk", bound=0.3, sigma=0.02, update="step"),
    ],
)


def test_seeded_reset_reproduces_trajectories() -> None:
    env = make_vec_env(BLURRED_DRIFT, n_envs=8, seed=0, world={"max_episode_steps": 30})
    runs = []
    for _ in range(2):
        env.seed(42)
        first = env.reset()
        assert env.t == 0
        runs.append((first, *_rollout(env, 120)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    assert runs[0][3] == runs[1][3]
    env.seed(43)
    other = env.reset()
    assert not np.array_equal(other, runs[0][0])


def test_unseeded_reset_keeps_stream_time() -> None:
    env = make_vec_env(BLURRED_DRIFT, n_envs=4, seed=0)
    env.reset()
    _rollout(env, 10)
    env.reset()
    assert env.t == 40


def test_stream_state_restores_exactly() -> None:
    env = make_vec_env(BLURRED_DRIFT, n_envs=8, seed=0, world={"max_episode_steps": 30})
    env.reset()
    _rollout(env, 57, seed=1)
    state = pickle.loads(pickle.dumps(env.get_stream_state()))
    after = _rollout(env, 90, seed=2)

    other = make_vec_env(BLURRED_DRIFT, n_envs=8, seed=123, world={"max_episode_steps": 30})
    other.reset()
    other.set_stream_state(state)
    assert other.t == 57 * 8
    resumed = _rollout(other, 90, seed=2)
    np.testing.assert_array_equal(after[0], resumed[0])
    np.testing.assert_array_equal(after[1], resumed[1])
    assert after[2] == resumed[2]


def test_task_stream_state_roundtrip() -> None:
    s = TaskStream(BLURRED_DRIFT, seed=5)
    s.advance(100)
    state = s.get_state()
    s.advance(50)
    v = s.drift_values()
    s2 = TaskStream(BLURRED_DRIFT, seed=9)
    s2.set_state(pickle.loads(pickle.dumps(state)))
    s2.advance(50)
    np.testing.assert_array_equal(v, s2.drift_values())
    assert s2.t == 150
