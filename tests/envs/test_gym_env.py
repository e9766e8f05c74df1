"""NavEnv (the gymnasium Env): its infos, seeding and stream arguments."""

import numpy as np
import pytest

from envs import NavEnv, StreamSpec

QUIET = {"sensor_noise": 0.0, "action_noise": 0.0}


def test_infos_carry_the_stream_and_own_their_mixture() -> None:
    env = NavEnv(stream=StreamSpec.joint(["north", "south"], 10**6), world=QUIET)
    _, info = env.reset(seed=0)
    assert list(info) == ["task_id", "dominant_task_id", "mixture", "drift"]
    assert env.task_names == ["north", "south"] and env.stream is env.core.stream
    assert info["task_id"] in (0, 1) and info["dominant_task_id"] == 0
    np.testing.assert_allclose(info["mixture"], [0.5, 0.5])
    info["mixture"][0] = 1.0  # a copy: writing it leaves the stream alone
    np.testing.assert_allclose(env.core.mixture(), [0.5, 0.5])
    _, _, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
    assert list(info)[:4] == ["task_id", "dominant_task_id", "mixture", "drift"]
    assert not (terminated or truncated) and "is_success" not in info


def test_episode_end_adds_success_and_progress() -> None:
    env = NavEnv(task="north", world={**QUIET, "max_episode_steps": 2})
    env.reset(seed=0)
    env.step(np.zeros(2, dtype=np.float32))
    _, _, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
    assert truncated and not terminated
    assert info["is_success"] is False and 0.0 <= info["progress"] <= 1.0


def test_seeded_reset_repeats_the_episode() -> None:
    env = NavEnv()

    def episode() -> list[np.ndarray]:
        # copies: reset() writes into the array of the last step's observation
        obs = [env.reset(seed=5)[0].copy()]
        return obs + [env.step(np.ones(2, np.float32))[0].copy() for _ in range(3)]

    for a, b in zip(episode(), episode(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_task_and_stream_are_exclusive() -> None:
    with pytest.raises(ValueError, match="either task or stream"):
        NavEnv(task="north", stream=StreamSpec(schedule=[("south", 10)]))
