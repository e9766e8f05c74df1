"""Adaptive strength and the drift diagnostic, as add-ons to any quadratic regulariser.

    SI(model, optimizer, c=0.01, addons=[AdaptiveStrength(0.2)])          # gradient ratio
    SI(model, optimizer, c=1.0, addons=[AdaptiveStrength(0.1, signal="drift")])
    L2(model, optimizer, addons=[DriftDiagnostic()])                      # logs "drift"

With an :class:`AdaptiveStrength` the strength c lives on the device as ``reg.strength`` and is
moved after every optimizer step without host syncs; ``c`` is only its starting value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, get_args

import torch

from continual.regularisers.penalty import Addon, QuadraticRegulariser

__all__ = [
    "ADAPTIVE_SIGNALS",
    "AdaptiveSignal",
    "AdaptiveStrength",
    "DriftDiagnostic",
    "check_adaptive_signal",
]

AdaptiveSignal = Literal["gradient_ratio", "drift"]
ADAPTIVE_SIGNALS: tuple[str, ...] = get_args(AdaptiveSignal)


def check_adaptive_signal(signal: str) -> None:
    """Raise a ValueError naming the choices unless ``signal`` is an :data:`AdaptiveSignal`."""
    if signal not in ADAPTIVE_SIGNALS:
        choices = " or ".join(repr(s) for s in ADAPTIVE_SIGNALS)
        raise ValueError(f"adaptive_signal: must be {choices}, got {signal!r}")


class DriftDiagnostic(Addon):
    """The drift budget D = Σ Ω (θ − θ*)² / L, logged as ``drift`` in ``reg.stats()``.

    L is the same quadratic form of what was learned, Σ Ω_new (θ* − θ*_previous)², summed over
    consolidations like Ω (``reg.accumulate``). D estimates the share of the consolidated
    progress that the moves since the anchor undo, by the quadratic model of the penalty.
    Dimensionless, whatever the method, c or normalisation. State key: ``learned``.
    """

    def bind(self, reg: QuadraticRegulariser) -> None:
        p = reg.params[0]
        self.learned = torch.zeros((), dtype=p.dtype, device=p.device)  # L

    def before_consolidate(self, reg: QuadraticRegulariser, fresh: list[torch.Tensor]) -> None:
        # Before the anchor moves: Σ Ω_new (θ − θ*)², the quadratic form of what this period
        # learned.
        learned = sum(
            (new.clamp(min=0.0) * (p.detach() - anchor) ** 2).sum(dtype=self.learned.dtype)
            for new, p, anchor in zip(fresh, reg.params, reg.anchor.values(), strict=True)
        )
        reg.combine(self.learned, learned, reg.n_consolidations)  # type: ignore[arg-type]

    @staticmethod
    def undone(reg: QuadraticRegulariser) -> torch.Tensor:
        """Σ Ω (θ − θ*)², unweighted by c (a scalar tensor on the parameters' device)."""
        moved = torch._foreach_sub(reg._detached, reg._anchor)
        torch._foreach_mul_(moved, moved)
        torch._foreach_mul_(moved, reg._importance)
        return torch.stack(torch._foreach_norm(moved, 1)).sum()

    def drift(self, reg: QuadraticRegulariser) -> float:
        """D, or NaN before the first consolidation (synchronises; for logging)."""
        learned = float(self.learned)
        return float(self.undone(reg)) / learned if learned > 0 else math.nan

    def stats(self, reg: QuadraticRegulariser) -> dict[str, float]:
        return {"drift": self.drift(reg)} if reg.n_consolidations else {}

    def state_dict(self) -> dict[str, Any]:
        return {"learned": float(self.learned)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.learned.fill_(float(state.get("learned", 0.0)))


class AdaptiveStrength(DriftDiagnostic):
    """Adapt c at every optimizer step (in log space) so that ``signal`` meets ``target``.

    ``"gradient_ratio"``: r = ‖penalty gradient‖ / ‖task gradient‖ is proportional to c, so
    log c ← clamp(log c + η·(log target − log r)): an EMA with rate η of log(c·target/r), the
    strength that would have hit the target at this step. Logged as ``adaptive_ratio`` (an EMA
    of r).

    ``"drift"``: D (:class:`DriftDiagnostic`) responds to c only through later steps, so c
    integrates the error, log c ← clamp(log c + η·clip(log D − log target, −1, 1)): dual ascent
    on the constraint D ≤ target, with c as its multiplier. All parameters count, whichever
    fired.

    Also logs ``drift``. State keys: ``learned``, ``log_ratio_ema``.

    :param target: the target of ``signal`` (> 0).
    :param signal: ``"gradient_ratio"`` or ``"drift"``.
    :param rate: η, in (0, 1].
    :param bounds: c is clamped to ``(low, high)``, 0 < low <= high.
    """

    needs_task_grad: ClassVar[bool] = True
    strength_on_device: ClassVar[bool] = True

    def __init__(
        self,
        target: float,
        signal: AdaptiveSignal = "gradient_ratio",
        rate: float = 0.01,
        bounds: Sequence[float] = (1e-6, 1e6),
    ) -> None:
        if not (math.isfinite(target) and target > 0):
            raise ValueError(f"adaptive_target: must be > 0, got {target}")
        check_adaptive_signal(signal)
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"adaptive_rate: must be in (0, 1], got {rate}")
        lo, hi = bounds
        if not 0 < lo <= hi:
            raise ValueError(f"adaptive_bounds: need 0 < low <= high, got {tuple(bounds)}")
        self.target = float(target)
        self.signal: AdaptiveSignal = signal
        self.rate = float(rate)
        self.bounds = (float(lo), float(hi))

    def bind(self, reg: QuadraticRegulariser) -> None:
        if reg.c <= 0:
            raise ValueError(f"c: adaptive mode needs an initial c > 0, got {reg.c}")
        super().bind(reg)
        self.log_ratio_ema = torch.tensor(float("nan"), device=reg.params[0].device)

    def coefficients_changed(self, reg: QuadraticRegulariser) -> None:
        strength = reg.strength
        self.alpha = torch.tensor(reg.alpha, dtype=strength.dtype, device=strength.device)

    def after_step(
        self,
        reg: QuadraticRegulariser,
        task_grad: list[torch.Tensor | None],
        idx: list[int] | None,
    ) -> None:
        c = reg.strength
        eta, lo, hi = self.rate, *self.bounds
        if self.signal == "drift":
            log_drift = torch.log(self.undone(reg)) - torch.log(self.learned)
            error = torch.clamp(log_drift - math.log(self.target), -1.0, 1.0)
            step = torch.where(self.learned > 0, eta * error, 0.0).to(c.dtype)
            c.copy_(torch.clamp(c * torch.exp(step), lo, hi))
            return
        grads = task_grad if idx is None else [task_grad[i] for i in idx]
        if not grads:
            return
        g_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))  # type: ignore[arg-type]
        pen = torch._foreach_sub(reg._detached, reg._anchor)
        torch._foreach_mul_(pen, reg._importance)
        norms = torch.stack(torch._foreach_norm(pen)) * self.alpha * c
        p_norm = torch.linalg.vector_norm(norms)
        log_ratio = torch.log(p_norm) - torch.log(g_norm)
        valid = torch.isfinite(log_ratio)
        step = torch.where(valid, eta * (math.log(self.target) - log_ratio), 0.0)
        c.copy_(torch.clamp(c * torch.exp(step), lo, hi))
        ema = self.log_ratio_ema
        blended = torch.where(torch.isnan(ema), log_ratio, (1 - eta) * ema + eta * log_ratio)
        ema.copy_(torch.where(valid, blended, ema))

    def stats(self, reg: QuadraticRegulariser) -> dict[str, float]:
        out = super().stats(reg)
        if self.signal == "gradient_ratio":
            out["adaptive_ratio"] = math.exp(float(self.log_ratio_ema))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "log_ratio_ema": float(self.log_ratio_ema)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.log_ratio_ema.fill_(float(state.get("log_ratio_ema", float("nan"))))
