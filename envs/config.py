"""World and observation options shared by every front end."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.tasks import N_KINDS

__all__ = ["WorldConfig"]


def _check_range(
    owner: str, name: str, value: float, lo: float, hi: float = math.inf, lo_open: bool = False
) -> None:
    ok = (value > lo if lo_open else value >= lo) and value <= hi and not math.isnan(value)
    if not ok:
        left = "(" if lo_open else "["
        right = "]" if math.isfinite(hi) else ")"
        raise ValueError(f"{owner}.{name}={value} must be in {left}{lo}, {hi}{right}")


@dataclass
class WorldConfig:
    """Physics, reward and observation options (one config for all tasks of an env).

    Observation layout (float32, flat, length ``obs_dim``)::

        [0:2]   position (x, y), arena units, in [-1, 1]
        [2:4]   velocity (vx, vy), arena units/s, |v| <= max_speed
        then, if wall_lidar, R = n_rays readings of walls and solid circles
        then landmark_channels blocks of R readings, block c = landmarks of kind k with
            k % landmark_channels == c (landmark-only circles)
        then, if observe_task_id, a one-hot of the episode's task index (n_tasks entries)

    With ``mix_seed`` set, that whole vector is then multiplied by a fixed random orthogonal
    matrix, so every entry mixes every reading.

    Lidar readings are proximities ``1 - d / lidar_range`` in [0, 1], 0 where nothing is hit
    within range, 1 inside a circle. Ray r points at angle ``2*pi*(r + 0.5)/R`` (world frame).

    :param n_rays: lidar rays R (>= 1).
    :param lidar_range: lidar range, arena units (> 0).
    :param landmark_channels: number of landmark lidar channels (>= 1). Default: one per built-in
        kind, so every task's identifying inputs are its own; 1 puts all landmarks on one channel.
    :param wall_lidar: include the wall/solid channel.
    :param sensor_noise: std of Gaussian noise on position, velocity and on lidar readings that hit
        something (readings of 0 stay exactly 0, keeping unused channels sparse).
    :param action_noise: if not None, overrides every task's ``action_noise``.
    :param discrete_actions: ``Discrete(8)`` unit forces in 8 compass directions (0 = east,
        counter-clockwise) instead of the continuous ``Box(-action_bound, action_bound, (2,))``.
    :param action_bound: half-width of the continuous action Box (>= 1). The applied force is the
        action clipped to [-1, 1]; the excess is penalised (``saturation_penalty`` times its squared
        norm) so Gaussian policy means stay inside the force range.
    :param saturation_penalty: weight of that penalty (>= 0).
    :param force_scale: acceleration per unit force, arena units/s^2 (> 0).
    :param dt: integration step, seconds (> 0).
    :param max_speed: speed limit, arena units/s (> 0).
    :param max_episode_steps: time limit; the episode is truncated after this many steps (>= 1).
    :param shaping: potential-based shaping weight: reward += shaping * (d_before - d_after), where
        d is the distance to the goal centre (so a whole episode's shaping is O(1)).
    :param success_reward: bonus for reaching the goal (the episode then terminates).
    :param step_cost: cost subtracted every step (>= 0).
    :param cue_steps: POMDP variant. If not None, landmark channels are zero in every observation
        from the ``cue_steps``-th step of an episode on (the reset observation is step 0).
    :param observe_task_id: append a one-hot of the episode's task index.
    :param mix_seed: if not None, the seed of a fixed random orthogonal matrix Q
        (``obs_dim x obs_dim``) that mixes the observation: the agent sees ``Q @ obs``. No
        information is lost, but every input is dense and shared by every task, as a user's
        sensors are (the shared-input streams, ``docs/study/shared-inputs.md``).
    :param start_jitter: draw start positions from the start disc (else the disc centre).
    :param render_size: side of rendered frames, pixels.
    """

    n_rays: int = 16
    lidar_range: float = 2.0
    landmark_channels: int = N_KINDS
    wall_lidar: bool = True
    sensor_noise: float = 0.01
    action_noise: float | None = None
    discrete_actions: bool = False
    action_bound: float = 2.0
    saturation_penalty: float = 0.1
    force_scale: float = 1.0
    dt: float = 0.1
    max_speed: float = 1.0
    max_episode_steps: int = 100
    shaping: float = 2.0
    success_reward: float = 1.0
    step_cost: float = 0.0
    cue_steps: int | None = None
    observe_task_id: bool = False
    mix_seed: int | None = None
    start_jitter: bool = True
    render_size: int = 256

    def __post_init__(self) -> None:
        o = "WorldConfig"
        for name, lo in (
            ("n_rays", 1),
            ("landmark_channels", 1),
            ("max_episode_steps", 1),
            ("render_size", 16),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < lo:
                raise ValueError(f"{o}.{name}={v!r} must be an integer in [{lo}, inf)")
            setattr(self, name, int(v))
        if self.cue_steps is not None:
            v = self.cue_steps
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{o}.cue_steps={v!r} must be None or an integer in [0, inf)")
            self.cue_steps = int(v)
        if self.mix_seed is not None:
            v = self.mix_seed
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{o}.mix_seed={v!r} must be None or an integer in [0, inf)")
            self.mix_seed = int(v)
        for name in ("lidar_range", "force_scale", "dt", "max_speed"):
            _check_range(o, name, float(getattr(self, name)), 0.0, lo_open=True)
        for name in (
            "sensor_noise",
            "saturation_penalty",
            "step_cost",
            "shaping",
            "success_reward",
        ):
            _check_range(o, name, float(getattr(self, name)), 0.0)
        _check_range(o, "action_bound", float(self.action_bound), 1.0)
        if self.action_noise is not None:
            _check_range(o, "action_noise", float(self.action_noise), 0.0)

    def mixing_matrix(self, n_tasks: int) -> np.ndarray | None:
        """The fixed orthogonal matrix Q that mixes the observation (``None`` without
        ``mix_seed``), shape ``(obs_dim, obs_dim)`` float32: the Q of a QR decomposition of a
        standard normal matrix, signs fixed so that Q is Haar-distributed."""
        if self.mix_seed is None:
            return None
        d = self.obs_dim(n_tasks)
        a = np.random.default_rng(self.mix_seed).standard_normal((d, d))
        q, r = np.linalg.qr(a)
        return (q * np.sign(np.diag(r))).astype(np.float32)

    def obs_dim(self, n_tasks: int) -> int:
        """Length of the flat observation for an env over ``n_tasks`` tasks."""
        lidar = self.n_rays * (int(self.wall_lidar) + self.landmark_channels)
        return 4 + lidar + (n_tasks if self.observe_task_id else 0)
