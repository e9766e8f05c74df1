"""A task stream over the user's own Gymnasium envs.

A task is a Gymnasium env (a registered id or a factory) plus parameter values; a
:class:`~envs.stream.TaskStream` decides which task each episode runs (``mixture(t)`` at its
reset) and the drift of named parameters; an adapter (:mod:`envs.adapters`) sets the values on
the env. :class:`UserStreamCore` steps one env per slot and keeps the stream's ground truth;
:class:`UserStreamVectorEnv` (gymnasium) and :class:`UserStreamEnv` (a single gymnasium env)
front it here, :class:`~envs.user_sb3_vec_env.UserStreamVecEnv` for stable-baselines3.

Per task and slot the env is built once (tasks with the same id and ``make_kwargs`` share it)
and reconfigured at every reset: each parameter any task or drift touches gets the episode's
task value (or the env's default) plus its drift offset.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.adapters import ParamAdapter, check_value, default_adapter, require_minigrid
from envs.coerce import coerce
from envs.frontend import LONG, NavFrontEnd
from envs.stream import StreamSpec, TaskStream

SUCCESS_RULES = ("auto", "info", "terminated", "truncated", "never")
"""How an episode's ``is_success`` is decided: ``info`` reads the env's ``info["is_success"]``;
``terminated``/``truncated``: the episode ended that way (reaching a goal; surviving to the time
limit); ``auto``: ``info`` if the env reports it, else ``truncated`` for CartPole and
``terminated`` for any other env."""


@dataclass
class EnvTask:
    """One task: a Gymnasium env and the values of some of its parameters.

    :param env: a registered env id (``"CartPole-v1"``) or a zero-argument factory returning
        a ``gymnasium.Env``.
    :param params: parameter name -> value, set through ``adapter`` at every reset of an
        episode of this task (units: the parameter's own, see the adapter).
    :param make_kwargs: keyword arguments of ``gymnasium.make`` (ids only).
    :param success: one of :data:`SUCCESS_RULES`.
    :param adapter: sets the parameters (default: the shipped adapter of the env's family,
        :func:`envs.adapters.default_adapter`).
    """

    env: str | Callable[[], gym.Env]
    params: dict[str, float] = field(default_factory=dict)
    make_kwargs: dict[str, Any] = field(default_factory=dict)
    success: str = "auto"
    adapter: ParamAdapter | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.env, str) or callable(self.env)):
            raise ValueError(f"EnvTask.env={self.env!r} must be an env id or a factory")
        if self.success not in SUCCESS_RULES:
            raise ValueError(
                f"EnvTask.success={self.success!r} is unknown; allowed: {list(SUCCESS_RULES)}"
            )
        bad = {k: v for k, v in self.params.items() if not _is_number(v)}
        if bad:
            raise ValueError(f"EnvTask.params must be numbers, got {bad}")
        self.params = {str(k): float(v) for k, v in self.params.items()}

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any]) -> tuple[str, EnvTask]:
        """A task from the YAML form ``{env: CartPole-v1, length: 0.5, name: long}``.

        Keys other than ``env``, ``name``, ``success`` and ``make_kwargs`` are parameters.

        :return: ``(name, task)``; the name defaults to ``"CartPole-v1[length=0.5]"``.
        """
        if "env" not in entry:
            raise ValueError(f"an env task needs the key 'env' (a Gymnasium id), got {entry!r}")
        fixed = {"env", "name", "success", "make_kwargs"}
        params = {str(k): v for k, v in entry.items() if k not in fixed}
        task = cls(
            env=str(entry["env"]),
            params=params,
            make_kwargs=dict(entry.get("make_kwargs") or {}),
            success=str(entry.get("success", "auto")),
        )
        name = entry.get("name")
        if name is None:
            inner = ",".join(f"{k}={v:g}" for k, v in task.params.items())
            name = f"{task.env}[{inner}]" if inner else str(task.env)
        return str(name), task

    def key(self) -> tuple[Any, ...]:
        """Tasks with equal keys share one env per slot."""
        return (self.env, repr(sorted(self.make_kwargs.items())))

    def make(self, name: str) -> gym.Env:
        """Build the env, turning an unknown id into a ValueError that says what to do."""
        if callable(self.env):
            env = self.env()
            if not isinstance(env, gym.Env):
                raise ValueError(f"task {name!r}: the factory returned {env!r}, not a gym.Env")
            return env
        if self.env.startswith("MiniGrid"):
            require_minigrid()
        try:
            return gym.make(self.env, **self.make_kwargs)
        except gym.error.Error as exc:
            raise ValueError(
                f"task {name!r}: env={self.env!r} is not a registered Gymnasium id ({exc}); "
                "import the package that registers it, or pass a factory as env"
            ) from None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool)


def check_same_spaces(named: Mapping[str, gym.Env]) -> tuple[spaces.Space, spaces.Space]:
    """The shared observation and action spaces of the tasks' envs.

    :raises ValueError: two tasks differ; the message names both tasks and both spaces.
    """
    (first, env0), *rest = named.items()
    for name, env in rest:
        for what in ("observation_space", "action_space"):
            a, b = getattr(env0, what), getattr(env, what)
            if a != b:
                raise ValueError(
                    f"tasks must share their {what}: task {first!r} has {a}, task {name!r} "
                    f"has {b}; wrap the envs so that they agree"
                )
    return env0.observation_space, env0.action_space


class UserStreamCore:
    """N slots, each running episodes of the tasks a :class:`TaskStream` draws.

    :param tasks: task name -> :class:`EnvTask` (or the YAML mapping of
        :meth:`EnvTask.from_mapping`).
    :param stream: the schedule over those names (StreamSpec, mapping of its fields, or a
        TaskStream built with ``drift_params``); drift names adapter parameters.
    :param n_envs: number of slots N.
    :param seed: seed of the stream, of the task draws and of the envs (slot i: ``seed + i``).
    :param task_names: the task universe that ``task_id`` indexes (default: the stream's tasks).
    :param observe: parameters appended to each observation (the visible context of contextual
        RL, as in CARL), mapped to [-1, 1] linearly from the range of the values the tasks of
        ``task_names`` give it (its adapter range if they all give the same), clipped; needs
        1-D Box observations.
    """

    def __init__(
        self,
        tasks: Mapping[str, EnvTask | Mapping[str, Any]],
        stream: StreamSpec | Mapping[str, Any] | TaskStream,
        n_envs: int = 8,
        seed: int | None = None,
        task_names: Sequence[str] | None = None,
        observe: Sequence[str] = (),
    ) -> None:
        if isinstance(n_envs, bool) or int(n_envs) != n_envs or n_envs < 1:
            raise ValueError(f"n_envs={n_envs!r} must be an integer in [1, inf)")
        self.n = int(n_envs)
        self.tasks = {
            str(k): v if isinstance(v, EnvTask) else EnvTask.from_mapping({"name": k, **v})[1]
            for k, v in tasks.items()
        }
        if isinstance(stream, TaskStream):
            self.stream = stream
        else:
            spec = coerce(StreamSpec, stream, "StreamSpec")
            self.stream = TaskStream(spec, seed, drift_params=[d.param for d in spec.drift])
        self.task_names: list[str] = (
            list(task_names) if task_names is not None else list(self.stream.task_names)
        )
        if len(set(self.task_names)) != len(self.task_names):
            raise ValueError(f"task_names must be unique, got {self.task_names}")
        unknown = [n for n in self.task_names if n not in self.tasks]
        if unknown:
            raise ValueError(f"tasks {unknown} are not defined; defined: {sorted(self.tasks)}")
        missing = [m for m in self.stream.task_names if m not in self.task_names]
        if missing:
            raise ValueError(f"stream tasks {missing} are not among task_names {self.task_names}")
        self._stream_to_task = np.array([self.task_names.index(m) for m in self.stream.task_names])
        self._identity = self._stream_to_task.tolist() == list(range(len(self.task_names)))
        self._task_list = [self.tasks[n] for n in self.task_names]

        # one env per slot and distinct env key
        keys = list(dict.fromkeys(t.key() for t in self._task_list))
        self._key_of_task = [keys.index(t.key()) for t in self._task_list]
        first = [self._key_of_task.index(k) for k in range(len(keys))]
        self.envs: list[list[gym.Env]] = [
            [self._task_list[i].make(self.task_names[i]) for i in first] for _ in range(self.n)
        ]
        named = {n: self.envs[0][self._key_of_task[i]] for i, n in enumerate(self.task_names)}
        inner_obs, self.action_space = check_same_spaces(named)
        self._adapters = [self._adapter(i) for i in range(len(self.task_names))]
        self._setup_params()
        self.observe = list(observe)
        self.observation_space = self._observation_space(inner_obs)
        self._success = [self._success_rule(i) for i in range(len(self.task_names))]
        self._auto = [t.success == "auto" for t in self._task_list]

        self.task = np.zeros(self.n, dtype=np.int64)
        self.drift_rows = np.zeros((self.n, len(self.stream.drift_param_names)))
        self.values = np.zeros((self.n, len(self.param_names)))
        self.last_obs = np.zeros(
            (self.n, *self.observation_space.shape), dtype=self.observation_space.dtype
        )
        self._current: list[gym.Env] = [slot[0] for slot in self.envs]
        self._pending_seed: int | None = seed
        self.task_rng = np.random.default_rng(None if seed is None else [int(seed), 0x7A5C])

    # ------------------------------------------------------------------ setup
    def _adapter(self, i: int) -> ParamAdapter | None:
        task = self._task_list[i]
        adapter = task.adapter or default_adapter(self.envs[0][self._key_of_task[i]])
        if adapter is None and (task.params or self.stream.drift_specs):
            raise ValueError(
                f"task {self.task_names[i]!r} sets parameters but no adapter knows its env; "
                "pass EnvTask(adapter=...) (see envs.adapters.AttributeAdapter)"
            )
        return adapter

    def _setup_params(self) -> None:
        """Check every task value and drift range; note each task's canonical values."""
        drift = self.stream.drift_specs
        names = list(dict.fromkeys([p for t in self._task_list for p in t.params]))
        names += [d.param for d in drift if d.param not in names]
        self.param_names: list[str] = names
        reach: dict[str, float] = {}
        for d in drift:
            reach[d.param] = reach.get(d.param, 0.0) + d.bound
        self._canonical = np.full((len(self.task_names), len(names)), np.nan)
        for i, (name, task) in enumerate(zip(self.task_names, self._task_list, strict=True)):
            env, adapter = self.envs[0][self._key_of_task[i]], self._adapters[i]
            if adapter is None:
                continue
            wanted = list(task.params) + [d.param for d in drift]
            for p in dict.fromkeys(wanted):
                try:
                    lo, hi = adapter.bounds(env, p)
                except ValueError as exc:
                    field_name = (
                        f"tasks[{name!r}].{p}" if p in task.params else f"DriftSpec.param={p!r}"
                    )
                    raise ValueError(f"{field_name}: {exc}") from None
            for j, p in enumerate(names):
                if p not in wanted:
                    continue
                v = task.params.get(p)
                if v is None:
                    v = adapter.get(env, p)
                else:
                    check_value(adapter, env, p, v, f"tasks[{name!r}].{p}")
                self._canonical[i, j] = v
                if p in reach:
                    lo, hi = adapter.bounds(env, p)
                    a, b = v - reach[p], v + reach[p]
                    if a < lo or b > hi:
                        raise ValueError(
                            f"drift of {p!r} reaches [{a:g}, {b:g}] in task {name!r}, outside "
                            f"the allowed [{lo:g}, {hi:g}]; lower DriftSpec.bound or move the "
                            "task's value"
                        )
        # drift column -> parameter column, and which columns update every step
        self._drift_to_param = np.array(
            [names.index(d.param) for d in drift for _ in range(d.dim)], dtype=np.intp
        )
        self._step_drift = np.array(
            [k for k, d in enumerate(drift) if d.update == "step"], dtype=np.intp
        )
        self._step_params = sorted({int(self._drift_to_param[k]) for k in self._step_drift})
        # values = canonical + drift_rows @ _drift_matrix (several drifts of one parameter add)
        self._drift_matrix = np.zeros((len(self._drift_to_param), len(names)))
        self._drift_matrix[np.arange(len(self._drift_to_param)), self._drift_to_param] = 1.0

    def _observation_space(self, inner: spaces.Space) -> spaces.Space:
        if not self.observe:
            if not hasattr(inner, "shape") or isinstance(inner, (spaces.Dict, spaces.Tuple)):
                raise ValueError(
                    f"observation space {inner} is not an array space; wrap the envs (e.g. "
                    "gymnasium.wrappers.FlattenObservation)"
                )
            return inner
        if not (isinstance(inner, spaces.Box) and len(inner.shape) == 1):
            raise ValueError(f"observe needs 1-D Box observations, got {inner}")
        for p in self.observe:
            if p not in self.param_names:
                raise ValueError(
                    f"observe={self.observe}: {p!r} is not a parameter of any task or drift; "
                    f"parameters: {self.param_names}"
                )
        self._observe_cols = np.array([self.param_names.index(p) for p in self.observe])
        # Scale by the values the tasks set (the universe's, so training and evaluation envs
        # agree): two tasks that differ in a parameter see it as -1 and +1. A parameter that
        # no two tasks set apart (drift alone) is scaled by its adapter range instead.
        lo = np.nanmin(self._canonical[:, self._observe_cols], axis=0)
        hi = np.nanmax(self._canonical[:, self._observe_cols], axis=0)
        for c, p in enumerate(self.observe):
            if not hi[c] > lo[c]:
                k = int(np.flatnonzero(~np.isnan(self._canonical[:, self._observe_cols[c]]))[0])
                env = self.envs[0][self._key_of_task[k]]
                lo[c], hi[c] = self._adapters[k].bounds(env, p)  # type: ignore[union-attr]
        self._obs_mid = (lo + hi) / 2
        self._obs_half = np.maximum((hi - lo) / 2, 1e-12)
        ones = np.ones(len(self.observe), dtype=inner.dtype)
        return spaces.Box(
            np.concatenate([inner.low, -ones]),
            np.concatenate([inner.high, ones]),
            dtype=inner.dtype,
        )

    def _success_rule(self, i: int) -> str:
        rule = self._task_list[i].success
        if rule != "auto":
            return rule
        env = self.envs[0][self._key_of_task[i]]
        return "truncated" if type(env.unwrapped).__name__ == "CartPoleEnv" else "terminated"

    # ------------------------------------------------------------------ stream
    @property
    def t(self) -> int:
        return self.stream.t

    @property
    def drift_param_names(self) -> list[str]:
        return list(self.stream.drift_param_names)

    def mixture(self) -> np.ndarray:
        """Task probabilities over ``task_names`` now, shape (n_tasks,), read-only."""
        mix = self.stream.mixture()
        if self._identity:
            return mix
        out = np.zeros(len(self.task_names))
        out[self._stream_to_task] = mix
        out.setflags(write=False)
        return out

    def dominant_task(self) -> int:
        """Index into ``task_names`` of the most probable task now."""
        return int(self._stream_to_task[self.stream.dominant_task()])

    def env(self, i: int) -> gym.Env:
        """The env of slot ``i`` that runs its current episode."""
        return self._current[i]

    def seed(self, seed: int | None) -> None:
        """Restart the stream at t = 0; the next reset of slot i seeds its envs with seed + i."""
        self.stream.reset(seed)
        self.task_rng = np.random.default_rng(None if seed is None else [int(seed), 0x7A5C])
        self._pending_seed = seed

    # ------------------------------------------------------------------ episodes
    def _apply(self, i: int, cols: Sequence[int] | None = None) -> None:
        """Set slot i's parameters (all, or the columns ``cols``) on its env."""
        adapter = self._adapters[int(self.task[i])]
        if adapter is None:
            return
        env = self._current[i]
        row = self.values[i].tolist()
        names = self.param_names
        for j in range(len(names)) if cols is None else cols:
            if not math.isnan(row[j]):
                adapter.set(env, names[j], row[j])

    def _observe(self, i: int, obs: Any) -> np.ndarray:
        if not self.observe:
            return obs
        ctx = (self.values[i, self._observe_cols] - self._obs_mid) / self._obs_half
        ctx = np.clip(ctx, -1.0, 1.0)
        return np.concatenate([np.asarray(obs).reshape(-1), ctx.astype(self.last_obs.dtype)])

    def reset(self, idx: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Start new episodes in slots ``idx`` (default: all) with tasks drawn from the mixture
        now; their first observations go to ``last_obs``.

        :return: the envs' reset infos, one per slot of ``idx``.
        """
        idx = list(range(self.n)) if idx is None else list(idx)
        mix = self.stream.mixture()
        cdf = np.cumsum(mix)
        draws = np.searchsorted(cdf, self.task_rng.random(len(idx)) * cdf[-1], side="right")
        drift = self.stream.drift_values()
        seed = self._pending_seed
        self._pending_seed = None
        infos = []
        for i, d in zip(idx, draws.tolist(), strict=True):
            self.task[i] = k = int(self._stream_to_task[min(d, len(mix) - 1)])
            self._current[i] = self.envs[i][self._key_of_task[k]]
            self.drift_rows[i] = drift
            self.values[i] = self._canonical[k] + drift @ self._drift_matrix
            if seed is not None:
                for n, env in enumerate(self.envs[i]):
                    env.reset(seed=seed + i + 7919 * n)
                    env.action_space.seed(seed + i + 7919 * n)
            self._apply(i)
            obs, info = self.env(i).reset()
            self.last_obs[i] = self._observe(i, obs)
            infos.append(info)
        return infos

    def step(
        self, actions: Any, autoreset: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]], dict]:
        """Step every slot once, then advance stream time by N.

        :param actions: one action per slot (array of shape (N, ...) or a sequence).
        :param autoreset: start a new episode in each slot that finished (same step).
        :return: ``(obs, reward, terminated, truncated, infos, ended)``: obs (N, ...) (the
            first of the new episode where one ended and ``autoreset``), reward float32 (N,),
            terminated/truncated bool (N,), the envs' own infos (a list of N dicts), and
            ``ended``: slot -> ``(terminal_obs, is_success, task_id, drift_row)``.
        """
        n = self.n
        if self._step_drift.size:
            drift = self.stream.drift_values()
            self.drift_rows[:, self._step_drift] = drift[self._step_drift]
            self.values[...] = self._canonical[self.task] + self.drift_rows @ self._drift_matrix
            names = [self.param_names[j] for j in self._step_params]
            cols = self.values[:, self._step_params].tolist()
            for env, k, row in zip(self._current, self.task.tolist(), cols, strict=True):
                adapter = self._adapters[k]
                if adapter is not None:
                    for name, v in zip(names, row, strict=True):
                        if v == v:  # not NaN: a task whose env does not have the parameter
                            adapter.set(env, name, v)
        # Python lists in the loop, one array each after it: per-element numpy writes would
        # cost more than the wrapper's whole budget per step.
        obs_list: list[Any] = []
        rewards: list[float] = []
        term: list[bool] = []
        trunc: list[bool] = []
        infos: list[dict[str, Any]] = []
        ended: dict[int, tuple[np.ndarray, bool, int, np.ndarray]] = {}
        observe = bool(self.observe)
        for i, env in enumerate(self._current):
            obs, r, te, tr, info = env.step(actions[i])
            if observe:
                obs = self._observe(i, obs)
            if te or tr:
                ended[i] = (
                    np.array(obs),
                    self._succeeded(i, te, tr, info),
                    int(self.task[i]),
                    self.drift_rows[i].copy(),
                )
            obs_list.append(obs)
            rewards.append(r)
            term.append(te)
            trunc.append(tr)
            infos.append(info)
        self.last_obs[...] = obs_list
        self.stream.advance(n)
        if autoreset and ended:
            self.reset(list(ended))
        return (
            self.last_obs.copy(),
            np.array(rewards, dtype=np.float32),
            np.array(term, dtype=bool),
            np.array(trunc, dtype=bool),
            infos,
            ended,
        )

    def _succeeded(self, i: int, te: bool, tr: bool, info: Mapping[str, Any]) -> bool:
        """``is_success`` of slot i's episode that just ended (see :data:`SUCCESS_RULES`)."""
        k = int(self.task[i])
        rule = self._success[k]
        if rule == "info" or (self._auto[k] and "is_success" in info):
            return bool(info.get("is_success", False))
        if rule == "terminated":
            return bool(te)
        if rule == "truncated":
            return bool(tr and not te)
        return False

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """Picklable snapshot: the stream, the task generator, the slots' episodes and their
        envs (pickled; an env that cannot be pickled is saved as None and restarts)."""
        envs: list[bytes | None] = []
        for slot in self.envs:
            try:
                envs.append(pickle.dumps([e.unwrapped for e in slot]))
            except Exception:
                envs.append(None)
        return {
            "stream": self.stream.get_state(),
            "task_rng": self.task_rng.bit_generator.state,
            "task": self.task.copy(),
            "drift_rows": self.drift_rows.copy(),
            "values": self.values.copy(),
            "last_obs": self.last_obs.copy(),
            "envs": envs,
            "wrappers": [[_wrapper_state(e) for e in slot] for slot in self.envs],
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_state` of a core with the same configuration."""
        if state["task"].shape != self.task.shape or state["values"].shape != self.values.shape:
            raise ValueError("state was saved from a stream with a different n_envs or tasks")
        self.stream.set_state(state["stream"])
        self.task_rng = np.random.default_rng()
        self.task_rng.bit_generator.state = state["task_rng"]
        for k in ("task", "drift_rows", "values", "last_obs"):
            getattr(self, k)[...] = state[k]
        self._current = [
            slot[self._key_of_task[k]]
            for slot, k in zip(self.envs, self.task.tolist(), strict=True)
        ]
        self._pending_seed = None
        for i, blob in enumerate(state["envs"]):
            if blob is None:
                self.reset([i])
                continue
            for env, base, wrap in zip(
                self.envs[i], pickle.loads(blob), state["wrappers"][i], strict=True
            ):
                _replace_unwrapped(env, base)
                _set_wrapper_state(env, wrap)

    def close(self) -> None:
        for slot in self.envs:
            for env in slot:
                env.close()


# The wrappers gymnasium.make adds keep per-episode counters; they are saved beside the env.
_WRAPPER_FIELDS = ("_elapsed_steps", "_has_reset", "_disable_render_order_enforcing")


def _wrapper_state(env: gym.Env) -> list[dict[str, Any]]:
    out = []
    while isinstance(env, gym.Wrapper):
        out.append({k: getattr(env, k) for k in _WRAPPER_FIELDS if k in vars(env)})
        env = env.env
    return out


def _set_wrapper_state(env: gym.Env, state: list[dict[str, Any]]) -> None:
    for fields in state:
        for k, v in fields.items():
            setattr(env, k, v)
        env = env.env  # type: ignore[attr-defined]


def _replace_unwrapped(env: gym.Env, base: gym.Env) -> None:
    """Put ``base`` in place of ``env``'s innermost env (``env`` itself if unwrapped)."""
    if not isinstance(env, gym.Wrapper):
        env.__dict__.update(base.__dict__)
        return
    while isinstance(env.env, gym.Wrapper):
        env = env.env
    env.env = base


class UserStreamVectorEnv(NavFrontEnd, VectorEnv):
    """A stream over user envs as a gymnasium ``VectorEnv`` with same-step autoreset.

    Arguments as :class:`UserStreamCore` (``num_envs`` for ``n_envs``). ``step`` returns
    gymnasium's dict-of-arrays infos: ``task_id`` (N,), ``dominant_task_id`` (N,), ``mixture``
    (N, n_tasks), ``drift`` (N, D), each with its ``_<key>`` mask; when envs finish,
    ``final_obs`` and ``final_info`` (``is_success``, ``TimeLimit.truncated``, ``task_id``).
    ``reset(seed=s)`` restarts the stream at t = 0 and seeds slot i's envs with ``s + i``.
    """

    metadata: dict[str, Any] = {  # noqa: RUF012  (gymnasium's class-level convention)
        "render_modes": [],
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        tasks: Mapping[str, EnvTask | Mapping[str, Any]],
        stream: StreamSpec | Mapping[str, Any] | TaskStream,
        num_envs: int = 8,
        seed: int | None = None,
        task_names: Sequence[str] | None = None,
        observe: Sequence[str] = (),
    ) -> None:
        self.core = UserStreamCore(tasks, stream, num_envs, seed, task_names, observe)  # type: ignore[assignment]
        self.num_envs = self.core.n
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._all = np.ones(self.num_envs, dtype=bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs (``options={"reset_mask": bool array}``: only those); ``seed``
        restarts the stream and reseeds the envs."""
        super().reset(seed=seed)
        core: UserStreamCore = self.core  # type: ignore[assignment]
        if seed is not None:
            core.seed(seed)
        mask = None if options is None else options.get("reset_mask")
        core.reset(None if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool)))
        return core.last_obs.copy(), self._vector_infos(core.task.copy(), core.drift_rows.copy())

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        core: UserStreamCore = self.core  # type: ignore[assignment]
        infos = self._vector_infos(core.task.copy(), core.drift_rows.copy())
        obs, rew, term, trunc, _, ended = core.step(actions)
        if ended:
            done = term | trunc
            final_obs = np.full(self.num_envs, None, dtype=object)
            success = np.zeros(self.num_envs, dtype=bool)
            for i, (o, ok, _, _) in ended.items():
                final_obs[i], success[i] = o, ok
            infos["final_obs"], infos["_final_obs"] = final_obs, done
            infos["final_info"] = {
                "is_success": success,
                "_is_success": done,
                "TimeLimit.truncated": trunc & ~term,
                "_TimeLimit.truncated": done,
                "task_id": infos["task_id"],
                "_task_id": done,
            }
        return obs, rew, term, trunc, infos

    def close_extras(self, **kwargs: Any) -> None:
        self.core.close()  # type: ignore[attr-defined]


class UserStreamEnv(NavFrontEnd, gym.Env):
    """One slot of a stream over user envs as a single ``gymnasium.Env`` (no autoreset).

    Arguments as :class:`UserStreamCore` with N = 1. ``info`` holds ``task_id``,
    ``dominant_task_id``, ``mixture`` and ``drift``, plus ``is_success`` at an episode's end.
    ``reset(seed=s)`` restarts the stream at t = 0.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        tasks: Mapping[str, EnvTask | Mapping[str, Any]],
        stream: StreamSpec | Mapping[str, Any] | TaskStream | None = None,
        seed: int | None = None,
        task_names: Sequence[str] | None = None,
        observe: Sequence[str] = (),
    ) -> None:
        if stream is None:
            stream = StreamSpec.joint(list(tasks), LONG)
        self.core = UserStreamCore(tasks, stream, 1, seed, task_names, observe)  # type: ignore[assignment]
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space

    def _info(self) -> dict[str, Any]:
        core: UserStreamCore = self.core  # type: ignore[assignment]
        # fresh arrays: a single env's infos must not share data between calls
        stream_info = self._stream_info()
        return {
            "task_id": int(core.task[0]),
            "dominant_task_id": stream_info["dominant_task_id"],
            "mixture": stream_info["mixture"].copy(),
            "drift": core.drift_rows[0].copy(),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        core: UserStreamCore = self.core  # type: ignore[assignment]
        if seed is not None:
            core.seed(seed)
        info = core.reset()[0]
        return core.last_obs[0].copy(), {**info, **self._info()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        core: UserStreamCore = self.core  # type: ignore[assignment]
        info = self._info()
        obs, rew, term, trunc, inner, ended = core.step([action], autoreset=False)
        info = {**inner[0], **info}
        if 0 in ended:
            info["is_success"] = ended[0][1]
        return obs[0], float(rew[0]), bool(term[0]), bool(trunc[0]), info

    def close(self) -> None:
        self.core.close()  # type: ignore[attr-defined]


def name_env_tasks(entries: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, EnvTask]]:
    """Name the YAML task mappings of a schedule (see :meth:`EnvTask.from_mapping`).

    :param entries: one mapping per phase; equal mappings are one task.
    :return: the phase's task names in order, and name -> task.
    :raises ValueError: two different tasks share a name.
    """
    names: list[str] = []
    tasks: dict[str, EnvTask] = {}
    seen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        plain = {str(k): v for k, v in entry.items()}
        name, task = EnvTask.from_mapping(plain)
        if name in seen and seen[name] != plain:
            raise ValueError(
                f"two different env tasks are named {name!r}: {seen[name]} and {plain}; "
                "give them distinct 'name' keys"
            )
        seen[name] = plain
        tasks[name] = task
        names.append(name)
    return names, tasks
