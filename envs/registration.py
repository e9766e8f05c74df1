"""Gymnasium registration of the ``SynapticNav/`` ids.

* ``SynapticNav/Nav-v0``: uniform mixture of the default tasks (continuous actions).
* ``SynapticNav/NavDiscrete-v0``: the same with 8 discrete directions.
* ``SynapticNav/NavPOMDP-v0``: landmark channels visible only for the first 5 steps.
* ``SynapticNav/NavDrift-v0``: the mixture with the goal drifting (OU, per episode).
* ``SynapticNav/NavSequence-v0``: the quick curriculum, first three default tasks in turn
  (50k steps each, 10k-step linear blur).
* ``SynapticNav/Nav<Task>-v0``: one built-in task forever, e.g. ``SynapticNav/NavNorth-v0``.

``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` builds a
batched :class:`~envs.gym_vector_env.NavVectorEnv`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.tasks import DEFAULT_TASKS, TASKS

NAMESPACE = "SynapticNav"


def _ids() -> dict[str, dict[str, Any]]:
    ids: dict[str, dict[str, Any]] = {
        "Nav-v0": {},
        "NavDiscrete-v0": {"world": {"discrete_actions": True}},
        "NavPOMDP-v0": {"world": {"cue_steps": 5}},
        "NavDrift-v0": {
            "stream": {
                "schedule": [({n: 1 / len(DEFAULT_TASKS) for n in DEFAULT_TASKS}, 10**12)],
                "drift": [{"param": "goal", "process": "ou", "bound": 0.15}],
            }
        },
        "NavSequence-v0": {
            "stream": {
                "schedule": [(n, 50_000) for n in DEFAULT_TASKS[:3]],
                "blur": 10_000,
            }
        },
    }
    for name in TASKS:
        ids[f"Nav{name.capitalize()}-v0"] = {"task": name}
    return ids


ENV_IDS: list[str] = [f"{NAMESPACE}/{k}" for k in _ids()]
"""All registered ids."""


def register_envs() -> None:
    """Register every id in :data:`ENV_IDS` (idempotent)."""
    for name, kwargs in _ids().items():
        env_id = f"{NAMESPACE}/{name}"
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="envs.gym_env:NavEnv",
            vector_entry_point="envs.gym_vector_env:NavVectorEnv",
            kwargs=kwargs,
        )
