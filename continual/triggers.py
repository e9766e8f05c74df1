"""Triggers: when to consolidate, and when a new task seems to arrive.

A trigger is updated once per update period (for SB3: once per rollout, at ``_on_rollout_end``)
with a scalar signal, the global step count and the last step's ``infos``. It reports two events:

- ``shift``: a new task seems to be arriving (the peak of the signal). Used to restore
  exploration, reset optimizer moments, re-warm the learning rate.
- ``settled``: learning has levelled off (the plateau). Consolidates.

Triggers are plain Python objects with ``state_dict``/``load_state_dict`` (picklable builtins
only), testable on synthetic signals without any model.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

__all__ = [
    "BoundaryTrigger",
    "IntervalTrigger",
    "NeverTrigger",
    "PlateauTrigger",
    "Trigger",
    "TriggerEvent",
    "make_trigger",
]

Infos = Sequence[Mapping[str, Any]] | None


class TriggerEvent(NamedTuple):
    """What a trigger reports for one update."""

    shift: bool = False
    settled: bool = False


NO_EVENT = TriggerEvent()


@runtime_checkable
class Trigger(Protocol):
    """Decides consolidation (``settled``) and task arrival (``shift``) from a signal."""

    def update(self, signal: float, num_timesteps: int = 0, infos: Infos = None) -> TriggerEvent:
        """Consume one update period; ``signal`` may be NaN (then it is ignored)."""
        ...

    def stats(self) -> dict[str, float]:
        """Scalars for logging (thresholds, state)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


def _check_kind(state: Mapping[str, Any], kind: str) -> None:
    if not isinstance(state, Mapping) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"trigger state: expected kind {kind!r}, got {found!r}")


class NeverTrigger:
    """Never consolidates (plain fine-tuning)."""

    kind = "never"

    def update(self, signal: float, num_timesteps: int = 0, infos: Infos = None) -> TriggerEvent:
        return NO_EVENT

    def stats(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _check_kind(state, self.kind)


class IntervalTrigger:
    """``settled`` every ``n_steps`` environment steps (when ``num_timesteps`` crosses a multiple).

    :param n_steps: interval in environment steps (SB3 ``num_timesteps``), >= 1.
    """

    kind = "interval"

    def __init__(self, n_steps: int) -> None:
        if int(n_steps) < 1:
            raise ValueError(f"n_steps: must be >= 1, got {n_steps}")
        self.n_steps = int(n_steps)
        self._last = 0

    def update(self, signal: float, num_timesteps: int = 0, infos: Infos = None) -> TriggerEvent:
        index = int(num_timesteps) // self.n_steps
        if index > self._last:
            self._last = index
            return TriggerEvent(settled=True)
        return NO_EVENT

    def stats(self) -> dict[str, float]:
        return {"next_at": float((self._last + 1) * self.n_steps)}

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_steps": self.n_steps, "last": self._last}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _check_kind(state, self.kind)
        self.n_steps = int(state["n_steps"])
        self._last = int(state["last"])


class BoundaryTrigger:
    """Oracle: ``shift`` and ``settled`` when the ground-truth task id changes.

    Reads ``infos[j][key]`` of the last environment step (the first env that has the key). Used
    only for comparison: a task-free agent does not see task ids.

    :param key: info key holding the task id (default ``"dominant_task_id"``).
    """

    kind = "boundary"

    def __init__(self, key: str = "dominant_task_id") -> None:
        if not key:
            raise ValueError("key: must be a non-empty string")
        self.key = key
        self._current: Any = None
        self.n_boundaries = 0

    def update(self, signal: float, num_timesteps: int = 0, infos: Infos = None) -> TriggerEvent:
        task = next((info[self.key] for info in infos or () if self.key in info), None)
        if task is None:
            return NO_EVENT
        task = int(task)
        if self._current is None:
            self._current = task
            return NO_EVENT
        if task != self._current:
            self._current = task
            self.n_boundaries += 1
            return TriggerEvent(shift=True, settled=True)
        return NO_EVENT

    def stats(self) -> dict[str, float]:
        return {"task": float("nan") if self._current is None else float(self._current)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "current": self._current,
            "n_boundaries": self.n_boundaries,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _check_kind(state, self.kind)
        self.key = str(state["key"])
        self._current = state["current"]
        self.n_boundaries = int(state["n_boundaries"])


def _mean_std_slope(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation and least-squares slope per update of ``values``."""
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / max(n - 1, 1)
    x_mean = (n - 1) / 2
    sxx = math.fsum((i - x_mean) ** 2 for i in range(n))
    slope = math.fsum((i - x_mean) * (v - mean) for i, v in enumerate(values)) / sxx if sxx else 0.0
    return mean, math.sqrt(var), slope


class PlateauTrigger:
    """Task-free peak-then-plateau detector (Aljundi, Kelchtermans & Tuytelaars 2019), scale-free.

    Two states. It starts in ``learning`` (the first task is being learned: as if just after a
    peak).

    - ``learning`` → ``settled`` (event ``settled``, consolidate) when all hold:
      at least ``min_after_peak`` updates since the peak; at least ``min_spacing`` updates since
      the last consolidation; over the last ``window`` values the relative spread std/|mean| is
      below ``spread_tol`` and the relative slope |slope|·(window−1)/|mean| (the fitted change
      across the window, as a fraction of its mean) is below ``slope_tol``. The window's mean and
      std become the plateau reference (μ_p, σ_p).
    - ``settled`` → ``learning`` (event ``shift``) when the mean of the last ``peak_window``
      values exceeds μ_p + max(k·σ_p, rel_floor·|μ_p|). The relative floor keeps a
      near-noiseless plateau from turning tiny wiggles into peaks, and noise spikes (a mean of
      two values at 3× the plateau mean is ~5 standard deviations out for 30% log-normal
      noise). While settled, μ_p follows the signal as an exponentially weighted mean, at rate
      1/window when the signal is below it (learning still improves) and 1/(4·window) above:
      slow drift moves it along and does not count as a shift, while a change within a few
      windows (a switch, even a blurred one) does. σ_p stays that of the settled window.

    Every comparison is between ratios of the signal to itself, so multiplying the signal by a
    positive constant gives identical events.

    **Scale.** With ``scale="mean"`` the spread, slope and peak floor are relative to the
    plateau's own mean |μ|, which suits a positive loss that falls towards a small plateau
    (1 − explained variance). With ``scale="range"`` they are relative to the range
    max − min of every value seen so far, which is also invariant to adding a constant and so
    suits a signal whose plateau can sit at or across zero, such as the negative episode return.
    ``min_recovery`` (a fraction of the scale) is Aljundi et al.'s "peak, *then* plateau": a
    window only counts as a plateau once it lies that far below the highest value since the last
    shift. On the return signal this keeps the flat stretch of failed episodes just after a
    switch (a plateau *at* the peak) from being consolidated as if it were a learned task.

    ``min_after_peak`` is what keeps the early dip after a switch from being taken for a plateau:
    with PPO on navigation, 1 − explained variance jumps 50–130× for one rollout at a switch, dips
    for ~10 rollouts, bumps again when the new goal is first found (12–20 rollouts in) and settles
    25–35 rollouts in. Lag: once the signal is flat (within the tolerances) from update s on, the
    ``settled`` event comes at update max(s + window − 1, peak + min_after_peak,
    last consolidation + min_spacing) — exactly then for a noiseless signal, a few updates later
    when noise occasionally exceeds the tolerances.

    A switch that arrives while still ``learning`` gives no ``shift`` event (there is no plateau
    to compare with); the flatness test simply waits until the new task settles.

    :param window: number of updates in the plateau window (>= 3).
    :param k: peak threshold in plateau standard deviations (> 0).
    :param rel_floor: minimum peak height above the plateau mean, as a fraction of the scale
        (>= 0).
    :param peak_window: number of latest values averaged for the peak test (>= 1). Two halves the
        effect of single noisy spikes and still catches a one-rollout jump of ≳3× the threshold
        immediately.
    :param spread_tol: maximum std/|mean| of a plateau window (> 0).
    :param slope_tol: maximum relative change across a plateau window (> 0).
    :param min_after_peak: minimum updates between a peak and the next ``settled`` (>= 0).
    :param min_spacing: minimum updates between two ``settled`` events (>= 1).
    :param scale: ``"mean"`` | ``"range"``: what the relative tests divide by (see above).
    :param min_recovery: minimum drop from the peak (the highest value since the last shift, or
        since the start) to the plateau window's mean, as a fraction of the scale (>= 0; 0: off).
    """

    kind = "plateau"

    def __init__(
        self,
        window: int = 8,
        k: float = 4.0,
        rel_floor: float = 2.0,
        peak_window: int = 2,
        spread_tol: float = 0.35,
        slope_tol: float = 0.35,
        min_after_peak: int = 20,
        min_spacing: int = 10,
        scale: str = "mean",
        min_recovery: float = 0.0,
    ) -> None:
        if scale not in ("mean", "range"):
            raise ValueError(f'scale: must be "mean" or "range", got {scale!r}')
        checks = [
            ("window", window >= 3, ">= 3"),
            ("k", k > 0, "> 0"),
            ("rel_floor", rel_floor >= 0, ">= 0"),
            ("peak_window", peak_window >= 1, ">= 1"),
            ("spread_tol", spread_tol > 0, "> 0"),
            ("slope_tol", slope_tol > 0, "> 0"),
            ("min_after_peak", min_after_peak >= 0, ">= 0"),
            ("min_spacing", min_spacing >= 1, ">= 1"),
            ("min_recovery", min_recovery >= 0, ">= 0"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}: must be {allowed}, got {locals()[name]}")
        self.window = int(window)
        self.k = float(k)
        self.rel_floor = float(rel_floor)
        self.peak_window = int(peak_window)
        self.spread_tol = float(spread_tol)
        self.slope_tol = float(slope_tol)
        self.min_after_peak = int(min_after_peak)
        self.min_spacing = int(min_spacing)
        self.scale = scale
        self.min_recovery = float(min_recovery)
        self.reset()

    def reset(self) -> None:
        """Back to the initial state: learning the first task."""
        self._values: deque[float] = deque(maxlen=max(self.window, self.peak_window))
        self.settled = False
        self.since_peak = 0
        self.since_consolidation = self.min_spacing  # the first consolidation is not delayed
        self.plateau_mean = math.nan
        self.plateau_std = math.nan
        self.n_updates = 0
        self.n_shifts = 0
        self.n_settled = 0
        self.lowest = math.inf  # over every value seen: the "range" scale
        self.highest = -math.inf
        self.peak = -math.inf  # highest value since the last shift (or the start)
        self._last: tuple[float, float, float] = (math.nan, math.nan, math.nan)

    def _scale(self, mean: float) -> float:
        """What relative quantities divide by: |mean|, or the range of all values seen."""
        return abs(mean) if self.scale == "mean" else self.highest - self.lowest

    @property
    def threshold(self) -> float:
        """Current peak threshold (NaN while learning)."""
        if not self.settled:
            return math.nan
        return self.plateau_mean + max(
            self.k * self.plateau_std, self.rel_floor * self._scale(self.plateau_mean)
        )

    def _flat(self) -> tuple[bool, float, float, float]:
        mean, std, slope = _mean_std_slope(list(self._values)[-self.window :])
        scale = self._scale(mean)
        if scale == 0:
            self._last = (mean, math.inf, math.inf)
            return False, mean, std, math.inf
        spread, rel_slope = std / scale, abs(slope) * (self.window - 1) / scale
        recovered = not self.min_recovery or self.peak - mean >= self.min_recovery * scale
        self._last = (mean, spread, rel_slope)
        ok = recovered and spread < self.spread_tol and rel_slope < self.slope_tol
        return ok, mean, std, spread

    def update(self, signal: float, num_timesteps: int = 0, infos: Infos = None) -> TriggerEvent:
        signal = float(signal)
        if not math.isfinite(signal):
            return NO_EVENT
        self.n_updates += 1
        self.since_peak += 1
        self.since_consolidation += 1
        self._values.append(signal)
        self.lowest, self.highest = min(self.lowest, signal), max(self.highest, signal)
        self.peak = max(self.peak, signal)

        if self.settled:
            recent = list(self._values)[-self.peak_window :]
            if len(recent) == self.peak_window and math.fsum(recent) / len(recent) > self.threshold:
                self.settled = False
                self.since_peak = 0
                self.peak = max(recent)
                self.n_shifts += 1
                return TriggerEvent(shift=True)
            # The reference level follows improvements at rate 1/window and worsening at
            # 1/(4·window), so slow drift moves it along while a blurred switch's ramp barely
            # does; the noise scale stays that of the flat window it settled on (a ramp would
            # inflate it and hide the switch).
            rate = 1.0 if signal < self.plateau_mean else 0.25
            self.plateau_mean += rate / self.window * (signal - self.plateau_mean)
            return NO_EVENT

        if len(self._values) < self.window:
            return NO_EVENT
        ok, mean, std, _ = self._flat()
        if (
            ok
            and self.since_peak >= self.min_after_peak
            and self.since_consolidation >= self.min_spacing
        ):
            self.settled = True
            self.plateau_mean, self.plateau_std = mean, std
            self.since_consolidation = 0
            self.n_settled += 1
            return TriggerEvent(settled=True)
        return NO_EVENT

    def stats(self) -> dict[str, float]:
        mean, spread, rel_slope = self._last
        return {
            "state_settled": float(self.settled),
            "threshold": self.threshold,
            "plateau_mean": self.plateau_mean,
            "window_mean": mean,
            "window_spread": spread,
            "window_slope": rel_slope,
            "since_peak": float(self.since_peak),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": {
                "window": self.window,
                "k": self.k,
                "rel_floor": self.rel_floor,
                "peak_window": self.peak_window,
                "spread_tol": self.spread_tol,
                "slope_tol": self.slope_tol,
                "min_after_peak": self.min_after_peak,
                "min_spacing": self.min_spacing,
                "scale": self.scale,
                "min_recovery": self.min_recovery,
            },
            "values": list(self._values),
            "settled": self.settled,
            "since_peak": self.since_peak,
            "since_consolidation": self.since_consolidation,
            "plateau_mean": self.plateau_mean,
            "plateau_std": self.plateau_std,
            "n_updates": self.n_updates,
            "n_shifts": self.n_shifts,
            "n_settled": self.n_settled,
            "lowest": self.lowest,
            "highest": self.highest,
            "peak": self.peak,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _check_kind(state, self.kind)
        self.__init__(**state["config"])  # type: ignore[misc]
        self._values.extend(float(v) for v in state["values"])
        self.settled = bool(state["settled"])
        for key in ("since_peak", "since_consolidation", "n_updates", "n_shifts", "n_settled"):
            setattr(self, key, int(state[key]))
        self.plateau_mean = float(state["plateau_mean"])
        self.plateau_std = float(state["plateau_std"])
        # Absent from states saved before the range scale existed: rebuilt from the window.
        values = list(self._values) or [math.nan]
        self.lowest = float(state.get("lowest", min(values)))
        self.highest = float(state.get("highest", max(values)))
        self.peak = float(state.get("peak", max(values)))


_TRIGGERS: dict[str, type] = {
    "plateau": PlateauTrigger,
    "boundary": BoundaryTrigger,
    "interval": IntervalTrigger,
    "never": NeverTrigger,
}


def make_trigger(trigger: str | Trigger, **kwargs: Any) -> Trigger:
    """Build a trigger from its name (``plateau``, ``boundary``, ``interval``, ``never``) or pass
    an instance through."""
    if not isinstance(trigger, str):
        if kwargs:
            raise ValueError("trigger_kwargs: only allowed when the trigger is given by name")
        if not isinstance(trigger, Trigger):
            raise ValueError(f"trigger: {type(trigger).__name__} does not implement Trigger")
        return trigger
    if trigger not in _TRIGGERS:
        raise ValueError(
            f"trigger: must be one of {sorted(_TRIGGERS)} or a Trigger, got {trigger!r}"
        )
    return _TRIGGERS[trigger](**kwargs)
