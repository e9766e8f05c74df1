"""``TaskShiftDetector``: a signal and a trigger that tell, task-free, when the task changes.

After every rollout it computes the signal from the model, feeds the trigger, and dispatches
the trigger's two events: *settled* (learning levelled off: consolidate) and *shift* (a new
task seems to arrive: restore exploration). It knows nothing about what the events do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from continual.sb3.shift_actions import ShiftAction
from continual.sb3.signals import PLATEAU_DEFAULTS, SIGNALS, Signal
from continual.triggers import Trigger, TriggerEvent, make_trigger

__all__ = ["TaskShiftDetector"]


class TaskShiftDetector(BaseCallback):
    """Watch a signal after each rollout; on *settled* and *shift*, call the given actions.

    Logs ``continual/signal/<name>``, ``continual/shifts``, ``continual/event_settled``,
    ``continual/event_shift`` and ``continual/trigger/*`` to the model's logger.

    :param signal: ``"negative_return"`` | ``"unexplained_variance"`` | ``"value_mse"`` |
        ``"ppo_loss"`` (see :mod:`continual.sb3.signals`) or a callable ``model -> float``.
        With the plateau trigger, a built-in signal brings its tuned thresholds
        (``PLATEAU_DEFAULTS``).
    :param trigger: ``"plateau"`` (task-free), ``"boundary"`` (oracle: reads
        ``info["dominant_task_id"]``), ``"interval"`` (needs ``trigger_kwargs={"n_steps": N}``),
        ``"never"``, or a :class:`~continual.triggers.Trigger` instance.
    :param trigger_kwargs: keyword arguments of a trigger given by name; they override the
        signal's thresholds key by key.
    :param on_settled: called with no argument at every *settled* event.
    :param on_shift: called with the model at every *shift* event.
    :param verbose: 1 prints a line per shift.
    """

    def __init__(
        self,
        signal: str | Signal = "negative_return",
        trigger: str | Trigger = "plateau",
        trigger_kwargs: Mapping[str, Any] | None = None,
        on_settled: Sequence[Callable[[], None]] = (),
        on_shift: Sequence[ShiftAction] = (),
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose=verbose)
        if isinstance(signal, str) and signal not in SIGNALS:
            raise ValueError(
                f"signal: must be one of {sorted(SIGNALS)} or a callable, got {signal!r}"
            )
        kwargs = dict(trigger_kwargs or {})
        if trigger == "plateau" and isinstance(signal, str):
            kwargs = {**PLATEAU_DEFAULTS.get(signal, {}), **kwargs}
        self.trigger: Trigger = make_trigger(trigger, **kwargs)
        self.signal_name = (
            signal if isinstance(signal, str) else getattr(signal, "__name__", "custom")
        )
        self.signal_fn: Signal = SIGNALS[signal] if isinstance(signal, str) else signal
        self.on_settled = list(on_settled)
        self.on_shift = list(on_shift)
        self.n_shifts = 0
        self.last_signal = math.nan

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        signal = float(self.signal_fn(self.model))
        self.last_signal = signal
        event: TriggerEvent = self.trigger.update(
            signal, self.num_timesteps, self.locals.get("infos")
        )
        if event.settled:
            for settle in self.on_settled:
                settle()
        if event.shift:
            self.n_shifts += 1
            for action in self.on_shift:
                action(self.model)
            if self.verbose:
                t = self.num_timesteps
                print(f"[continual] t={t}: shift #{self.n_shifts} (signal {signal:.4g})")
        self._log(signal, event)

    def _log(self, signal: float, event: TriggerEvent) -> None:
        record = self.logger.record
        record(f"continual/signal/{self.signal_name}", signal)
        record("continual/shifts", self.n_shifts)
        record("continual/event_settled", float(event.settled))
        record("continual/event_shift", float(event.shift))
        for key, value in self.trigger.stats().items():
            record(f"continual/trigger/{key}", value)

    def state_dict(self) -> dict[str, Any]:
        """The trigger's state and the counters (builtins only)."""
        return {
            "trigger": self.trigger.state_dict(),
            "n_shifts": self.n_shifts,
            "last_signal": self.last_signal,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.trigger.load_state_dict(state["trigger"])
        self.n_shifts = int(state["n_shifts"])
        self.last_signal = float(state["last_signal"])
