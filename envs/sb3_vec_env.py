"""``NavVecEnv``: a stable-baselines3 ``VecEnv`` over one batched :class:`~envs.core.NavCore`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from envs.config import WorldConfig
from envs.core import NavCore
from envs.frontend import NavFrontEnd, build_spaces
from envs.stream import StreamSpec, TaskStream
from envs.tasks import TaskSpec


class NavVecEnv(NavFrontEnd, VecEnv):
    """N navigation envs stepped as one batch, with same-step auto-reset (SB3 conventions).

    :param stream: the task stream (StreamSpec, mapping of its fields, or a TaskStream).
    :param n_envs: number of envs N.
    :param world: physics/observation options (see :class:`~envs.config.WorldConfig` for the
        observation layout; observations are float32 of shape (N, obs_dim)).
    :param seed: seed of the env generator and of the stream's drift processes.
    :param task_names: the task universe that ``task_id`` and the optional task one-hot index
        (default: the stream's tasks). Must contain every task of the stream.
    :param tasks: user-defined tasks by name, looked up before the built-in library.
    :param render_mode: ``"rgb_array"`` (default) or None.

    Per-step ``infos[i]`` always holds ``task_id`` (index into ``task_names`` of the episode's
    task), ``dominant_task_id`` (argmax of the mixture now), ``mixture`` (task probabilities
    over ``task_names``, one read-only array shared by all envs of the step) and ``drift``
    (the episode's drift offsets, a row view; column names in ``drift_param_names``). At an
    episode's last step also ``is_success``, ``progress``, ``terminal_observation`` and
    ``TimeLimit.truncated``.

    Stream time ``t`` advances by N per step. ``reset()`` after ``seed(s)`` restarts the
    stream at t = 0 with seed ``s``; a plain ``reset()`` starts new episodes and keeps ``t``.
    """

    def __init__(
        self,
        stream: StreamSpec | Mapping[str, Any] | TaskStream,
        n_envs: int = 16,
        world: WorldConfig | Mapping[str, Any] | None = None,
        seed: int | None = None,
        task_names: Sequence[str] | None = None,
        tasks: Mapping[str, TaskSpec] | None = None,
        render_mode: str | None = "rgb_array",
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} must be one of [None, 'rgb_array']")
        self.render_mode = render_mode
        self.core = NavCore.from_options(n_envs, stream, world, seed, task_names, tasks)
        obs_space, act_space = build_spaces(self.core)
        super().__init__(self.core.n, obs_space, act_space)
        self.metadata["render_fps"] = round(1.0 / self.core.world.dt)
        self._actions: np.ndarray | None = None
        self.reset_infos = self._reset_infos(np.arange(self.num_envs))

    # ------------------------------------------------------------------ extras
    @property
    def world(self) -> WorldConfig:
        return self.core.world

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        seed = self._seeds[0]
        if seed is not None:
            self.core.seed(seed)
        obs = self.core.reset()
        self.reset_infos = self._reset_infos(np.arange(self.num_envs))
        self._reset_seeds()
        self._reset_options()
        return obs

    def _reset_infos(self, idx: Iterable[int]) -> list[dict[str, Any]]:
        stream_info = self._stream_info()
        task = self.core.task
        return [{"task_id": int(task[i]), **stream_info} for i in idx]

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        core = self.core
        stream_info = self._stream_info()
        out = core.step(self._actions, autoreset=True)
        self._actions = None
        rows = list(out.drift)
        infos = [
            {"task_id": tid, **stream_info, "drift": row}
            for tid, row in zip(out.task.tolist(), rows, strict=True)
        ]
        done = out.terminated | out.truncated
        if done.any():
            idx = np.flatnonzero(done)
            succ = out.is_success[idx].tolist()
            prog = out.progress[idx].tolist()
            trunc = out.truncated[idx].tolist()
            new_task = core.task[idx].tolist()
            for j, i in enumerate(idx.tolist()):
                info = infos[i]
                info["is_success"] = succ[j]
                info["progress"] = prog[j]
                info["terminal_observation"] = out.terminal_obs[i]
                info["TimeLimit.truncated"] = trunc[j]
                self.reset_infos[i] = {"task_id": new_task[j], **stream_info}
        return out.obs, out.reward, done, infos

    def close(self) -> None:
        pass

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self.core.render(i) for i in range(self.num_envs)]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """All envs' frames tiled into one uint8 RGB image (see :meth:`get_images`)."""
        return super().render(mode)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next :meth:`reset` (which then restarts the stream)."""
        return super().seed(seed)

    def _attr_owner(self, attr_name: str) -> Any:
        if hasattr(self.core, attr_name) and not hasattr(VecEnv, attr_name):
            return self.core
        return self

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute, once per index. Per-env arrays of the core (``pos``, ``task``, ...)
        give each index its own row; other attributes are shared by all envs."""
        idx = list(self._get_indices(indices))
        owner = self._attr_owner(attr_name)
        value = getattr(owner, attr_name)
        if (
            owner is self.core
            and isinstance(value, np.ndarray)
            and value.shape[:1] == (self.num_envs,)
        ):
            return [value[i] for i in idx]
        return [value for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute. Per-env core arrays are set row-wise; shared attributes can only
        be set for all envs at once."""
        idx = list(self._get_indices(indices))
        owner = self._attr_owner(attr_name)
        current = getattr(owner, attr_name, None)
        if (
            owner is self.core
            and isinstance(current, np.ndarray)
            and current.shape[:1] == (self.num_envs,)
        ):
            current[idx] = value
            return
        if sorted(idx) != list(range(self.num_envs)):
            raise ValueError(
                f"attribute {attr_name!r} is shared by all {self.num_envs} envs of a NavVecEnv; "
                "indices must select all of them"
            )
        setattr(owner, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method per index. ``render`` renders each env; other methods of the env are
        shared, called once, and their result is returned for every index."""
        idx = list(self._get_indices(indices))
        if method_name == "render":
            return [self.core.render(i) for i in idx]
        owner = self._attr_owner(method_name)
        result = getattr(owner, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Always False: the envs are not gymnasium envs, so no wrapper can apply."""
        return [False for _ in self._get_indices(indices)]
