"""``UserStreamVecEnv``: a stable-baselines3 ``VecEnv`` over a stream of user Gymnasium envs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common import env_util
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from envs.frontend import NavFrontEnd
from envs.stream import StreamSpec, TaskStream
from envs.user_stream import EnvTask, UserStreamCore


class UserStreamVecEnv(NavFrontEnd, VecEnv):
    """N user envs, one per slot, whose episodes follow a task stream (SB3 conventions).

    :param tasks: task name -> :class:`~envs.user_stream.EnvTask` (or its YAML mapping).
    :param stream: the schedule over the task names, with blur and drift (drift names adapter
        parameters, see :mod:`envs.adapters`).
    :param n_envs: number of slots N.
    :param seed: seed of the stream, the task draws and the envs (slot i: ``seed + i``).
    :param task_names: the task universe that ``task_id`` indexes (default: the stream's tasks).
    :param observe: parameters appended to observations, normalised to [-1, 1].

    Per-step ``infos[i]`` is the env's own info plus the navigation envs' ground truth:
    ``task_id`` (index into ``task_names``), ``dominant_task_id``, ``mixture`` (task
    probabilities, one read-only array shared by the step) and ``drift`` (the episode's drift
    offsets, columns ``drift_param_names``). At an episode's last step also ``is_success``,
    ``terminal_observation`` and ``TimeLimit.truncated``, and the observation returned is the
    next episode's first (same-step auto-reset).

    Stream time ``t`` advances by N per step. ``reset()`` after ``seed(s)`` restarts the stream
    at t = 0; a plain ``reset()`` starts new episodes and keeps ``t``.
    """

    def __init__(
        self,
        tasks: Mapping[str, EnvTask | Mapping[str, Any]],
        stream: StreamSpec | Mapping[str, Any] | TaskStream,
        n_envs: int = 8,
        seed: int | None = None,
        task_names: Sequence[str] | None = None,
        observe: Sequence[str] = (),
    ) -> None:
        self.core = UserStreamCore(tasks, stream, n_envs, seed, task_names, observe)  # type: ignore[assignment]
        super().__init__(self.core.n, self.core.observation_space, self.core.action_space)
        self._actions: np.ndarray | None = None
        self.reset_infos = [{} for _ in range(self.num_envs)]

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        core: UserStreamCore = self.core  # type: ignore[assignment]
        if self._seeds[0] is not None:
            core.seed(self._seeds[0])
        inner = core.reset()
        stream_info = self._stream_info()
        task = core.task.tolist()
        self.reset_infos = [
            {**inner[i], "task_id": task[i], **stream_info} for i in range(self.num_envs)
        ]
        self._reset_seeds()
        self._reset_options()
        return core.last_obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        core: UserStreamCore = self.core  # type: ignore[assignment]
        stream_info = self._stream_info()
        task = core.task.tolist()
        rows = list(core.drift_rows.copy())
        obs, rew, term, trunc, inner, ended = core.step(self._actions)
        self._actions = None
        # new dicts: an env may hand out the same info dict again
        infos = [
            {**inner[i], "task_id": task[i], **stream_info, "drift": rows[i]}
            for i in range(self.num_envs)
        ]
        if ended:
            new_info = self._stream_info()
            for i, (final, ok, _, _) in ended.items():
                info = infos[i]
                info["is_success"] = ok
                info["terminal_observation"] = final
                info["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
                self.reset_infos[i] = {"task_id": int(core.task[i]), **new_info}
        return obs, rew, term | trunc, infos

    def close(self) -> None:
        self.core.close()  # type: ignore[attr-defined]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self.core.env(i).render() for i in range(self.num_envs)]  # type: ignore[attr-defined]

    def _target(self, i: int) -> gym.Env:
        return self.core.env(i)  # type: ignore[attr-defined]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of each slot's current env (as ``DummyVecEnv``)."""
        return [getattr(self._target(i), attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set the attribute on each slot's current env; a parameter that a task or drift
        sets is overwritten at the next reset."""
        for i in self._get_indices(indices):
            setattr(self._target(i), attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of each slot's current env."""
        return [
            getattr(self._target(i), method_name)(*method_args, **method_kwargs)
            for i in self._get_indices(indices)
        ]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [
            env_util.is_wrapped(self._target(i), wrapper_class) for i in self._get_indices(indices)
        ]
