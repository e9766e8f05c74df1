"""``ContinualCallback``: the one-liner: a named method, consolidated task-free, for any SB3 model.

It is a :class:`~stable_baselines3.common.callbacks.CallbackList` of two parts with one job
each: a :class:`~continual.sb3.detector.TaskShiftDetector` (signal + trigger) whose *settled*
event consolidates the :class:`~continual.sb3.consolidation.ConsolidationCallback`'s
regulariser and whose *shift* event runs the shift actions. Works with stock ``PPO``, ``A2C``
and sb3-contrib's ``RecurrentPPO`` without subclassing. How the parts fit: ``docs/concepts.md``.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from stable_baselines3.common.callbacks import CallbackList

from continual.io import atomic_write
from continual.presets import DEFAULT_METHOD, Method, get_method
from continual.regularisers import QuadraticRegulariser
from continual.regularisers.selection import resolve_groups
from continual.sb3.consolidation import ConsolidationCallback, RegulariserFactory
from continual.sb3.detector import TaskShiftDetector
from continual.sb3.shift_actions import ResetExploration, ShiftAction
from continual.sb3.signals import Signal
from continual.triggers import Trigger

__all__ = ["ContinualCallback"]

STATE_FORMAT = "continual.ContinualCallback/2"
_STATE_FORMAT_1 = "continual.ContinualCallback/1"


def _constructor_options(cls: type) -> set[str]:
    """Keyword options of ``cls`` and its bases (after ``params`` and ``optimizer``)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY or (
                p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in ("self", "params", "optimizer")
            ):
                names.add(p.name)
    return names - {"fn", "attach"}


def _merge_addons(preset: Sequence[Any], given: Sequence[Any]) -> list[Any]:
    """The method's add-ons with the given ones: a given add-on replaces the method's of the
    same class (e.g. a ``FunctionalAnchor`` of another strength), the others are kept."""
    replaced = {type(addon) for addon in given}
    return [a for a in preset if type(a) not in replaced] + list(given)


def _shift_actions(on_shift: Sequence[ShiftAction] | Mapping[str, Any] | None) -> list[Any]:
    if on_shift is None:
        return [ResetExploration(0.0)]
    if isinstance(on_shift, Mapping):  # the dict form of earlier releases
        unknown = sorted(set(on_shift) - {"reset_log_std"})
        if unknown:
            raise ValueError(
                f"on_shift: {unknown} are no longer shift actions; give a list of actions, "
                "e.g. [ResetExploration(log_std=0.0)], or [] for none"
            )
        level = on_shift.get("reset_log_std", 0.0)
        return [] if level is None else [ResetExploration(level)]
    actions = list(on_shift)
    for action in actions:
        if not callable(action):
            raise ValueError(f"on_shift: {action!r} is not callable as action(model)")
    return actions


class ContinualCallback(CallbackList):
    """Task-free continual learning for an on-policy SB3 model (PPO, A2C, RecurrentPPO).

    ``ContinualCallback()`` is the recommended method: SI keeping the larger half of each
    importance estimate, normalised, consolidating when the return has dropped and settled
    again. ``ContinualCallback("si_paper")`` is plain SI as in the paper;
    ``ContinualCallback("distill")`` anchors the policy's function instead of its weights, for
    tasks that share their inputs.

    :param regulariser: a method name from :data:`continual.presets.METHODS` (``"si"``,
        ``"distill"``, ``"si_paper"``, ``"l2"``, ``"ewc"``, ``"mas"``, ``"finetune"``),
        ``None`` (fine-tuning: the detector still runs and is logged, shift actions still
        apply), a :class:`~continual.regularisers.QuadraticRegulariser` subclass, a factory
        ``(policy, optimizer) -> regulariser``, or an instance built on the model's policy.
    :param trigger: ``"plateau"`` (task-free, default), ``"boundary"`` (oracle), ``"interval"``,
        ``"never"``, or a :class:`~continual.triggers.Trigger` instance.
    :param c: penalty strength (dimensionless); ``None``: the method's.
    :param select: which parameters carry importance: a group of
        :data:`~continual.regularisers.PARAMETER_GROUPS` (``"actor"``, ``"critic"``, ``"all"``,
        ...), name patterns, or ``{group: weight}`` for separate strengths, e.g.
        ``{"actor": 1.0, "critic": 0.1}``; ``None``: the method's (for ``"si"``,
        ``{"actor": 1.0, "critic": 0.01}``; for the others, ``"actor"``). A state saved with
        another method's selection (by an earlier release) resumes with the selection it was
        saved with.
    :param signal: what the detector watches: ``"negative_return"`` (default),
        ``"unexplained_variance"``, ``"value_mse"``, ``"ppo_loss"`` or a callable
        ``model -> float``.
    :param trigger_kwargs: keyword arguments of a trigger given by name.
    :param on_shift: actions ``action(model)`` run at each detected shift; ``None``:
        ``[ResetExploration(log_std=0.0)]``; ``[]``: none.
    :param n_estimate_samples: rollout observations for the EWC/MAS importance estimate.
    :param seed: seed of that draw.
    :param verbose: 1 prints consolidations and shifts.
    :param regulariser_options: further options of the regulariser, over the method's: ``xi``,
        ``normalize``, ``keep_top``, ``accumulate``, ``gamma``, ``exclude``,
        ``storage_dtype``, ``addons``. ``None`` values mean "the method's". A given add-on
        replaces the method's of its class, e.g.
        ``ContinualCallback("distill", addons=[FunctionalAnchor(strength=3.0)])``.
    """

    def __init__(
        self,
        regulariser: str
        | type[QuadraticRegulariser]
        | RegulariserFactory
        | QuadraticRegulariser
        | None = DEFAULT_METHOD,
        trigger: str | Trigger = "plateau",
        *,
        c: float | None = None,
        select: Any = None,
        signal: str | Signal = "negative_return",
        trigger_kwargs: Mapping[str, Any] | None = None,
        on_shift: Sequence[ShiftAction] | None = None,
        n_estimate_samples: int = 1024,
        seed: int = 0,
        verbose: int = 0,
        **regulariser_options: Any,
    ) -> None:
        if "params" in regulariser_options:
            raise ValueError("params: renamed to select (which parameters carry importance)")
        options = {k: v for k, v in regulariser_options.items() if v is not None}
        if c is not None:
            options["c"] = c
        if select is not None:
            options["select"] = select
        spec: Any = regulariser
        if isinstance(regulariser, str) or regulariser is None:
            method = get_method(regulariser)
            self.method = "finetune" if method.regulariser is None else str(regulariser)
            spec = method.regulariser
        elif isinstance(regulariser, type) and issubclass(regulariser, QuadraticRegulariser):
            method = Method(regulariser)
            self.method = regulariser.kind
        else:
            method = None
            self.method = getattr(regulariser, "kind", type(regulariser).__name__)
        if method is None or spec is None:
            if options:
                raise ValueError(
                    f"{sorted(options)}: regulariser options need a method name or a "
                    f"regulariser class, not {type(regulariser).__name__}"
                )
            kwargs: dict[str, Any] = {}
        else:
            preset = method.regulariser_kwargs()
            if "addons" in options and "addons" in preset:
                options["addons"] = _merge_addons(preset["addons"], options["addons"])
            kwargs = {**preset, **options}
            self._check_options(spec, kwargs)
        # A selection left to the method may differ from the one a saved state was made with.
        self._method_selects = select is None and bool(kwargs)
        self.consolidation = ConsolidationCallback(
            spec, n_estimate_samples=n_estimate_samples, seed=seed, verbose=verbose, **kwargs
        )
        self.detector = TaskShiftDetector(
            signal,
            trigger,
            trigger_kwargs,
            on_settled=[self.consolidation.consolidate],
            on_shift=_shift_actions(on_shift),
            verbose=verbose,
        )
        # The detector first: its settled event consolidates before the regulariser logs.
        super().__init__([self.detector, self.consolidation])
        self.verbose = verbose

    @staticmethod
    def _check_options(cls: type[QuadraticRegulariser], kwargs: Mapping[str, Any]) -> None:
        allowed = _constructor_options(cls)
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ValueError(
                f"{unknown}: not options of regulariser {cls.kind!r}; allowed: {sorted(allowed)}"
            )
        c = kwargs.get("c", 1.0)
        if not (isinstance(c, int | float) and math.isfinite(c) and c >= 0):
            raise ValueError(f"c: must be finite and >= 0, got {c!r}")
        keep_top = kwargs.get("keep_top")
        if keep_top is not None and not 0.0 < keep_top <= 1.0:
            raise ValueError(
                f"keep_top: must be None (keep all) or a fraction in (0, 1], got {keep_top}"
            )

    def _on_rollout_end(self) -> None:
        super()._on_rollout_end()
        log_std = getattr(self.model.policy, "log_std", None)
        if isinstance(log_std, torch.Tensor):
            self.logger.record("continual/log_std_mean", float(log_std.detach().mean()))

    # ------------------------------------------------------------------ the parts' state

    @property
    def regulariser(self) -> QuadraticRegulariser | None:
        """The regulariser on the model's policy (built at training start)."""
        return self.consolidation.regulariser

    @property
    def trigger(self) -> Trigger:
        return self.detector.trigger

    @property
    def n_consolidations(self) -> int:
        return self.consolidation.n_consolidations

    @property
    def n_shifts(self) -> int:
        return self.detector.n_shifts

    @property
    def strength(self) -> float | None:
        """The penalty strength c the regulariser is built with; ``None`` without a penalty or
        when the regulariser comes from a factory or instance."""
        if self.consolidation.spec is None:
            return None
        c = self.consolidation.regulariser_kwargs.get("c")
        return None if c is None else float(c)

    def state_bytes(self) -> int:
        """Bytes of the regulariser's state (0 without one): constant in the number of
        consolidations (``docs/concepts.md#memory``)."""
        return self.consolidation.state_bytes()

    def consolidate(self) -> None:
        """Consolidate now (what *settled* does)."""
        self.consolidation.consolidate()

    def state_dict(self) -> dict[str, Any]:
        """Regulariser (by parameter name), trigger and counters; tensors and builtins only."""
        detector = self.detector.state_dict()
        consolidation = self.consolidation.state_dict()
        return {"format": STATE_FORMAT, **consolidation, **detector}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`, also from states written by earlier releases.

        :raises ValueError: not a ContinualCallback state, or one that does not match.
        """
        if not isinstance(state, Mapping) or state.get("format") not in (
            STATE_FORMAT,
            _STATE_FORMAT_1,
        ):
            raise ValueError("state: not a ContinualCallback state (missing or wrong format tag)")
        shift = state.get("shift", {})
        if shift.get("ent_left", 0) or shift.get("lr_left", 0):
            raise ValueError(
                "state: saved during an entropy boost or learning-rate warm-up after a shift; "
                "those shift actions no longer exist. Resume it with the release that wrote it."
            )
        self._adopt_saved_selection(state.get("regulariser"))
        self.consolidation.load_state_dict(state)
        self.detector.load_state_dict(state)

    def _adopt_saved_selection(self, saved: Mapping[str, Any] | None) -> None:
        """Where the method chose the parameters, resume with the groups the state was saved
        with: a run started before a method's selection changed continues as it started."""
        kwargs = self.consolidation.regulariser_kwargs
        if not self._method_selects or saved is None or self.regulariser is not None:
            return
        groups = [str(g) for g in saved.get("groups", [])]
        if groups and groups != [name for name, _, _ in resolve_groups(kwargs.get("select"))]:
            weights = saved.get("group_weights", [1.0] * len(groups))
            kwargs["select"] = dict(zip(groups, map(float, weights), strict=True))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state atomically (temporary file in the same directory, then rename)."""
        state = self.state_dict()
        atomic_write(path, lambda f: torch.save(state, f))

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore from :meth:`save`; hooks re-attach at the next training start.

        :raises FileNotFoundError: no such file.
        :raises ValueError: the file is corrupt or does not match this callback.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable ContinualCallback state ({exc})") from exc
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: does not match this callback: {exc}") from exc
