"""The batched numpy core: N point-mass agents stepped at once.

Every front end (SB3 ``VecEnv``, gymnasium ``VectorEnv``, single gymnasium ``Env``) wraps one
:class:`NavCore`, so the physics, observations and rewards exist once.

Per env the core holds the episode's task and its (possibly drifted) parameters, so envs of
one core may run different tasks at the same time: landmark sets are padded to the largest
task (padding circles have radius 0 and sit far outside the lidar range).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.coerce import coerce
from envs.config import WorldConfig
from envs.stream import StreamSpec, TaskStream
from envs.tasks import ARENA, TaskSpec, get_task

_PAD = 1.0e4  # padding circles: centre far away, radius 0 -> never hit within lidar range
_POS_MARGIN = 0.25  # observation bounds beyond the arena / speed limit, room for sensor noise


def _clip(x: np.ndarray, lo: float, hi: float, out: np.ndarray | None = None) -> np.ndarray:
    """np.clip via two ufuncs: several times faster than np.clip on small arrays."""
    out = np.maximum(x, lo, out=out)
    return np.minimum(out, hi, out=out)


_NOISE_POOL_SIZE = 1 << 20
_noise_pool_cache: list[np.ndarray] = []


def _noise_pool() -> np.ndarray:
    """The shared pool of standard normals for sensor noise (built on first use)."""
    if not _noise_pool_cache:
        pool = np.random.default_rng(0x5E2502).standard_normal(_NOISE_POOL_SIZE, np.float32)
        pool.setflags(write=False)
        _noise_pool_cache.append(pool)
    return _noise_pool_cache[0]


DIRECTIONS_8 = np.array(
    [[math.cos(a), math.sin(a)] for a in np.arange(8) * (math.pi / 4)], dtype=np.float64
)
"""Unit forces of the discrete action set: index k points at angle k*45 degrees (0 = east)."""


@dataclass
class StepOut:
    """What one batched step returns (arrays of the N envs).

    obs: (N, obs_dim) float32, after auto-reset (the new episodes' first observations).
    reward: (N,) float32.
    terminated, truncated: (N,) bool. truncated excludes terminated.
    task: (N,) int64 task index of the episode that made this step (before any reset).
    drift: (N, D) float64 drift offsets of those episodes (a fresh array every step).
    is_success: (N,) bool goal reached this step.
    progress: (N,) float64 1 - final/initial distance to the goal region, clipped to [0, 1].
    terminal_obs: (N, obs_dim) float32 observation before reset; only rows of finished envs
        are meaningful. It is ``obs`` itself when nothing was reset.
    """

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    task: np.ndarray
    drift: np.ndarray
    is_success: np.ndarray
    progress: np.ndarray
    terminal_obs: np.ndarray


class NavCore:
    """N point-mass navigation agents in the arena [-1, 1]^2.

    :param n_envs: number of agents N (>= 1).
    :param tasks: the task universe; an episode's task index indexes this list. Every task of
        ``stream`` must be in it.
    :param world: physics, reward and observation options (see :class:`WorldConfig` for the
        observation layout).
    :param stream: the task stream that reset draws tasks (``mixture(t)``) and drift from.
    :param seed: seed of the env generator (start jitter, noise, task draws) and of the stream.

    Dynamics per step (dt seconds): ``v += dt * (force_scale * f + wind - friction * v)``,
    ``|v| <= max_speed``, ``x += dt * v``; walls clamp x and zero the normal velocity; solid
    circles push the agent out and zero the inward velocity. ``f`` is the action clipped to
    [-1, 1] plus Gaussian action noise.
    """

    @classmethod
    def from_options(
        cls,
        n_envs: int,
        stream: StreamSpec | Mapping[str, Any] | TaskStream,
        world: WorldConfig | Mapping[str, Any] | None = None,
        seed: int | None = None,
        task_names: Sequence[str] | None = None,
        tasks: Mapping[str, TaskSpec] | None = None,
    ) -> NavCore:
        """A core from the envs' user-facing arguments (see :class:`~envs.sb3_vec_env.NavVecEnv`).

        A spec or mapping becomes a :class:`TaskStream` seeded with ``seed``; the task universe
        is ``task_names`` (default: the stream's tasks), looked up in ``tasks`` before the
        built-in library.
        """
        task_stream = stream if isinstance(stream, TaskStream) else TaskStream(stream, seed)
        names = list(task_names) if task_names is not None else task_stream.task_names
        return cls(
            n_envs,
            [get_task(name, tasks) for name in names],
            coerce(WorldConfig, world, "WorldConfig"),
            task_stream,
            seed,
        )

    def __init__(
        self,
        n_envs: int,
        tasks: Sequence[TaskSpec],
        world: WorldConfig,
        stream: TaskStream,
        seed: int | None = None,
    ) -> None:
        if isinstance(n_envs, bool) or int(n_envs) != n_envs or n_envs < 1:
            raise ValueError(f"n_envs={n_envs!r} must be an integer in [1, inf)")
        self.n = n = int(n_envs)
        self.tasks: list[TaskSpec] = list(tasks)
        if not self.tasks:
            raise ValueError("tasks must not be empty")
        self.task_names: list[str] = [t.name for t in self.tasks]
        if len(set(self.task_names)) != len(self.task_names):
            raise ValueError(f"task names must be unique, got {self.task_names}")
        missing = [m for m in stream.task_names if m not in self.task_names]
        if missing:
            raise ValueError(
                f"stream tasks {missing} are not among the env's tasks {self.task_names}"
            )
        self.world = world
        self.stream = stream
        self._stream_to_task = np.array([self.task_names.index(m) for m in stream.task_names])
        self._identity_map = self._stream_to_task.tolist() == list(range(len(self.tasks)))
        self.rng = np.random.default_rng(seed)
        self.stream.reset(seed)

        self._build_tables()
        w = world
        self.n_rays = R = w.n_rays
        ang = 2 * np.pi * (np.arange(R) + 0.5) / R  # half-step offset: no axis-parallel ray
        self._ux, self._uy = np.cos(ang), np.sin(ang)
        self._inv_ux, self._inv_uy = 1.0 / self._ux, 1.0 / self._uy
        self._bx, self._by = np.sign(self._ux) * ARENA, np.sign(self._uy) * ARENA
        f32 = np.float32
        self._ux32, self._uy32 = self._ux.astype(f32)[:, None], self._uy.astype(f32)[:, None]
        self._inv_ux32 = self._inv_ux.astype(f32)[:, None]
        self._inv_uy32 = self._inv_uy.astype(f32)[:, None]
        self._bx32, self._by32 = self._bx.astype(f32)[:, None], self._by.astype(f32)[:, None]
        self._inv_range32 = f32(1.0 / w.lidar_range)
        self.n_channels = C = w.landmark_channels
        self._wall0 = 4
        self._lm0 = 4 + (R if w.wall_lidar else 0)
        self._lm1 = self._lm0 + C * R
        self.obs_dim = w.obs_dim(len(self.tasks))
        mix = w.mixing_matrix(len(self.tasks))
        # obs @ Q^T, one matmul per observation batch (None: no mixing).
        self._mix_t = None if mix is None else np.ascontiguousarray(mix.T)
        self._arange = np.arange(n)

        # drift columns
        specs = stream.drift_specs
        self.drift_param_names: list[str] = list(stream.drift_param_names)
        cols: dict[str, list[int]] = {}
        ep_cols: list[int] = []
        step_cols: list[int] = []
        c = 0
        for s in specs:
            idx = list(range(c, c + s.dim))
            cols.setdefault(s.param, [])
            # several specs on one param add up: keep (start, dim) pairs
            cols[s.param].extend([c])
            (step_cols if s.update == "step" else ep_cols).extend(idx)
            c += s.dim
        self._drift_cols = {
            p: [(c0, 2 if p != "friction" else 1) for c0 in v] for p, v in cols.items()
        }
        self._ep_cols = np.array(ep_cols, dtype=np.intp)
        self._step_cols = np.array(step_cols, dtype=np.intp)
        self.n_drift = c

        # per-env state
        self.pos = np.zeros((n, 2))
        self.vel = np.zeros((n, 2))
        self.ep_t = np.zeros(n, dtype=np.int64)
        self.task = np.zeros(n, dtype=np.int64)
        self.goal_base = np.zeros((n, 2))
        self.goal = np.zeros((n, 2))
        self.goal_r = np.zeros(n)
        self.friction_base = np.zeros(n)
        self.friction = np.zeros(n)
        self.wind_base = np.zeros((n, 2))
        self.wind = np.zeros((n, 2))
        self.action_noise = np.zeros(n)
        M = self._M
        # landmark state is (M, N): the batch axis innermost keeps numpy's loops long
        self.lm_base = np.full((2, M, n), _PAD)
        self.lm_xy = np.full((2, M, n), _PAD)
        self.lm_r = np.zeros((M, n))
        self.lm_ch = np.zeros((M, n), dtype=np.intp)
        self.lm_seen = np.zeros((M, n), dtype=np.float32)
        self.lm_solid = np.zeros((M, n), dtype=bool)
        self.d0 = np.ones(n)
        self.drift_rows = np.zeros((n, self.n_drift))
        self.last_obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.reset()

    # ------------------------------------------------------------------ tables
    def _build_tables(self) -> None:
        T = len(self.tasks)
        M = max(1, max(len(t.landmarks) for t in self.tasks))
        self._M = M
        C = self.world.landmark_channels
        self.t_goal = np.array([t.goal for t in self.tasks], dtype=np.float64)
        self.t_goal_r = np.array([t.goal_radius for t in self.tasks])
        self.t_start = np.array([t.start for t in self.tasks], dtype=np.float64)
        self.t_start_r = np.array([t.start_radius for t in self.tasks])
        self.t_friction = np.array([t.friction for t in self.tasks])
        self.t_wind = np.array([t.wind for t in self.tasks], dtype=np.float64)
        an = self.world.action_noise
        self.t_action_noise = np.array([t.action_noise if an is None else an for t in self.tasks])
        self.t_lm_xy = np.full((T, M, 2), _PAD)
        self.t_lm_r = np.zeros((T, M))
        self.t_lm_kind = np.zeros((T, M), dtype=np.intp)
        self.t_lm_solid = np.zeros((T, M), dtype=bool)
        self.t_lm_valid = np.zeros((T, M), dtype=bool)
        for i, t in enumerate(self.tasks):
            for j, lm in enumerate(t.landmarks):
                self.t_lm_xy[i, j] = (lm.x, lm.y)
                self.t_lm_r[i, j] = lm.radius
                self.t_lm_kind[i, j] = lm.kind
                self.t_lm_solid[i, j] = lm.solid
                self.t_lm_valid[i, j] = True
        self.t_lm_ch = self.t_lm_kind % C
        self.t_lm_seen = (self.t_lm_valid & ~self.t_lm_solid).astype(np.float32)
        self.has_solid = bool(self.t_lm_solid.any())
        self._any_action_noise = bool((self.t_action_noise > 0).any())
        # If each task's visible landmarks share one channel, the per-channel max is one
        # reduction over landmarks instead of a loop.
        self.t_channel = np.zeros(T, dtype=np.intp)
        single = True
        for i in range(T):
            chans = set(self.t_lm_ch[i][self.t_lm_seen[i] > 0].tolist())
            if len(chans) > 1:
                single = False
            self.t_channel[i] = chans.pop() if chans else 0
        self._single_channel = single

    # ------------------------------------------------------------------ seeding / state
    def seed(self, seed: int | None, rng: np.random.Generator | None = None) -> None:
        """Reseed the env generator (or adopt ``rng``) and restart the stream at t = 0."""
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.stream.reset(seed)

    @property
    def t(self) -> int:
        """Stream time: global env-step count."""
        return self.stream.t

    _STATE_ARRAYS = (
        "pos",
        "vel",
        "ep_t",
        "task",
        "goal_base",
        "goal",
        "goal_r",
        "friction_base",
        "friction",
        "wind_base",
        "wind",
        "action_noise",
        "lm_base",
        "lm_xy",
        "lm_r",
        "lm_ch",
        "lm_seen",
        "lm_solid",
        "d0",
        "drift_rows",
        "last_obs",
    )

    def get_state(self) -> dict[str, Any]:
        """Picklable snapshot: stream state, env generator state and all episode state."""
        return {
            "stream": self.stream.get_state(),
            "rng": self.rng.bit_generator.state,
            "episodes": {k: getattr(self, k).copy() for k in self._STATE_ARRAYS},
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a snapshot from :meth:`get_state` of a core with the same configuration."""
        eps = state["episodes"]
        if eps["pos"].shape != self.pos.shape or eps["lm_r"].shape != self.lm_r.shape:
            raise ValueError("state was saved from an env with a different n_envs or task set")
        self.stream.set_state(state["stream"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        for k in self._STATE_ARRAYS:
            getattr(self, k)[...] = eps[k]

    # ------------------------------------------------------------------ stream
    def mixture(self) -> np.ndarray:
        """Task probabilities over ``task_names`` at the current stream time (read-only)."""
        mix = self.stream.mixture()
        if self._identity_map:
            return mix
        out = np.zeros(len(self.tasks))
        out[self._stream_to_task] = mix
        out.setflags(write=False)
        return out

    def dominant_task(self) -> int:
        """Index into ``task_names`` of the most probable task now."""
        return int(self._stream_to_task[self.stream.dominant_task()])

    def _sample_tasks(self, k: int) -> np.ndarray:
        mix = self.stream.mixture()
        cdf = np.cumsum(mix)
        idx = np.searchsorted(cdf, self.rng.random(k) * cdf[-1], side="right")
        return self._stream_to_task[np.minimum(idx, len(mix) - 1)]

    # ------------------------------------------------------------------ params
    def _apply_params(self, idx: np.ndarray | slice) -> None:
        """Effective parameters = canonical + drift offsets, for envs ``idx``."""
        rows = self.drift_rows[idx]
        cols = self._drift_cols
        goal = self.goal_base[idx]
        if "goal" in cols:
            goal = goal + sum(rows[:, c0 : c0 + 2] for c0, _ in cols["goal"])
            lim = (ARENA - self.goal_r[idx])[:, None]
            goal = np.clip(goal, -lim, lim)
        self.goal[idx] = goal
        wind = self.wind_base[idx]
        if "wind" in cols:
            wind = wind + sum(rows[:, c0 : c0 + 2] for c0, _ in cols["wind"])
        self.wind[idx] = wind
        fr = self.friction_base[idx]
        if "friction" in cols:
            fr = np.maximum(fr + sum(rows[:, c0] for c0, _ in cols["friction"]), 0.0)
        self.friction[idx] = fr
        lm = self.lm_base[:, :, idx]
        if "landmarks" in cols:
            lm = lm + sum(rows[:, c0 : c0 + 2].T[:, None, :] for c0, _ in cols["landmarks"])
        self.lm_xy[:, :, idx] = lm

    # ------------------------------------------------------------------ reset
    def reset(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Start new episodes in envs ``idx`` (default: all); returns their observations.

        Tasks are drawn from the stream's mixture at the current stream time; "episode"
        drift takes the current drift values.
        """
        if idx is None:
            idx = self._arange
        k = len(idx)
        if k == 0:
            return np.zeros((0, self.obs_dim), dtype=np.float32)
        task = self._sample_tasks(k)
        self.task[idx] = task
        start = self.t_start[task]
        if self.world.start_jitter:
            r = self.t_start_r[task] * np.sqrt(self.rng.random(k))
            a = self.rng.random(k) * (2 * np.pi)
            start = start + np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
        self.pos[idx] = start
        self.vel[idx] = 0.0
        self.ep_t[idx] = 0
        self.goal_base[idx] = self.t_goal[task]
        self.goal_r[idx] = self.t_goal_r[task]
        self.friction_base[idx] = self.t_friction[task]
        self.wind_base[idx] = self.t_wind[task]
        self.action_noise[idx] = self.t_action_noise[task]
        self.lm_base[:, :, idx] = self.t_lm_xy[task].transpose(2, 1, 0)
        self.lm_r[:, idx] = self.t_lm_r[task].T
        self.lm_ch[:, idx] = self.t_lm_ch[task].T
        self.lm_seen[:, idx] = self.t_lm_seen[task].T
        self.lm_solid[:, idx] = self.t_lm_solid[task].T
        if self.n_drift:
            self.drift_rows[idx] = self.stream.drift_values()
        self._apply_params(idx)
        d = np.hypot(*(self.pos[idx] - self.goal[idx]).T)
        self.d0[idx] = np.maximum(d - self.goal_r[idx], 1e-6)
        obs = self._observe(idx)
        self.last_obs[idx] = obs
        return obs

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray, autoreset: bool = True) -> StepOut:
        """Advance all N envs by one step of ``dt``; stream time advances by N.

        :param actions: (N, 2) float forces (continuous) or (N,) ints in [0, 8) (discrete).
        :param autoreset: reset finished envs in the same step (their ``obs`` rows are then the new
            episodes' first observations; the final ones are in ``terminal_obs``).
        :return: the step's arrays, each with N rows (see :class:`StepOut`).
        """
        w = self.world
        n = self.n
        if w.discrete_actions:
            a = np.asarray(actions).reshape(n).astype(np.intp)
            if a.min() < 0 or a.max() > 7:
                raise ValueError("discrete actions must be in [0, 8)")
            force = DIRECTIONS_8[a]
            penalty = 0.0
        else:
            a = np.asarray(actions, dtype=np.float64).reshape(n, 2)
            force = _clip(a, -1.0, 1.0)
            ex = a - force
            penalty = w.saturation_penalty * (ex[:, 0] * ex[:, 0] + ex[:, 1] * ex[:, 1])
        if self._any_action_noise:
            force = force + self.action_noise[:, None] * self.rng.standard_normal((n, 2))

        if self._step_cols.size:
            self.drift_rows[:, self._step_cols] = self.stream.drift_values()[self._step_cols]
            self._apply_params(slice(None))

        pos, vel = self.pos, self.vel
        diff = pos - self.goal
        d_prev = np.hypot(diff[:, 0], diff[:, 1])

        vel += w.dt * (w.force_scale * force + self.wind - self.friction[:, None] * vel)
        speed = np.hypot(vel[:, 0], vel[:, 1])
        over = speed > w.max_speed
        if over.any():
            vel[over] *= (w.max_speed / speed[over])[:, None]
        pos += w.dt * vel
        clamped = _clip(pos, -ARENA, ARENA)
        hit_wall = clamped != pos
        if hit_wall.any():
            pos[...] = clamped
            vel[hit_wall] = 0.0
        if self.has_solid:
            self._collide()

        diff = pos - self.goal
        d = np.hypot(diff[:, 0], diff[:, 1])
        success = d <= self.goal_r
        reward = w.shaping * (d_prev - d) - penalty
        if w.success_reward:
            reward += w.success_reward * success
        if w.step_cost:
            reward -= w.step_cost
        self.ep_t += 1
        truncated = (self.ep_t >= w.max_episode_steps) & ~success
        done = success | truncated
        progress = _clip(1.0 - np.maximum(d - self.goal_r, 0.0) / self.d0, 0.0, 1.0)
        task = self.task.copy()
        drift = self.drift_rows.copy()

        obs = self._observe(None)
        terminal_obs = obs
        if autoreset and done.any():
            idx = np.flatnonzero(done)
            terminal_obs = obs
            obs = obs.copy()
            obs[idx] = self.reset(idx)
        self.last_obs = obs
        self.stream.advance(n)
        return StepOut(
            obs,
            reward.astype(np.float32),
            success,
            truncated,
            task,
            drift,
            success,
            progress,
            terminal_obs,
        )

    def _collide(self) -> None:
        """Push agents out of solid circles and remove their inward velocity."""
        rx = self.pos[:, 0] - self.lm_xy[0]  # (M, N)
        ry = self.pos[:, 1] - self.lm_xy[1]
        inside = self.lm_solid & (rx * rx + ry * ry < self.lm_r * self.lm_r)
        if not inside.any():
            return
        for m, i in zip(*np.nonzero(inside), strict=True):
            c = self.lm_xy[:, m, i]
            r = self.lm_r[m, i]
            dv = self.pos[i] - c
            dn = float(np.hypot(*dv))
            normal = dv / dn if dn > 1e-12 else np.array([1.0, 0.0])
            self.pos[i] = np.clip(c + r * normal, -ARENA, ARENA)
            vn = float(self.vel[i] @ normal)
            if vn < 0:
                self.vel[i] -= vn * normal

    # ------------------------------------------------------------------ observation
    def _observe(self, idx: np.ndarray | None) -> np.ndarray:
        """Observations of envs ``idx`` (default all), shape (k, obs_dim) float32.

        The lidar works in (M, R, k) layout, float32: batch innermost, so each numpy op runs
        one long loop (M landmarks, R rays).
        """
        w = self.world
        if idx is None:
            pos, vel, lm_xy, lm_r = self.pos, self.vel, self.lm_xy, self.lm_r
            seen, ep_t, task = self.lm_seen, self.ep_t, self.task
        else:
            pos, vel = self.pos[idx], self.vel[idx]
            lm_xy, lm_r = self.lm_xy[:, :, idx], self.lm_r[:, idx]
            seen, ep_t, task = self.lm_seen[:, idx], self.ep_t[idx], self.task[idx]
        k = len(pos)
        R = self.n_rays
        obs = np.zeros((k, self.obs_dim), dtype=np.float32)
        obs[:, 0:2] = pos
        obs[:, 2:4] = vel

        # circles: ray p + s*u hits circle (c, r) at s = b - sqrt(b^2 - c2), b = (c-p).u,
        # c2 = |c-p|^2 - r^2; c2 < 0 means inside (reading 1).
        px = pos[:, 0].astype(np.float32)
        py = pos[:, 1].astype(np.float32)
        rx = lm_xy[0].astype(np.float32) - px  # (M, k)
        ry = lm_xy[1].astype(np.float32) - py
        rr = lm_r.astype(np.float32)
        c2 = rx * rx + ry * ry - rr * rr
        b = rx[:, None, :] * self._ux32 + ry[:, None, :] * self._uy32  # (M, R, k)
        disc = b * b - c2[:, None, :]
        hit = (disc >= 0) & ((b > 0) | (c2 < 0)[:, None, :])
        # |disc|: negative entries are masked by ``hit`` below; abs is cheaper than maximum
        np.sqrt(np.abs(disc, out=disc), out=disc)
        b -= disc  # distance to the first intersection
        b *= -self._inv_range32
        b += 1.0
        b *= hit
        prox = np.clip(b, 0.0, 1.0, out=b)  # (M, R, k)

        if w.wall_lidar:
            tx = (self._bx32 - px) * self._inv_ux32  # (R, k)
            ty = (self._by32 - py) * self._inv_uy32
            wall = np.minimum(tx, ty)
            wall *= -self._inv_range32
            wall += 1.0
            np.clip(wall, 0.0, 1.0, out=wall)
            if self.has_solid:
                solid = self.lm_solid if idx is None else self.lm_solid[:, idx]
                wall = np.maximum(wall, (prox * solid[:, None, :]).max(axis=0))
            obs[:, self._wall0 : self._wall0 + R] = wall.T

        lm = obs[:, self._lm0 : self._lm1].reshape(k, self.n_channels, R)
        vis = prox * seen[:, None, :]
        rows = np.arange(k)
        if self._single_channel:
            lm[rows, self.t_channel[task]] = vis.max(axis=0).T
        else:
            ch = self.lm_ch if idx is None else self.lm_ch[:, idx]
            for m in range(vis.shape[0]):
                cur = lm[rows, ch[m]]
                lm[rows, ch[m]] = np.maximum(cur, vis[m].T)

        if w.sensor_noise > 0:
            lid = obs[:, 4 : self._lm1]
            noise = self._gaussian(k * self._lm1).reshape(k, -1) * np.float32(w.sensor_noise)
            noise[:, 4:] *= lid > 0  # readings of 0 (nothing hit) stay exactly 0
            obs[:, 0 : self._lm1] += noise
            np.clip(lid, 0.0, 1.0, out=lid)
            lim_p, lim_v = ARENA + _POS_MARGIN, w.max_speed + _POS_MARGIN
            _clip(obs[:, 0:2], -lim_p, lim_p, out=obs[:, 0:2])
            _clip(obs[:, 2:4], -lim_v, lim_v, out=obs[:, 2:4])
        if w.cue_steps is not None:
            hidden = ep_t >= w.cue_steps
            if hidden.any():
                obs[hidden, self._lm0 : self._lm1] = 0.0
        if w.observe_task_id:
            obs[rows, self._lm1 + task] = 1.0
        if self._mix_t is not None:
            return obs @ self._mix_t
        return obs

    def _gaussian(self, n: int) -> np.ndarray:
        """n standard normal float32 values (read-only view).

        Drawing thousands of normals per step would dominate the step time, so sensor noise
        is read from a fixed pool of standard normals at an offset drawn from the env's
        generator: each value is exactly N(0, 1), and which values an env sees is still
        determined by its seed.
        """
        pool = _noise_pool()
        if n > pool.size // 2:
            return self.rng.standard_normal(n, dtype=np.float32)
        off = int(self.rng.integers(0, pool.size - n))
        return pool[off : off + n]

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of the observation Box, shape (obs_dim,) float32 each."""
        low = np.zeros(self.obs_dim, dtype=np.float32)
        high = np.ones(self.obs_dim, dtype=np.float32)
        lim_p, lim_v = ARENA + _POS_MARGIN, self.world.max_speed + _POS_MARGIN
        low[0:2], high[0:2] = -lim_p, lim_p
        low[2:4], high[2:4] = -lim_v, lim_v
        if self._mix_t is None:
            return low, high
        # Each mixed entry is Σ_j Q_ij obs_j: its bounds take each term at its own extreme,
        # widened by a margin for the float32 rounding of the matmul.
        q = self._mix_t.T.astype(np.float64)
        mixed_low = np.minimum(q * low, q * high).sum(axis=1) - 1e-4
        mixed_high = np.maximum(q * low, q * high).sum(axis=1) + 1e-4
        return mixed_low.astype(np.float32), mixed_high.astype(np.float32)

    # ------------------------------------------------------------------ rendering
    def render(self, i: int = 0) -> np.ndarray:
        """RGB frame of env ``i``, shape (S, S, 3) uint8 with S = world.render_size."""
        from envs.render import draw_scene

        task = self.task[i]
        circles = [
            (
                float(self.lm_xy[0, m, i]),
                float(self.lm_xy[1, m, i]),
                float(self.lm_r[m, i]),
                int(self.t_lm_kind[task, m]),
                bool(self.lm_solid[m, i]),
            )
            for m in range(self._M)
            if self.t_lm_valid[task, m]
        ]
        return draw_scene(
            size=self.world.render_size,
            goal=self.goal[i],
            goal_radius=float(self.goal_r[i]),
            landmarks=circles,
            agent=self.pos[i],
        )
