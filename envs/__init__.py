"""Navigation environments for continual RL: tasks, task streams, and three front ends
(SB3 VecEnv, gymnasium VectorEnv, gymnasium Env) over one batched numpy core.

Importing this package registers the gymnasium ids ``SynapticNav/...`` (see
:data:`envs.registration.ENV_IDS`). This package never imports ``continual`` or ``agents``.
"""

from envs.config import WorldConfig
from envs.core import NavCore
from envs.factory import make_eval_envs, make_vec_env
from envs.gym_env import NavEnv
from envs.gym_vector_env import NavVectorEnv
from envs.registration import ENV_IDS, register_envs
from envs.render import save_frames
from envs.sb3_vec_env import NavVecEnv
from envs.stream import DriftSpec, StreamSpec, TaskStream
from envs.tasks import DEFAULT_TASKS, TASKS, Landmark, TaskSpec, get_task

register_envs()

__all__ = [
    "DEFAULT_TASKS",
    "ENV_IDS",
    "TASKS",
    "DriftSpec",
    "Landmark",
    "NavCore",
    "NavEnv",
    "NavVecEnv",
    "NavVectorEnv",
    "StreamSpec",
    "TaskSpec",
    "TaskStream",
    "WorldConfig",
    "get_task",
    "make_eval_envs",
    "make_vec_env",
    "register_envs",
    "save_frames",
]
