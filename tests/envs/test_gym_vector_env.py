"""NavVectorEnv (the gymnasium VectorEnv): same-step autoreset, infos, partial reset."""

import numpy as np
from gymnasium.vector import AutoresetMode

from envs import NavVectorEnv, StreamSpec

QUIET = {"sensor_noise": 0.0, "action_noise": 0.0}


def test_vector_env_same_step_autoreset() -> None:
    env = NavVectorEnv(
        StreamSpec(schedule=[("north", 10**6)]), num_envs=3, world={**QUIET, "max_episode_steps": 2}
    )
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs0, info = env.reset(seed=0)
    assert obs0.shape == (3, env.single_observation_space.shape[0])
    assert obs0.dtype == np.float32 and info["task_id"].tolist() == [0, 0, 0]
    obs, rew, term, trunc, info = env.step(np.zeros((3, 2), dtype=np.float32))
    assert "final_obs" not in info and rew.shape == (3,)
    obs, rew, term, trunc, info = env.step(np.zeros((3, 2), dtype=np.float32))
    assert trunc.all() and not term.any()
    assert info["_final_obs"].all()
    np.testing.assert_allclose(info["final_obs"][0][:2], obs0[0, :2], atol=1e-6)
    assert info["final_info"]["is_success"].tolist() == [False] * 3
    np.testing.assert_allclose(obs[:, :2], env.core.pos, atol=1e-6)
    assert info["mixture"].shape == (3, 1)
    frames = NavVectorEnv(num_envs=2, render_mode="rgb_array").render()
    assert len(frames) == 2 and frames[0].dtype == np.uint8


def test_vector_env_partial_reset() -> None:
    env = NavVectorEnv(num_envs=4, world=QUIET)
    env.reset(seed=3)
    for _ in range(3):
        env.step(np.ones((4, 2), dtype=np.float32))
    before = env.core.ep_t.copy()
    env.reset(options={"reset_mask": np.array([True, False, True, False])})
    assert env.core.ep_t.tolist() == [0, before[1], 0, before[3]]
