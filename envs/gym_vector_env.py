"""``NavVectorEnv``: a ``gymnasium.vector.VectorEnv`` over one batched
:class:`~envs.core.NavCore`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.config import WorldConfig
from envs.core import NavCore
from envs.frontend import NavFrontEnd, build_spaces, default_stream
from envs.stream import StreamSpec, TaskStream
from envs.tasks import TaskSpec


class NavVectorEnv(NavFrontEnd, VectorEnv):
    """N navigation envs as a gymnasium vector env with same-step autoreset.

    Arguments as :class:`~envs.sb3_vec_env.NavVecEnv`, plus ``task`` (one task forever, exclusive
    with ``stream``); without either, a uniform mixture of the default tasks.
    Observations: float32 (N, obs_dim).

    ``step`` returns gymnasium's dict-of-arrays infos: ``task_id`` (N,), ``dominant_task_id``
    (N,), ``mixture`` (N, n_tasks) (a broadcast view of one row), ``drift`` (N, D), each with
    its ``_<key>`` mask. When envs finish, ``final_obs`` (object array of final observations,
    mask ``_final_obs``) and ``final_info`` (``is_success``, ``progress``, ``TimeLimit.truncated``
    with masks) are added; the returned observations of those envs are already the first
    ones of their new episodes (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``).
    """

    metadata: dict[str, Any] = {  # noqa: RUF012  (gymnasium's class-level convention)
        "render_modes": ["rgb_array"],
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        stream: StreamSpec | Mapping[str, Any] | TaskStream | None = None,
        num_envs: int = 16,
        world: WorldConfig | Mapping[str, Any] | None = None,
        seed: int | None = None,
        task_names: Sequence[str] | None = None,
        tasks: Mapping[str, TaskSpec] | None = None,
        render_mode: str | None = None,
        task: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} must be one of [None, 'rgb_array']")
        self.render_mode = render_mode
        self.core = NavCore.from_options(
            num_envs, default_stream(task, stream), world, seed, task_names, tasks
        )
        self.num_envs = self.core.n
        self.single_observation_space, self.single_action_space = build_spaces(self.core)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.core.world.dt)}
        self._all = np.ones(self.num_envs, dtype=bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs; ``seed`` restarts the stream and reseeds the generators.
        ``options={"reset_mask": bool array}`` resets only the selected envs."""
        super().reset(seed=seed)
        if seed is not None:
            self.core.seed(seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is None:
            self.core.reset()
        else:
            idx = np.flatnonzero(np.asarray(mask, dtype=bool))
            self.core.last_obs[idx] = self.core.reset(idx)
        return self.core.last_obs.copy(), self._vector_infos(
            self.core.task.copy(), self.core.drift_rows.copy()
        )

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        core = self.core
        # task and drift are placeholders here, replaced by the step's own arrays below
        infos = self._vector_infos(core.task, core.drift_rows)
        out = core.step(actions, autoreset=True)
        infos["task_id"] = out.task
        infos["drift"] = out.drift
        done = out.terminated | out.truncated
        if done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = out.terminal_obs[i]
            infos["final_obs"] = final_obs
            infos["_final_obs"] = done
            infos["final_info"] = {
                "is_success": out.is_success,
                "_is_success": done,
                "progress": out.progress,
                "_progress": done,
                "TimeLimit.truncated": out.truncated,
                "_TimeLimit.truncated": done,
                "task_id": out.task,
                "_task_id": done,
            }
        return out.obs, out.reward, out.terminated, out.truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One uint8 RGB frame per env, or None without a render mode."""
        if self.render_mode is None:
            return None
        return tuple(self.core.render(i) for i in range(self.num_envs))
