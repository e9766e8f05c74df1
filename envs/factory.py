"""Factories used by training code: a training VecEnv from a stream config, and one
evaluation VecEnv per task in its canonical context; for the navigation world and for streams
over the user's own Gymnasium envs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envs.coerce import coerce
from envs.config import WorldConfig
from envs.frontend import LONG
from envs.sb3_vec_env import NavVecEnv
from envs.stream import StreamSpec, TaskStream
from envs.tasks import TaskSpec, get_task
from envs.user_sb3_vec_env import UserStreamVecEnv
from envs.user_stream import EnvTask

EVAL_SEED_OFFSET = 10_007
"""Eval env k is seeded with seed + EVAL_SEED_OFFSET * (k + 1), apart from training seeds."""


def _user_tasks(
    tasks: Mapping[str, TaskSpec | Mapping[str, Any]] | None,
) -> dict[str, TaskSpec] | None:
    if not tasks:
        return None
    out: dict[str, TaskSpec] = {}
    for name, t in tasks.items():
        spec = TaskSpec.from_any({"name": name, **t} if isinstance(t, Mapping) else t)
        if spec.name != name:
            raise ValueError(f"tasks[{name!r}].name={spec.name!r} must equal its key")
        out[name] = spec
    return out


def make_vec_env(
    stream: StreamSpec | Mapping[str, Any],
    n_envs: int = 16,
    seed: int | None = 0,
    world: WorldConfig | Mapping[str, Any] | None = None,
    tasks: Mapping[str, TaskSpec | Mapping[str, Any]] | None = None,
    task_names: Sequence[str] | None = None,
) -> NavVecEnv:
    """Training env: ``n_envs`` envs following ``stream``.

    :param stream: StreamSpec or a plain/Hydra mapping of its fields.
    :param n_envs: number of envs (>= 1).
    :param seed: seed of the env and the stream (None: random).
    :param world: WorldConfig or mapping of its fields.
    :param tasks: extra user tasks by name (TaskSpec or mapping of its fields).
    :param task_names: task universe for ``task_id`` (default: the stream's tasks).
    :return: the VecEnv; observations float32 of shape (n_envs, obs_dim).
    :raises ValueError: invalid config, naming the field and its allowed range.
    """
    spec = coerce(StreamSpec, stream, "StreamSpec")
    extra = _user_tasks(tasks)
    for name in spec.task_names:
        get_task(name, extra)
    return NavVecEnv(
        TaskStream(spec, seed),
        n_envs,
        coerce(WorldConfig, world, "WorldConfig"),
        seed=seed,
        task_names=task_names,
        tasks=extra,
    )


def make_eval_envs(
    task_names: Sequence[str],
    n_envs: int = 8,
    seed: int | None = 0,
    world: WorldConfig | Mapping[str, Any] | None = None,
    tasks: Mapping[str, TaskSpec | Mapping[str, Any]] | None = None,
) -> dict[str, NavVecEnv]:
    """One VecEnv per task in its canonical context (no drift, no blur, start jitter on).

    ``task_id`` and the optional task one-hot index ``task_names`` in every env, so the
    observations match a training env over the same task list.

    :param task_names: the tasks to evaluate, unique, in the order of ``task_id``.
    :param n_envs: envs per task (>= 1).
    :param seed: base seed; env k is seeded with ``seed + EVAL_SEED_OFFSET * (k + 1)``
        (None: random).
    :param world: WorldConfig or mapping of its fields (as in training).
    :param tasks: extra user tasks by name (TaskSpec or mapping of its fields).
    :return: task name -> VecEnv; observations float32 of shape (n_envs, obs_dim).
    :raises ValueError: empty or repeated ``task_names``, an unknown task, or an invalid config.
    """
    names = list(task_names)
    if not names:
        raise ValueError("task_names must not be empty")
    if len(set(names)) != len(names):
        raise ValueError(f"task_names must be unique, got {names}")
    extra = _user_tasks(tasks)
    cfg = coerce(WorldConfig, world, "WorldConfig")
    envs: dict[str, NavVecEnv] = {}
    for k, name in enumerate(names):
        get_task(name, extra)
        s = None if seed is None else seed + EVAL_SEED_OFFSET * (k + 1)
        envs[name] = NavVecEnv(
            TaskStream(StreamSpec(schedule=[(name, LONG)]), s),
            n_envs,
            cfg,
            seed=s,
            task_names=names,
            tasks=extra,
        )
    return envs


def make_user_vec_env(
    tasks: Mapping[str, EnvTask | Mapping[str, Any]],
    stream: StreamSpec | Mapping[str, Any],
    n_envs: int = 16,
    seed: int | None = 0,
    observe: Sequence[str] = (),
) -> UserStreamVecEnv:
    """Training env over the user's own Gymnasium tasks: ``n_envs`` slots following ``stream``.

    :param tasks: task name -> :class:`~envs.user_stream.EnvTask` (or its YAML mapping).
    :param stream: StreamSpec or mapping of its fields over the task names.
    :param n_envs: number of slots (>= 1).
    :param seed: seed of the stream, the task draws and the envs (None: random).
    :param observe: parameters appended to the observations, normalised to [-1, 1].
    :return: the VecEnv; observations of the tasks' shared space, batched (n_envs, ...).
    :raises ValueError: unknown env id or parameter, a value out of range, or tasks whose
        spaces differ.
    """
    spec = coerce(StreamSpec, stream, "StreamSpec")
    return UserStreamVecEnv(tasks, spec, n_envs, seed=seed, observe=observe)


def make_user_eval_envs(
    tasks: Mapping[str, EnvTask | Mapping[str, Any]],
    task_names: Sequence[str],
    n_envs: int = 8,
    seed: int | None = 0,
    observe: Sequence[str] = (),
) -> dict[str, UserStreamVecEnv]:
    """One VecEnv per user task in its canonical context (the task's own parameter values, no
    drift, no blur), seeded as :func:`make_eval_envs`.

    :param tasks: task name -> :class:`~envs.user_stream.EnvTask` (or its YAML mapping).
    :param task_names: the tasks to evaluate, unique, in the order of ``task_id``.
    :param n_envs: envs per task (>= 1).
    :param seed: base seed (None: random).
    :param observe: as in training, so the observations match.
    :return: task name -> VecEnv.
    """
    names = list(task_names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"task_names must be non-empty and unique, got {names}")
    envs: dict[str, UserStreamVecEnv] = {}
    for k, name in enumerate(names):
        s = None if seed is None else seed + EVAL_SEED_OFFSET * (k + 1)
        spec = StreamSpec(schedule=[(name, LONG)])
        envs[name] = UserStreamVecEnv(
            tasks, spec, n_envs, seed=s, task_names=names, observe=observe
        )
    return envs
