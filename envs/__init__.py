"""Navigation environments for continual RL: tasks, task streams, and three front ends
(SB3 VecEnv, gymnasium VectorEnv, gymnasium Env) over one batched numpy core; and the same
streams over the user's own Gymnasium envs (``EnvTask``, ``UserStreamVecEnv``, ...).

Importing this package registers the gymnasium ids ``SynapticNav/...`` (see
:data:`envs.registration.ENV_IDS`). The names that need stable-baselines3 (``NavVecEnv``,
``UserStreamVecEnv``, ``make_vec_env``, ``make_eval_envs``, ``make_user_*``) load on first
use, so gymnasium-only users never import it. This package never imports ``continual`` or
``agents``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from envs.config import WorldConfig
from envs.core import NavCore
from envs.gym_env import NavEnv
from envs.gym_vector_env import NavVectorEnv
from envs.registration import ENV_IDS, register_envs
from envs.render import save_frames
from envs.stream import DriftSpec, StreamSpec, TaskStream
from envs.tasks import DEFAULT_TASKS, TASKS, Landmark, TaskSpec, get_task
from envs.user_stream import EnvTask, UserStreamEnv, UserStreamVectorEnv

if TYPE_CHECKING:
    from envs.factory import make_eval_envs, make_user_eval_envs, make_user_vec_env, make_vec_env
    from envs.sb3_vec_env import NavVecEnv
    from envs.user_sb3_vec_env import UserStreamVecEnv

register_envs()

_SB3_NAMES = {
    "NavVecEnv": "envs.sb3_vec_env",
    "make_eval_envs": "envs.factory",
    "make_vec_env": "envs.factory",
    "make_user_eval_envs": "envs.factory",
    "make_user_vec_env": "envs.factory",
    "UserStreamVecEnv": "envs.user_sb3_vec_env",
}
"""The names that import stable-baselines3, and the module that defines each."""


def __getattr__(name: str) -> Any:
    """Load a name of :data:`_SB3_NAMES` on first access (PEP 562)."""
    module = _SB3_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "DEFAULT_TASKS",
    "ENV_IDS",
    "TASKS",
    "DriftSpec",
    "EnvTask",
    "Landmark",
    "NavCore",
    "NavEnv",
    "NavVecEnv",
    "NavVectorEnv",
    "StreamSpec",
    "TaskSpec",
    "TaskStream",
    "UserStreamEnv",
    "UserStreamVecEnv",
    "UserStreamVectorEnv",
    "WorldConfig",
    "get_task",
    "make_eval_envs",
    "make_user_eval_envs",
    "make_user_vec_env",
    "make_vec_env",
    "register_envs",
    "save_frames",
]
