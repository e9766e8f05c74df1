"""``NavEnv``: a single ``gymnasium.Env`` (a :class:`~envs.core.NavCore` with N = 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from envs.config import WorldConfig
from envs.core import NavCore
from envs.frontend import NavFrontEnd, build_spaces, default_stream
from envs.stream import StreamSpec, TaskStream
from envs.tasks import TaskSpec


class NavEnv(NavFrontEnd, gym.Env[np.ndarray, np.ndarray | int]):
    """One navigation agent.

    :param task: run this task forever (canonical context). Exclusive with ``stream``.
    :param stream: a task stream (StreamSpec, mapping, or TaskStream); stream time advances by 1 per
        step. Default (neither given): uniform mixture of ``DEFAULT_TASKS``.
    :param world: physics/observation options; observation float32 of shape (obs_dim,), layout in
        :class:`~envs.config.WorldConfig`.
    :param task_names: task universe for ``task_id`` and the task one-hot (default: the stream's).
    :param tasks: user-defined tasks by name.
    :param render_mode: ``"rgb_array"`` or None.

    ``info`` holds ``task_id``, ``dominant_task_id``, ``mixture`` and ``drift`` every step,
    plus ``is_success`` and ``progress`` at the end of an episode. ``reset(seed=s)`` reseeds
    the env and restarts the stream.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        task: str | None = None,
        stream: StreamSpec | Mapping[str, Any] | TaskStream | None = None,
        world: WorldConfig | Mapping[str, Any] | None = None,
        task_names: Sequence[str] | None = None,
        tasks: Mapping[str, TaskSpec] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} must be one of [None, 'rgb_array']")
        self.render_mode = render_mode
        self.core = NavCore.from_options(
            1, default_stream(task, stream), world, task_names=task_names, tasks=tasks
        )
        self.observation_space, self.action_space = build_spaces(self.core)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.core.world.dt)}

    def _info(self, task: int, drift: np.ndarray) -> dict[str, Any]:
        stream_info = self._stream_info()
        # its own array: the stream's is read-only and shared across steps
        return {
            "task_id": task,
            **stream_info,
            "mixture": stream_info["mixture"].copy(),
            "drift": drift,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.core.seed(seed, rng=self.np_random)
        else:
            self.core.rng = self.np_random
        obs = self.core.reset()
        return obs[0], self._info(int(self.core.task[0]), self.core.drift_rows[0].copy())

    def step(
        self, action: np.ndarray | int
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        info = self._info(int(self.core.task[0]), self.core.drift_rows[0])
        out = self.core.step(np.asarray(action)[None], autoreset=False)
        terminated, truncated = bool(out.terminated[0]), bool(out.truncated[0])
        info["drift"] = out.drift[0]
        if terminated or truncated:
            info["is_success"] = bool(out.is_success[0])
            info["progress"] = float(out.progress[0])
        return out.obs[0], float(out.reward[0]), terminated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """uint8 RGB frame (S, S, 3), or None without a render mode."""
        if self.render_mode is None:
            return None
        return self.core.render(0)
