"""``ContinualCallback``: consolidation regularisers and triggers for any on-policy SB3 model.

Works with stock ``PPO``, ``A2C`` and sb3-contrib's ``RecurrentPPO`` without subclassing::

    from stable_baselines3 import PPO
    from continual import ContinualCallback

    model = PPO("MlpPolicy", env)
    model.learn(200_000, callback=ContinualCallback("si", trigger="plateau", c=1.0))

How it hooks in (SB3 order per iteration: collect rollout → compute returns and advantages →
``_on_rollout_end`` → log dump → ``train()``):

- ``_on_training_start``: builds the regulariser on ``model.policy`` with
  ``model.policy.optimizer``; if either object changed since the last run (e.g. after
  ``PPO.load``), moves the state onto the new parameters by name. Hooks are attached here and
  removed again in ``_on_training_end``.
- ``_on_step``: nothing (O(1)).
- ``_on_rollout_end``: computes the signal on the fresh rollout, updates the trigger, on
  ``settled`` consolidates (EWC/MAS first estimate importance on the rollout's observations), on
  ``shift`` applies the configured :class:`ShiftActions`, and logs under ``continual/``.

In an rl-zoo3 hyperparameter file the callback is named by its import path::

    CartPole-v1:
      callback:
        - continual.ContinualCallback:
            regulariser: si
            trigger: plateau
            c: 1.0
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from continual.experimental import AdaptiveStrength, check_adaptive_signal
from continual.regularisers import L2, MAS, SI, OnlineEWC, QuadraticRegulariser, check_keep_top
from continual.triggers import Trigger, TriggerEvent, make_trigger

__all__ = ["PLATEAU_DEFAULTS", "SIGNALS", "ContinualCallback", "ShiftActions"]

STATE_FORMAT = "continual.ContinualCallback/1"

REGULARISERS: dict[str, type[QuadraticRegulariser]] = {
    "si": SI,
    "l2": L2,
    "ewc": OnlineEWC,
    "online_ewc": OnlineEWC,
    "mas": MAS,
}

RegulariserSpec = (
    str
    | QuadraticRegulariser
    | type[QuadraticRegulariser]
    | Callable[[torch.nn.Module, torch.optim.Optimizer], QuadraticRegulariser]
    | None
)


def _rollout_arrays(model: BaseAlgorithm) -> tuple[np.ndarray, np.ndarray]:
    buf = model.rollout_buffer  # type: ignore[attr-defined]
    return np.asarray(buf.values, dtype=np.float64).ravel(), np.asarray(
        buf.returns, dtype=np.float64
    ).ravel()


def unexplained_variance(model: BaseAlgorithm) -> float:
    """1 − explained variance of the value function on the fresh rollout:
    Var[returns − values] / Var[returns] (dimensionless; NaN when the returns are constant)."""
    values, returns = _rollout_arrays(model)
    var = float(np.var(returns))
    return float(np.var(returns - values)) / var if var > 0 else math.nan


def value_mse(model: BaseAlgorithm) -> float:
    """Mean squared error of the value predictions on the fresh rollout (units of return²)."""
    values, returns = _rollout_arrays(model)
    return float(np.mean((returns - values) ** 2))


def negative_return(model: BaseAlgorithm) -> float:
    """−(mean return of the last 100 finished episodes), SB3's ``rollout/ep_rew_mean`` negated
    (units of reward; NaN before the first episode ends). Needs ``Monitor``/``VecMonitor``
    episode infos, which SB3's ``make_vec_env`` adds.

    A loss-like signal, so the plateau trigger's peak is a drop in return. Use it with
    ``scale="range"``: returns can sit at or across zero, where a spread relative to the mean
    means nothing."""
    episodes = model.ep_info_buffer
    if not episodes:
        return math.nan
    return -float(np.mean([ep["r"] for ep in episodes]))


#: Built-in signals, computed at ``_on_rollout_end`` (returns are already computed then).
SIGNALS: dict[str, Callable[[BaseAlgorithm], float]] = {
    "unexplained_variance": unexplained_variance,
    "value_mse": value_mse,
    "negative_return": negative_return,
}

#: Plateau-trigger settings per built-in signal, under any ``trigger_kwargs`` the user gives.
#: ``negative_return``: a shift is a rise of 20% of the range seen so far; a window is a
#: plateau once its spread is under 4% of that range (a settled 100-episode mean return wobbles
#: by 1-2%; at 10% a window holding a late-learned task and the next switch passed as flat),
#: its fitted change is under 10%, and it lies 30% of it below the post-shift peak. Replayed
#: over the return traces of nine runs on the 3-task quick stream (80k-step phases, 10k blur),
#: these thresholds with a 35% rise caught all 18 switches a median 6k steps after the
#: boundary with no false shift. On the 5-task streams (49k-step phases, 16k blur) 35% missed
#: half the switches: a task learned late settles at a return from which the next switch drops
#: less. Replayed over the 94 task-free runs of the learning study
#: (``benchmarks/replay_trigger.py``), 20% caught 60% of 376 switches against 49%, with no
#: false shift; in real runs (5 seeds) it raised SI's final average success from 0.52 to 0.80
#: on the standard stream and from 0.60 to 0.68 on the held-out one (README, "Detector
#: quality"). ``unexplained_variance`` keeps the trigger's own (mean-scaled) defaults; on
#: the quick stream it caught about 1 switch in 5.
PLATEAU_DEFAULTS: dict[str, dict[str, Any]] = {
    "negative_return": {
        "scale": "range",
        "window": 8,
        "k": 3.0,
        "rel_floor": 0.2,
        "spread_tol": 0.04,
        "slope_tol": 0.1,
        "min_after_peak": 4,
        "min_spacing": 4,
        "min_recovery": 0.3,
    },
}


class _ScaledSchedule:
    """A learning-rate schedule multiplied by a constant (picklable, for warm restarts)."""

    def __init__(self, base: Callable[[float], float], factor: float) -> None:
        self.base = base
        self.factor = factor

    def __call__(self, progress_remaining: float) -> float:
        return self.factor * self.base(progress_remaining)


@dataclass
class ShiftActions:
    """What to do when the trigger reports a ``shift`` (a new task seems to arrive).

    Default: only raise ``log_std`` to 0, because PPO's exploration collapses on a task
    (log_std ≈ −0.45 after one task) and the next task is then never found; raising it at the
    switch restored learning in a prototype (0 → 0.88 success after 40k steps).

    :param reset_log_std: raise ``policy.log_std`` to at least this value (Gaussian policies
        only; never lowers it). ``None``: off.
    :param reset_optimizer: clear the optimizer's moments (Adam's m, v and step count).
    :param ent_coef: entropy coefficient to use for ``ent_coef_rollouts`` rollouts after a shift,
        then back to the model's own. ``None``: off.
    :param ent_coef_rollouts: duration of the entropy boost, in rollouts.
    :param lr_warmup_rollouts: re-warm the learning rate linearly from ``lr_warmup_start`` times
        the schedule's value back to 1× over this many rollouts. 0: off.
    :param lr_warmup_start: initial learning-rate factor of the warm-up, in (0, 1].
    """

    reset_log_std: float | None = 0.0
    reset_optimizer: bool = False
    ent_coef: float | None = None
    ent_coef_rollouts: int = 10
    lr_warmup_rollouts: int = 0
    lr_warmup_start: float = 0.1

    def __post_init__(self) -> None:
        if self.ent_coef is not None and not self.ent_coef >= 0:
            raise ValueError(f"on_shift.ent_coef: must be >= 0, got {self.ent_coef}")
        if self.ent_coef_rollouts < 0 or self.lr_warmup_rollouts < 0:
            raise ValueError("on_shift: ent_coef_rollouts and lr_warmup_rollouts must be >= 0")
        if not 0 < self.lr_warmup_start <= 1:
            raise ValueError(
                f"on_shift.lr_warmup_start: must be in (0, 1], got {self.lr_warmup_start}"
            )

    @classmethod
    def coerce(cls, value: ShiftActions | Mapping[str, Any] | None) -> ShiftActions:
        if value is None:
            return cls(reset_log_std=None)
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(f"on_shift: unknown keys {unknown}; allowed: {sorted(known)}")
            return cls(**value)
        raise ValueError(
            f"on_shift: expected ShiftActions, a dict or None, got {type(value).__name__}"
        )


def _observations(model: BaseAlgorithm, n: int, rng: np.random.Generator) -> Any:
    """Up to ``n`` observations of the fresh rollout as a tensor (or dict of tensors)."""
    obs = model.rollout_buffer.observations  # type: ignore[attr-defined]

    def flat(a: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        return a.reshape(-1, *shape)

    if isinstance(obs, Mapping):
        space = model.observation_space.spaces  # type: ignore[attr-defined]
        arrays = {k: flat(v, space[k].shape) for k, v in obs.items()}
        total = len(next(iter(arrays.values())))
    else:
        arrays = flat(obs, model.observation_space.shape)  # type: ignore[arg-type]
        total = len(arrays)
    idx = rng.choice(total, size=min(n, total), replace=False)
    if isinstance(arrays, dict):
        return {k: torch.as_tensor(v[idx], device=model.device) for k, v in arrays.items()}
    return torch.as_tensor(arrays[idx], device=model.device)


def _policy_loglik(get_policy: Callable[[], Any]) -> Callable[[Any], torch.Tensor]:
    """log π(a|s) with a drawn from π(·|s) itself (true Fisher), per sample."""

    def fn(obs: Any) -> torch.Tensor:
        dist = get_policy().get_distribution(obs)
        with torch.no_grad():
            actions = dist.get_actions()
        return dist.log_prob(actions)

    return fn


def _policy_output(get_policy: Callable[[], Any]) -> Callable[[Any], torch.Tensor]:
    """The policy's output f(x): Gaussian means or categorical logits, as [B, d]."""

    def fn(obs: Any) -> torch.Tensor:
        dist = get_policy().get_distribution(obs).distribution
        parts = dist if isinstance(dist, list | tuple) else [dist]
        outs = []
        for d in parts:
            if isinstance(d, torch.distributions.Normal):
                outs.append(d.mean)
            elif isinstance(d, torch.distributions.Categorical | torch.distributions.Bernoulli):
                outs.append(d.logits)
            else:
                raise ValueError(
                    f"regulariser 'mas': unsupported action distribution {type(d).__name__}"
                )
        return torch.cat([o.reshape(len(o), -1) for o in outs], dim=1)

    return fn


class ContinualCallback(BaseCallback):
    """Consolidation regulariser + trigger for an on-policy SB3 model (PPO, A2C, RecurrentPPO).

    :param regulariser: ``"si"``, ``"l2"``, ``"ewc"``, ``"mas"``, ``None`` (fine-tuning: the
        signal and trigger still run and are logged, shift actions still apply), a
        :class:`QuadraticRegulariser` subclass, a factory ``(policy, optimizer) -> regulariser``,
        or an instance built on the model's policy.
    :param trigger: ``"plateau"`` (task-free, default), ``"boundary"`` (oracle, reads
        ``info["dominant_task_id"]``), ``"interval"`` (needs ``trigger_kwargs={"n_steps": N}``),
        ``"never"``, or a :class:`~continual.triggers.Trigger` instance.
    :param c: penalty strength (initial value in adaptive mode).
    :param xi: SI damping ξ (SI only; default 1e-3).
    :param accumulate: ``"sum"`` | ``"ema"`` | ``"mean"`` (default: the method's own).
    :param normalize: ``None`` (raw Ω) | ``"mean"`` | ``"max"``.
    :param keep_top: ``None`` (keep all) or the fraction of each fresh importance estimate
        kept at a consolidation, the largest values; the rest carry no penalty at any c (see
        :class:`~continual.regularisers.QuadraticRegulariser`).
    :param clip_penalty: ``True``: the penalty gradient goes through the model's gradient
        clipping (``max_grad_norm``) with the task gradient, as if it were part of the loss.
        ``False``: it is added after clipping, so a strong penalty does not shrink the clipped
        task gradient of the parameters it leaves free.
    :param adaptive_target: the target of ``adaptive_signal``; ``None`` = fixed c.
    :param adaptive_signal: ``"gradient_ratio"`` (‖penalty grad‖/‖task grad‖) or ``"drift"``
        (the share of the consolidated progress the moves since the anchor may undo; ``c`` is
        then only the starting value, see :class:`~continual.regularisers.QuadraticRegulariser`).
    :param params: parameter selection: a preset (``"actor"`` default: policy network and action
        head; ``"critic"``, ``"all"``, ``"head"``, ``"hidden"``), name patterns, or
        ``{group: weight}`` for separate strengths, e.g. ``{"actor": 1.0, "critic": 0.1}``.
    :param exclude: patterns never regularised. Default ``("log_std",)``: regularising the
        exploration parameter fights the shift-time exploration reset.
    :param signal: ``"negative_return"`` (default) | ``"unexplained_variance"`` | ``"value_mse"``
        | a callable ``model -> float``, evaluated on the fresh rollout. With the plateau
        trigger, a built-in signal brings its tuned thresholds (``PLATEAU_DEFAULTS``).
    :param trigger_kwargs: keyword arguments of the trigger when given by name.
    :param on_shift: :class:`ShiftActions` or a dict of its fields; ``None`` disables all.
    :param n_estimate_samples: observations drawn from the rollout for EWC/MAS estimation.
    :param storage_dtype: ``None`` (parameter dtype) or ``"bfloat16"`` for Ω and θ*.
    :param regulariser_kwargs: further keyword arguments of the regulariser class
        (e.g. ``gamma``, ``adaptive_rate``, ``chunk_size``).
    """

    def __init__(
        self,
        regulariser: RegulariserSpec = "si",
        trigger: str | Trigger = "plateau",
        *,
        c: float = 1.0,
        xi: float | None = None,
        accumulate: str | None = None,
        normalize: str | None = None,
        keep_top: float | None = None,
        clip_penalty: bool = True,
        adaptive_target: float | None = None,
        adaptive_signal: str = "gradient_ratio",
        params: str | Sequence[str] | Mapping[str, float] | None = "actor",
        exclude: Sequence[str] = ("log_std",),
        signal: str | Callable[[BaseAlgorithm], float] = "negative_return",
        trigger_kwargs: Mapping[str, Any] | None = None,
        on_shift: ShiftActions | Mapping[str, Any] | None = ShiftActions(),  # noqa: B008
        n_estimate_samples: int = 1024,
        storage_dtype: str | None = None,
        seed: int = 0,
        verbose: int = 0,
        **regulariser_kwargs: Any,
    ) -> None:
        super().__init__(verbose=verbose)
        if isinstance(regulariser, str) and regulariser.lower() not in REGULARISERS:
            raise ValueError(
                f"regulariser: must be one of {sorted(REGULARISERS)}, None, a class, a factory or "
                f"an instance; got {regulariser!r}"
            )
        if isinstance(signal, str) and signal not in SIGNALS:
            raise ValueError(
                f"signal: must be one of {sorted(SIGNALS)} or a callable, got {signal!r}"
            )
        is_si = (isinstance(regulariser, str) and regulariser.lower() == "si") or (
            isinstance(regulariser, type) and issubclass(regulariser, SI)
        )
        if xi is not None and not is_si:
            raise ValueError("xi: only meaningful for regulariser 'si'")
        check_adaptive_signal(adaptive_signal)  # here too: the regulariser is built later
        if not clip_penalty:
            raise ValueError("clip_penalty: the penalty always goes through gradient clipping")
        check_keep_top(keep_top)
        if n_estimate_samples < 1:
            raise ValueError(f"n_estimate_samples: must be >= 1, got {n_estimate_samples}")
        self.regulariser_spec = regulariser.lower() if isinstance(regulariser, str) else regulariser
        self.reg_kwargs: dict[str, Any] = {
            "c": c,
            "accumulate": accumulate,
            "normalize": normalize,
            "keep_top": keep_top,
            "clip_penalty": clip_penalty,
            "adaptive_target": adaptive_target,
            "adaptive_signal": adaptive_signal,
            "select": params,
            "exclude": tuple(exclude),
            "storage_dtype": storage_dtype,
            **regulariser_kwargs,
        }
        if xi is not None:
            self.reg_kwargs["xi"] = xi
        if trigger == "plateau" and isinstance(signal, str):
            trigger_kwargs = {**PLATEAU_DEFAULTS.get(signal, {}), **dict(trigger_kwargs or {})}
        self.trigger: Trigger = make_trigger(trigger, **dict(trigger_kwargs or {}))
        self.signal_name = (
            signal if isinstance(signal, str) else getattr(signal, "__name__", "custom")
        )
        self.signal_fn = SIGNALS[signal] if isinstance(signal, str) else signal
        self.on_shift = ShiftActions.coerce(on_shift)
        self.n_estimate_samples = int(n_estimate_samples)
        self.regulariser: QuadraticRegulariser | None = (
            regulariser if isinstance(regulariser, QuadraticRegulariser) else None
        )
        self.n_consolidations = 0
        self.n_shifts = 0
        self.last_signal = math.nan
        self._pending_state: dict[str, Any] | None = None
        self._rng = np.random.default_rng(seed)
        # shift-action bookkeeping (rollouts remaining, the model's own values)
        self._ent_left = 0
        self._ent_base: float | None = None
        self._lr_left = 0
        self._lr_base: Callable[[float], float] | None = None

    # ------------------------------------------------------------------ regulariser lifecycle

    def _build_regulariser(self) -> QuadraticRegulariser | None:
        spec = self.regulariser_spec
        policy, optimizer = self.model.policy, self.model.policy.optimizer
        if spec is None:
            return None
        if isinstance(spec, QuadraticRegulariser):
            return spec
        kwargs = {k: v for k, v in self.reg_kwargs.items() if v is not None}
        del kwargs["clip_penalty"]
        adaptive = {k[9:]: kwargs.pop(k) for k in list(kwargs) if k.startswith("adaptive_")}
        if "target" in adaptive:
            kwargs["addons"] = [AdaptiveStrength(**adaptive)]
        if isinstance(spec, str | type):
            cls = REGULARISERS[spec] if isinstance(spec, str) else spec
            if issubclass(cls, OnlineEWC | MAS):
                self._check_feedforward(cls.kind)
                # Looked up at call time: the policy object changes after PPO.load.
                make_fn = _policy_loglik if issubclass(cls, OnlineEWC) else _policy_output
                kwargs["fn"] = make_fn(lambda: self.model.policy)
                kwargs.setdefault("chunk_size", 32 if issubclass(cls, OnlineEWC) else 1)
            return cls(policy, optimizer, **kwargs)
        reg = spec(policy, optimizer)
        if not isinstance(reg, QuadraticRegulariser):
            raise ValueError(f"regulariser: factory returned {type(reg).__name__}")
        return reg

    def _check_feedforward(self, kind: str) -> None:
        if hasattr(self.model.policy, "lstm_actor"):
            raise ValueError(
                f"regulariser {kind!r}: importance estimation on recurrent policies is not "
                "supported (it needs the LSTM states of the rollout); use 'si' or 'l2'"
            )

    def _on_training_start(self) -> None:
        policy, optimizer = self.model.policy, self.model.policy.optimizer
        reg = self.regulariser
        if reg is None and self.regulariser_spec is not None:
            reg = self.regulariser = self._build_regulariser()
        elif reg is not None and (reg.module is not policy or reg.optimizer is not optimizer):
            reg.rebind(policy, optimizer)
        if self._pending_state is not None:
            self._apply_state(self._pending_state)
            self._pending_state = None
        if reg is not None:
            reg.attach()
        self._apply_ongoing_shift_actions()

    def _on_training_end(self) -> None:
        # Leave the model as the user built it: no hooks, no temporary hyperparameters.
        if self.regulariser is not None:
            self.regulariser.detach()
        if self._ent_base is not None:
            self.model.ent_coef = self._ent_base  # type: ignore[attr-defined]
        if self._lr_base is not None:
            self.model.lr_schedule = self._lr_base

    def _on_step(self) -> bool:
        return True

    # ------------------------------------------------------------------ per rollout

    def _on_rollout_end(self) -> None:
        signal = float(self.signal_fn(self.model))
        self.last_signal = signal
        infos = self.locals.get("infos")
        event: TriggerEvent = self.trigger.update(signal, self.num_timesteps, infos)
        if event.settled:
            self.consolidate()
        if event.shift:
            self.n_shifts += 1
            self._start_shift_actions()
            if self.verbose:
                t = self.num_timesteps
                print(f"[continual] t={t}: shift #{self.n_shifts} (signal {signal:.4g})")
        self._step_shift_actions()
        self._log(signal, event)

    def consolidate(self) -> None:
        """Consolidate now (what ``settled`` does); EWC/MAS estimate on the fresh rollout."""
        reg = self.regulariser
        if reg is not None:
            if isinstance(reg, OnlineEWC | MAS):
                reg.estimate(_observations(self.model, self.n_estimate_samples, self._rng))
            reg.consolidate()
        self.n_consolidations += 1
        if self.verbose:
            print(f"[continual] t={self.num_timesteps}: consolidation #{self.n_consolidations}")

    def _log(self, signal: float, event: TriggerEvent) -> None:
        rec = self.logger.record
        rec(f"continual/signal/{self.signal_name}", signal)
        rec("continual/consolidations", self.n_consolidations)
        rec("continual/shifts", self.n_shifts)
        rec("continual/event_settled", float(event.settled))
        rec("continual/event_shift", float(event.shift))
        for key, value in self.trigger.stats().items():
            rec(f"continual/trigger/{key}", value)
        log_std = getattr(self.model.policy, "log_std", None)
        if isinstance(log_std, torch.Tensor):
            rec("continual/log_std_mean", float(log_std.detach().mean()))
        if self.regulariser is not None:
            stats = self.regulariser.stats()
            if not math.isfinite(stats["penalty"]):
                raise FloatingPointError(
                    f"continual: non-finite penalty {stats['penalty']} at t={self.num_timesteps}"
                )
            for key, value in stats.items():
                rec(f"continual/{key}", value)

    # ------------------------------------------------------------------ shift actions

    def _start_shift_actions(self) -> None:
        cfg = self.on_shift
        policy = self.model.policy
        if cfg.reset_log_std is not None and isinstance(
            getattr(policy, "log_std", None), torch.Tensor
        ):
            with torch.no_grad():
                policy.log_std.clamp_(min=cfg.reset_log_std)
        if cfg.reset_optimizer:
            policy.optimizer.state.clear()
        if (
            cfg.ent_coef is not None
            and cfg.ent_coef_rollouts > 0
            and hasattr(self.model, "ent_coef")
        ):
            if self._ent_base is None:
                self._ent_base = float(self.model.ent_coef)  # type: ignore[attr-defined]
            self._ent_left = cfg.ent_coef_rollouts
        if cfg.lr_warmup_rollouts > 0:
            if self._lr_base is None:
                self._lr_base = self.model.lr_schedule
            self._lr_left = cfg.lr_warmup_rollouts

    def _apply_ongoing_shift_actions(self) -> None:
        if self._ent_left > 0:
            if self._ent_base is None:  # resumed from a saved state
                self._ent_base = float(self.model.ent_coef)  # type: ignore[attr-defined]
            self.model.ent_coef = self.on_shift.ent_coef  # type: ignore[attr-defined]
        if self._lr_left > 0:
            if self._lr_base is None:  # resumed: the model holds its own schedule again
                self._lr_base = self.model.lr_schedule
            n = self.on_shift.lr_warmup_rollouts
            start = self.on_shift.lr_warmup_start
            factor = start + (1 - start) * (n - self._lr_left) / n
            self.model.lr_schedule = _ScaledSchedule(self._lr_base, factor)

    def _step_shift_actions(self) -> None:
        """Apply the temporary settings for the coming training phase, count them down."""
        if self._ent_left > 0:
            self.model.ent_coef = self.on_shift.ent_coef  # type: ignore[attr-defined]
            self._ent_left -= 1
        elif self._ent_base is not None:
            self.model.ent_coef = self._ent_base  # type: ignore[attr-defined]
            self._ent_base = None
        if self._lr_left > 0:
            self._apply_ongoing_shift_actions()
            self._lr_left -= 1
        elif self._lr_base is not None:
            self.model.lr_schedule = self._lr_base
            self._lr_base = None
        if self._ent_base is not None:
            self.logger.record("continual/ent_coef", float(self.model.ent_coef))  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> dict[str, Any]:
        """Regulariser (by parameter name), trigger and counters; tensors and builtins only."""
        reg_state = (
            self.regulariser.state_dict() if self.regulariser is not None else self._pending_reg()
        )
        return {
            "format": STATE_FORMAT,
            "regulariser": reg_state,
            "trigger": self.trigger.state_dict(),
            "n_consolidations": self.n_consolidations,
            "n_shifts": self.n_shifts,
            "last_signal": self.last_signal,
            "shift": {
                "ent_left": self._ent_left,
                "ent_base": self._ent_base,
                "lr_left": self._lr_left,
            },
        }

    def _pending_reg(self) -> dict[str, Any] | None:
        return None if self._pending_state is None else self._pending_state.get("regulariser")

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore; the regulariser part applies now if built, else at the next training start."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise ValueError("state: not a ContinualCallback state (missing or wrong format tag)")
        if (state["regulariser"] is None) != (self.regulariser_spec is None):
            raise ValueError(
                "state: regulariser mismatch (saved "
                f"{'none' if state['regulariser'] is None else state['regulariser'].get('kind')}, "
                f"callback has {self.regulariser_spec!r})"
            )
        expected = self._expected_kind()
        saved_kind = None if state["regulariser"] is None else state["regulariser"].get("kind")
        if expected is not None and saved_kind != expected:
            raise ValueError(f"state: saved regulariser {saved_kind!r}, callback has {expected!r}")
        self.trigger.load_state_dict(state["trigger"])
        self.n_consolidations = int(state["n_consolidations"])
        self.n_shifts = int(state["n_shifts"])
        self.last_signal = float(state["last_signal"])
        shift = state["shift"]
        self._ent_left, self._lr_left = int(shift["ent_left"]), int(shift["lr_left"])
        self._ent_base = shift["ent_base"]
        if self.regulariser is not None:
            self._apply_state(state)
        else:
            self._pending_state = dict(state)

    def _expected_kind(self) -> str | None:
        spec = self.regulariser_spec
        if isinstance(spec, str):
            return REGULARISERS[spec].kind
        if isinstance(spec, QuadraticRegulariser) or (
            isinstance(spec, type) and issubclass(spec, QuadraticRegulariser)
        ):
            return spec.kind
        return None

    def _apply_state(self, state: Mapping[str, Any]) -> None:
        if self.regulariser is not None and state["regulariser"] is not None:
            self.regulariser.load_state_dict(state["regulariser"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state atomically (temporary file in the same directory, then rename)."""
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".continual-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(self.state_dict(), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

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

    # ------------------------------------------------------------------ misc

    @property
    def config(self) -> dict[str, Any]:
        """The construction options (for run records)."""
        spec = self.regulariser_spec
        return {
            "regulariser": spec if isinstance(spec, str | None) else type(spec).__name__,
            "trigger": getattr(self.trigger, "kind", type(self.trigger).__name__),
            "signal": self.signal_name,
            "on_shift": asdict(self.on_shift),
            **{k: v for k, v in self.reg_kwargs.items() if k != "exclude"},
        }
