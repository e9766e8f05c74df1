"""What the three front ends (SB3 ``VecEnv``, gymnasium ``VectorEnv``, gymnasium ``Env``) share:
their spaces, their default stream, and the stream's part of every step's ``info``.

This module imports gymnasium but not stable-baselines3, so the gymnasium front ends load
without SB3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.core import NavCore
from envs.stream import StreamSpec, TaskStream
from envs.tasks import DEFAULT_TASKS

LONG = 10**12
"""Duration of the single phase of a stationary stream (effectively forever), in env steps."""


def default_stream(
    task: str | None = None,
    stream: StreamSpec | Mapping[str, Any] | TaskStream | None = None,
) -> StreamSpec | Mapping[str, Any] | TaskStream:
    """``stream`` if given; else one task forever; else a uniform mixture of the default tasks.

    :param task: name of a task to run forever (canonical context).
    :param stream: a task stream (StreamSpec, mapping of its fields, or TaskStream).
    :return: ``stream`` itself, or a :class:`~envs.stream.StreamSpec` of :data:`LONG` steps.
    :raises ValueError: both ``task`` and ``stream`` are given.
    """
    if task is not None and stream is not None:
        raise ValueError("give either task or stream, not both")
    if stream is not None:
        return stream
    if task is not None:
        return StreamSpec(schedule=[(task, LONG)])
    return StreamSpec.joint(DEFAULT_TASKS, LONG)


def build_spaces(core: NavCore) -> tuple[spaces.Box, spaces.Space]:
    """Single-env observation and action spaces of a core.

    :param core: the batched core the front end wraps.
    :return: the observation space, a float32 Box of shape (obs_dim,), and the action space:
        ``Discrete(8)`` with ``world.discrete_actions``, else a float32 Box of shape (2,)
        bounded by ``world.action_bound`` (force per unit mass).
    """
    low, high = core.observation_bounds()
    obs_space = spaces.Box(low=low, high=high, dtype=np.float32)
    w = core.world
    if w.discrete_actions:
        act_space: spaces.Space = spaces.Discrete(8)
    else:
        b = np.float32(w.action_bound)
        act_space = spaces.Box(low=-b, high=b, shape=(2,), dtype=np.float32)
    return obs_space, act_space


class NavFrontEnd:
    """Mixin of the front ends over one :class:`~envs.core.NavCore` held in ``self.core``."""

    core: NavCore
    #: Vector front ends: a mask of N ``True`` values, made once (gymnasium's ``_<key>`` masks).
    _all: np.ndarray

    @property
    def task_names(self) -> list[str]:
        """The task universe that ``task_id``, ``dominant_task_id`` and ``mixture`` index."""
        return self.core.task_names

    @property
    def stream(self) -> TaskStream:
        """The task stream the envs follow."""
        return self.core.stream

    @property
    def drift_param_names(self) -> list[str]:
        """Names of the drifted parameters, the columns of ``info["drift"]``."""
        return self.core.drift_param_names

    @property
    def t(self) -> int:
        """Stream time (global env-step count)."""
        return self.core.t

    def get_stream_state(self) -> dict[str, Any]:
        """Picklable state (stream time, drift, generators, running episodes) for resuming."""
        return self.core.get_state()  # type: ignore[attr-defined]

    def set_stream_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_stream_state`; stepping then continues exactly."""
        self.core.set_state(state)  # type: ignore[attr-defined]

    def _stream_info(self) -> dict[str, Any]:
        """The info entries set by the stream at the current stream time, the same for all envs.

        Each env's info is ``{"task_id": ..., **stream_info, "drift": ...}``: ``task_id`` is
        the index into :attr:`task_names` of the episode's task and ``drift`` the episode's
        drift offsets, shape (D,).

        :return: ``dominant_task_id`` (index into :attr:`task_names` of the most probable task)
            and ``mixture`` (task probabilities over :attr:`task_names`, shape (n_tasks,), one
            shared read-only array).
        """
        return {"dominant_task_id": self.core.dominant_task(), "mixture": self.core.mixture()}

    def _vector_infos(self, task: np.ndarray, drift: np.ndarray) -> dict[str, Any]:
        """The same entries in gymnasium's vector layout: one array per key over the N envs,
        with its ``_<key>`` mask (every env has every key).

        :param task: each env's task index, shape (N,).
        :param drift: each env's drift offsets, shape (N, D).
        """
        stream_info = self._stream_info()
        mix = stream_info["mixture"]
        n, every = len(task), self._all
        return {
            "task_id": task,
            "_task_id": every,
            "dominant_task_id": np.full(n, stream_info["dominant_task_id"]),
            "_dominant_task_id": every,
            "mixture": np.broadcast_to(mix, (n, len(mix))),
            "_mixture": every,
            "drift": drift,
            "_drift": every,
        }
