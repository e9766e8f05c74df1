"""Task streams: a schedule of tasks with blurred boundaries and drifting parameters.

Stream time ``t`` is the global env-step count: a step of a vectorised env with N copies
advances it by N (it equals SB3's ``num_timesteps``). Everything here is a function of ``t``
(plus a seeded generator for the stochastic drift processes), so a stream is independent of how
many envs step it.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.coerce import coerce

DRIFT_PARAMS: dict[str, int] = {"goal": 2, "landmarks": 2, "wind": 2, "friction": 1}
"""Driftable parameters and their dimension. goal/landmarks/wind: 2-D offsets (arena units,
arena units/s^2 for wind) added to the task's canonical value; friction: scalar offset
(the result is clipped at 0). 'landmarks' moves all circles of the task together."""

DRIFT_PROCESSES = ("random_walk", "ou", "sine")
RAMPS = ("linear", "sigmoid")
SIGMOID_STEEPNESS = 10.0

TaskEntry = str | Mapping[str, float]


@dataclass
class DriftSpec:
    """A drifting parameter.

    Args:
        param: the drifting parameter: for the navigation envs one of ``DRIFT_PARAMS`` (goal,
            landmarks, wind, friction); for a stream over user envs a parameter its adapter
            knows (see :mod:`envs.adapters`), scalar. The stream that uses the spec checks it.
        process: ``"random_walk"`` (Gaussian steps, reflected at +-bound), ``"ou"``
            (Ornstein-Uhlenbeck towards 0, clipped to +-bound) or ``"sine"``
            (``bound * sin(2*pi*t/period + d*pi/2)`` in dimension d, a circle for 2-D params).
        bound: largest offset from the canonical value (> 0), in the parameter's units.
        sigma: random_walk/ou noise scale per sqrt(env step) (> 0).
        theta: ou mean-reversion rate per env step (> 0).
        period: sine period in env steps (> 0).
        update: ``"episode"``: each episode uses the value at its reset; ``"step"``: every
            step uses the current value.
    """

    param: str = "goal"
    process: str = "ou"
    bound: float = 0.15
    sigma: float = 0.002
    theta: float = 1e-4
    period: float = 20_000.0
    update: str = "episode"

    def __post_init__(self) -> None:
        if not isinstance(self.param, str) or not self.param:
            raise ValueError(f"DriftSpec.param={self.param!r} must be a non-empty name")
        if self.process not in DRIFT_PROCESSES:
            raise ValueError(
                f"DriftSpec.process={self.process!r} is unknown; allowed: {list(DRIFT_PROCESSES)}"
            )
        if self.update not in ("episode", "step"):
            raise ValueError(
                f"DriftSpec.update={self.update!r} is unknown; allowed: ['episode', 'step']"
            )
        for name in ("bound", "sigma", "theta", "period"):
            v = float(getattr(self, name))
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"DriftSpec.{name}={v} must be in (0, inf)")
            setattr(self, name, v)

    @property
    def dim(self) -> int:
        """Number of columns: a navigation parameter's dimension, 1 for any other."""
        return DRIFT_PARAMS.get(self.param, 1)

    @property
    def names(self) -> list[str]:
        """Names of this spec's columns in the drift row."""
        if self.dim == 1:
            return [self.param]
        return [f"{self.param}_x", f"{self.param}_y"]


def _task_entry(entry: Any, where: str) -> TaskEntry:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping):
        weights = {str(k): float(v) for k, v in entry.items()}
        if not weights:
            raise ValueError(f"{where}: a mixture needs at least one task")
        bad = {k: v for k, v in weights.items() if not (v >= 0 and math.isfinite(v))}
        if bad:
            raise ValueError(f"{where}: mixture weights must be in [0, 1], got {bad}")
        total = sum(weights.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"{where}: mixture weights must sum to 1, got {total:.6g}")
        return weights
    raise ValueError(f"{where}: task must be a name or a mapping name -> weight, got {entry!r}")


@dataclass
class StreamSpec:
    """A stream of tasks.

    Args:
        schedule: phases ``(task, duration)`` in order; duration in env steps (>= 1). ``task``
            is a task name, or a mapping ``{name: weight}`` (weights summing to 1) for a phase
            whose episodes draw their task from that mixture (see :meth:`joint`).
            Hydra-friendly forms ``[name, steps]`` and ``{task: name, steps: n}`` are accepted.
        blur: width in env steps of the transition window centred on each boundary
            (0 = hard switch); must not exceed any phase's duration.
        ramp: ``"linear"`` (trapezoid) or ``"sigmoid"`` weight ramp across the window.
        drift: drifting parameters (:class:`DriftSpec` or mappings of its fields).
    """

    schedule: list[tuple[TaskEntry, int]] = field(default_factory=lambda: [("north", 100_000)])
    blur: int = 0
    ramp: str = "linear"
    drift: list[DriftSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.schedule, (str, bytes)) or not isinstance(self.schedule, Sequence):
            raise ValueError("StreamSpec.schedule must be a list of (task, duration) entries")
        sched: list[tuple[TaskEntry, int]] = []
        for i, entry in enumerate(self.schedule):
            where = f"StreamSpec.schedule[{i}]"
            if isinstance(entry, Mapping):
                extra = set(entry) - {"task", "steps"}
                if extra or "task" not in entry or "steps" not in entry:
                    raise ValueError(f"{where} mapping must have exactly the keys 'task', 'steps'")
                task, steps = entry["task"], entry["steps"]
            else:
                try:
                    task, steps = entry
                except (TypeError, ValueError):
                    raise ValueError(
                        f"{where} must be a (task, duration) pair, got {entry!r}"
                    ) from None
            task = _task_entry(task, where)
            if isinstance(steps, bool) or int(steps) != steps or steps < 1:
                raise ValueError(f"{where}: duration={steps!r} must be an integer in [1, inf)")
            sched.append((task, int(steps)))
        if not sched:
            raise ValueError("StreamSpec.schedule must have at least one entry")
        self.schedule = sched
        if isinstance(self.blur, bool) or int(self.blur) != self.blur or self.blur < 0:
            raise ValueError(f"StreamSpec.blur={self.blur!r} must be an integer in [0, inf)")
        self.blur = int(self.blur)
        if len(sched) > 1:
            shortest = min(d for _, d in sched)
            if self.blur > shortest:
                raise ValueError(
                    f"StreamSpec.blur={self.blur} must be in [0, {shortest}] (the shortest "
                    "phase), so transition windows do not overlap"
                )
        if self.ramp not in RAMPS:
            raise ValueError(f"StreamSpec.ramp={self.ramp!r} is unknown; allowed: {list(RAMPS)}")
        if isinstance(self.drift, (Mapping, str)) or not isinstance(self.drift, Sequence):
            raise ValueError("StreamSpec.drift must be a list of DriftSpec")
        self.drift = [coerce(DriftSpec, d, "DriftSpec") for d in self.drift]

    @classmethod
    def joint(cls, task_names: Sequence[str], steps: int, **kwargs: Any) -> StreamSpec:
        """One phase of ``steps`` env steps drawing tasks uniformly from ``task_names``."""
        names = list(task_names)
        if not names:
            raise ValueError("StreamSpec.joint: task_names must not be empty")
        return cls(schedule=[({n: 1.0 / len(names) for n in names}, steps)], **kwargs)

    @classmethod
    def sequence(cls, task_names: Sequence[str], steps: int, **kwargs: Any) -> StreamSpec:
        """Phases of ``steps`` env steps each, one per task, in order."""
        return cls(schedule=[(n, steps) for n in task_names], **kwargs)

    @property
    def task_names(self) -> list[str]:
        """Unique task names in order of first appearance."""
        names: list[str] = []
        for task, _ in self.schedule:
            for n in [task] if isinstance(task, str) else list(task):
                if n not in names:
                    names.append(n)
        return names

    def windows(self) -> list[tuple[int, int]]:
        """Each task's training window ``[start, end)`` in env steps, in :attr:`task_names` order.

        A task's window is the last phase that draws it (a revisited task: its last visit, the
        window whose end its forgetting is measured from); a mixture phase draws every task it
        names, so the single phase of :meth:`joint` gives every task ``(0, total)``.

        :return: one ``(start, end)`` pair per task, env steps.
        """
        last: dict[str, tuple[int, int]] = {}
        t = 0
        for task, steps in self.schedule:
            for n in [task] if isinstance(task, str) else list(task):
                last[n] = (t, t + steps)
            t += steps
        return [last[n] for n in self.task_names]

    def visits(self) -> list[tuple[str, int, int]]:
        """The single-task phases in order, consecutive phases of one task merged: each visit of
        a task, the window ``[start, end)`` in which it is learned (first visit) or re-learned.

        A mixture phase is no visit, so :meth:`joint` has none.

        :return: one ``(task name, start, end)`` triple per visit, env steps.
        """
        out: list[tuple[str, int, int]] = []
        t = 0
        for task, steps in self.schedule:
            if isinstance(task, str):
                if out and out[-1][0] == task and out[-1][2] == t:
                    out[-1] = (task, out[-1][1], t + steps)
                else:
                    out.append((task, t, t + steps))
            t += steps
        return out

    def boundaries(self) -> list[int]:
        """Env steps of the task switches: the ends of the phases whose next phase draws other
        tasks (consecutive phases of one task are one phase). Each switch is the middle of its
        blur window. Empty for a single phase, e.g. :meth:`joint`.

        :return: ascending env steps, one per switch.
        """
        out: list[int] = []
        t = 0
        for (task, steps), (following, _) in itertools.pairwise(self.schedule):
            t += steps
            if following != task:
                out.append(t)
        return out


def _ramp(u: float, kind: str) -> float:
    if kind == "linear":
        return u
    s = SIGMOID_STEEPNESS
    lo = 1.0 / (1.0 + math.exp(s / 2))
    hi = 1.0 / (1.0 + math.exp(-s / 2))
    return (1.0 / (1.0 + math.exp(-s * (u - 0.5))) - lo) / (hi - lo)


class _Drift:
    """A global drift process over stream time (one value shared by all envs)."""

    def __init__(self, spec: DriftSpec) -> None:
        self.spec = spec
        self.value = np.zeros(spec.dim)
        self.t = 0

    def reset(self) -> None:
        self.value = np.zeros(self.spec.dim)
        self.t = 0
        if self.spec.process == "sine":
            self._sine(0)

    def _sine(self, t: int) -> None:
        s = self.spec
        phase = 2 * math.pi * t / s.period + np.arange(s.dim) * (math.pi / 2)
        self.value = s.bound * np.sin(phase)

    def advance(self, t: int, rng: np.random.Generator) -> None:
        dt = t - self.t
        if dt <= 0:
            return
        self.t = t
        s = self.spec
        if s.process == "sine":
            self._sine(t)
        elif s.process == "random_walk":
            x = self.value + s.sigma * math.sqrt(dt) * rng.standard_normal(s.dim)
            # reflect into [-bound, bound]
            b = s.bound
            y = np.mod(x + b, 4 * b)
            self.value = np.where(y <= 2 * b, y, 4 * b - y) - b
        else:  # exact Ornstein-Uhlenbeck transition over dt steps
            decay = math.exp(-s.theta * dt)
            std = s.sigma * math.sqrt((1 - decay**2) / (2 * s.theta))
            x = self.value * decay + std * rng.standard_normal(s.dim)
            self.value = np.clip(x, -s.bound, s.bound)


class TaskStream:
    """Mixture weights and drift values of a :class:`StreamSpec` as functions of stream time.

    Args:
        spec: the stream (a StreamSpec or a mapping of its fields).
        seed: seed of the generator that drives the drift processes.
        drift_params: the parameters the stream's drift may name (default: the navigation
            world's ``DRIFT_PARAMS``); a stream over user envs passes its adapters' parameters.

    Attributes:
        task_names: unique task names, in order of first appearance.
        boundaries: env-step times of the phase switches.
        total_steps: sum of the phase durations; after it the last phase continues.
        drift_param_names: names of the columns of :meth:`drift_values`.
    """

    def __init__(
        self,
        spec: StreamSpec | Mapping[str, Any],
        seed: int | None = None,
        drift_params: Sequence[str] | None = None,
    ) -> None:
        self.spec = coerce(StreamSpec, spec, "StreamSpec")
        allowed = sorted(DRIFT_PARAMS if drift_params is None else drift_params)
        for d in self.spec.drift:
            if d.param not in allowed:
                raise ValueError(f"DriftSpec.param={d.param!r} is unknown; allowed: {allowed}")
        self.task_names: list[str] = self.spec.task_names
        index = {n: i for i, n in enumerate(self.task_names)}
        self._phase_weights: list[np.ndarray] = []
        for task, _ in self.spec.schedule:
            w = np.zeros(len(self.task_names))
            for n, p in ({task: 1.0} if isinstance(task, str) else task).items():
                w[index[n]] += p
            self._phase_weights.append(w)
        ends = np.cumsum([d for _, d in self.spec.schedule]).tolist()
        self._starts: list[int] = [0, *ends[:-1]]
        self.boundaries: list[int] = [int(e) for e in ends[:-1]]
        self.total_steps: int = int(ends[-1])
        self._drifts = [_Drift(d) for d in self.spec.drift]
        self.drift_param_names: list[str] = [n for d in self.spec.drift for n in d.names]
        for w in self._phase_weights:
            w.setflags(write=False)
        self._cache_t = -1
        self._cache_mix = self._phase_weights[0]
        self._cache_dominant = 0
        self._const_lo, self._const_hi = 0.0, -1.0  # empty: nothing cached yet
        self._const_mix = self._phase_weights[0]
        self._const_dominant = 0
        self.reset(seed)

    @property
    def n_tasks(self) -> int:
        return len(self.task_names)

    @property
    def drift_specs(self) -> list[DriftSpec]:
        return list(self.spec.drift)

    def reset(self, seed: int | None = None) -> None:
        """Restart at t = 0 with fresh drift processes (seeded if ``seed`` is given)."""
        self.t = 0
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 0x5EED])
        for d in self._drifts:
            d.reset()

    def advance(self, n_steps: int) -> None:
        """Move stream time forward by ``n_steps`` env steps and update the drift processes."""
        self.t += int(n_steps)
        for d in self._drifts:
            d.advance(self.t, self.rng)

    def mixture(self, t: int | None = None) -> np.ndarray:
        """Task probabilities at stream time ``t`` (default: now), shape (n_tasks,).

        The returned array is shared and read-only.
        """
        t = self.t if t is None else int(t)
        if self._const_lo <= t < self._const_hi:
            return self._const_mix
        if t == self._cache_t:
            return self._cache_mix
        k = max(0, bisect.bisect_right(self._starts, t) - 1)
        w = self._phase_weights[k]
        n_phases = len(self._phase_weights)
        half = self.spec.blur / 2
        lo = self._starts[k] + half if k > 0 else -math.inf
        hi = self._starts[k + 1] - half if k + 1 < n_phases else math.inf
        if lo <= t < hi:
            # inside a phase, away from blur windows: constant until the next window
            self._const_lo, self._const_hi = lo, hi
            self._const_mix, self._const_dominant = w, int(np.argmax(w))
            return w
        if t < lo:
            r = _ramp((t - (self._starts[k] - half)) / self.spec.blur, self.spec.ramp)
            w = (1 - r) * self._phase_weights[k - 1] + r * w
        else:
            r = _ramp((t - hi) / self.spec.blur, self.spec.ramp)
            w = (1 - r) * w + r * self._phase_weights[k + 1]
        w.setflags(write=False)
        self._cache_t, self._cache_mix, self._cache_dominant = t, w, int(np.argmax(w))
        return w

    def dominant_task(self, t: int | None = None) -> int:
        """Index of the most probable task at stream time ``t`` (default: now)."""
        mix = self.mixture(t)
        return self._const_dominant if mix is self._const_mix else self._cache_dominant

    def drift_values(self) -> np.ndarray:
        """Current drift offsets, shape (len(drift_param_names),)."""
        if not self._drifts:
            return np.zeros(0)
        return np.concatenate([d.value for d in self._drifts])

    def get_state(self) -> dict[str, Any]:
        """Picklable state: stream time, drift process values, generator state."""
        return {
            "t": self.t,
            "drift": [(d.t, d.value.copy()) for d in self._drifts],
            "rng": self.rng.bit_generator.state,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`get_state` (of a stream with the same spec)."""
        if len(state["drift"]) != len(self._drifts):
            raise ValueError(
                f"stream state has {len(state['drift'])} drift processes, this stream has "
                f"{len(self._drifts)}"
            )
        self.t = int(state["t"])
        for d, (dt, value) in zip(self._drifts, state["drift"], strict=True):
            d.t, d.value = int(dt), np.array(value, dtype=np.float64)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self._cache_t = -1
