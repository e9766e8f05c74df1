"""The quadratic penalty every method shares, and its consolidation.

    L_reg(θ) = Σ_g c_g Σ_{i ∈ g} Ω_i (θ_i − θ*_i)²,    c_g = c · weight_g / norm_g
    ∇L_reg   = 2 · c_g · Ω ⊙ (θ − θ*)
    consolidate:  Ω ← max(0, combine(Ω, transform(fresh)));  θ* ← θ

:class:`QuadraticRegulariser` holds Ω, θ*, the groups and c. Subclasses
(:mod:`continual.regularisers.importance`) say how the fresh Ω is estimated. The penalty is
never put into the loss: :mod:`continual.regularisers.hooks` adds its gradient to ``p.grad`` at
the end of the backward pass. Background: docs/concepts.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import nn

from continual.regularisers import transforms
from continual.regularisers.hooks import PenaltyHooks
from continual.regularisers.selection import ParamsLike, Selection, select_parameters
from continual.regularisers.transforms import Accumulate, Normalize

__all__ = ["STATE_FORMAT", "Addon", "Batch", "QuadraticRegulariser"]

Batch = torch.Tensor | Mapping[str, torch.Tensor]

STATE_FORMAT = "continual.QuadraticRegulariser/1"

_STORAGE_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


class QuadraticRegulariser:
    """Penalty ``Σ_g c_g Σ Ω (θ − θ*)²`` with hook-added gradient; subclasses estimate Ω.

    :param params: an ``nn.Module`` or an iterable of ``(name, parameter)`` pairs. Only parameters
        with ``requires_grad`` and selected by ``select``/``exclude`` are regularised.
    :param optimizer: the optimizer that updates these parameters; SI uses its step pre/post
        hooks to measure Δθ.
    :param c: strength (dimensionless multiplier of the penalty).
    :param select: which parameters, and their groups. ``None``: all. A string or a list of
        strings: group names (:data:`~continual.regularisers.selection.PARAMETER_GROUPS`:
        ``"actor"``, ``"critic"``, ``"head"``, ``"hidden"``, ``"all"``) or name patterns (glob;
        ``"re:<regex>"`` for a regex), one group each. A mapping ``{group: weight}`` gives each
        group its own strength ``c_g = c · weight``. A parameter belongs to the first group it
        matches; every group must match something.
    :param exclude: name patterns never regularised (checked first), e.g. ``("log_std",)``.
    :param accumulate: how a consolidation combines the old Ω with the new estimate:
        ``"sum"`` Ω ← Ω + new, ``"ema"`` Ω ← γΩ + new, ``"mean"`` running average over
        consolidations; the result is clamped at 0. Default: the method's own.
    :param gamma: decay γ of ``accumulate="ema"``, in (0, 1].
    :param normalize: ``None`` (raw Ω) or ``"mean"``: at each consolidation, each group's c_g
        is divided by the group's mean Ω, so the strength no longer scales with reward or
        gradient magnitude.
    :param keep_top: if set, a fraction in (0, 1]: at each consolidation only the largest
        ``keep_top`` of each group's fresh importance values are kept, the rest of that estimate
        is set to 0 before it is combined into Ω.
    :param storage_dtype: dtype of Ω and θ*: ``None`` (the parameter's dtype) or
        ``torch.bfloat16`` (half the bytes of float32; θ − θ* then carries bfloat16 rounding of θ*).
    :param addons: :class:`Addon` objects that ride along (:mod:`continual.experimental`).
    :param attach: register the hooks now.
    """

    #: Parameter-sized buffers this class keeps (all constant in the number of consolidations).
    BUFFERS: ClassVar[tuple[str, ...]] = ("importance", "anchor", "scratch")
    default_accumulate: ClassVar[Accumulate] = "sum"
    kind: ClassVar[str] = "quadratic"
    #: Whether the hooks keep the task gradient of every step (SI's path integral).
    needs_task_grad: ClassVar[bool] = False

    def __init__(
        self,
        params: ParamsLike,
        optimizer: torch.optim.Optimizer,
        *,
        c: float = 1.0,
        select: Selection = None,
        exclude: Sequence[str] = (),
        accumulate: Accumulate | None = None,
        gamma: float = 0.9,
        normalize: Normalize = None,
        keep_top: float | None = None,
        storage_dtype: torch.dtype | str | None = None,
        addons: Iterable[Addon] = (),
        attach: bool = True,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if not (math.isfinite(c) and c >= 0):
            raise ValueError(f"c: must be finite and >= 0, got {c}")
        accumulate = accumulate or self.default_accumulate
        if accumulate not in ("sum", "ema", "mean"):
            raise ValueError(f"accumulate: must be 'sum', 'ema' or 'mean', got {accumulate!r}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma: must be in (0, 1], got {gamma}")
        if normalize not in (None, "mean"):
            raise ValueError(f"normalize: must be None or 'mean', got {normalize!r}")
        transforms.check_keep_top(keep_top)
        if isinstance(storage_dtype, str):
            storage_dtype = _STORAGE_DTYPES.get(storage_dtype.replace("torch.", ""))  # type: ignore[assignment]
            if storage_dtype is None:
                raise ValueError(f"storage_dtype: must be one of {sorted(_STORAGE_DTYPES)} or None")
        if storage_dtype not in (None, torch.float32, torch.float64, torch.bfloat16):
            raise ValueError("storage_dtype: must be None, torch.float32/float64 or torch.bfloat16")

        self.optimizer = optimizer
        self.module: nn.Module | None = params if isinstance(params, nn.Module) else None
        self.c = float(c)
        self.accumulate: Accumulate = accumulate
        self.gamma = float(gamma)
        self.normalize: Normalize = normalize
        self.keep_top = None if keep_top is None else float(keep_top)
        self.storage_dtype: torch.dtype | None = storage_dtype  # type: ignore[assignment]
        self.select = select
        self.exclude = tuple(exclude)
        self.addons: list[Addon] = list(addons)
        self.n_consolidations = 0
        self._has_estimate = False
        self._select(params)
        self._allocate()
        if attach:
            self.attach()

    # ------------------------------------------------------------------ construction

    def _select(self, params: ParamsLike) -> None:
        selected = select_parameters(params, self.select, self.exclude)
        self.names: list[str] = selected.names
        self.params: list[torch.Tensor] = selected.params
        self.group_names: list[str] = selected.group_names
        self.group_weights: list[float] = selected.group_weights
        #: Per group, the indices into ``params`` of its parameters.
        self.group_members: list[list[int]] = selected.members
        self._name_to_index = {n: i for i, n in enumerate(self.names)}
        self._group_of = [0] * len(self.params)
        for gi, idx in enumerate(self.group_members):
            for i in idx:
                self._group_of[i] = gi

    def _zeros(self, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        return [torch.zeros_like(p, dtype=dtype or p.dtype) for p in self.params]

    def _allocate(self) -> None:
        with torch.no_grad():
            self._importance = self._zeros(self.storage_dtype)  # Ω
            self._anchor = [  # θ*
                p.detach().to(self.storage_dtype or p.dtype, copy=True) for p in self.params
            ]
            # SI: θ before each step; EWC/MAS: the fresh estimate at consolidation.
            self._scratch = self._zeros() if "scratch" in self.BUFFERS else []
        device, dtype = self.params[0].device, self.params[0].dtype
        #: c as a 0-dim tensor on the parameters' device, in their dtype; the penalty reads it
        #: at consolidation, an add-on with ``strength_on_device`` moves it at every step.
        self.strength = torch.tensor(self.c, dtype=dtype, device=device)
        self._norm_scale = [1.0] * len(self.group_names)
        # Detached aliases of the parameters, made once: they share storage, see every in-place
        # update, and keep the per-step ops out of autograd without a no_grad context.
        self._detached = [p.detach() for p in self.params]
        #: Per parameter, the factor of Ω ⊙ (θ − θ*) in the penalty gradient (see _update_coefs).
        self.alpha: list[float] = []
        for addon in self.addons:
            addon.bind(self)
        self._update_coefs()
        self.hooks = PenaltyHooks(self)

    # ------------------------------------------------------------------ estimator interface

    def fresh_importance(self) -> list[torch.Tensor]:
        """The importance estimate of the period since the last consolidation, per parameter."""
        raise NotImplementedError

    def reset(self) -> None:
        """Clear per-period accumulators (after each consolidation)."""

    def before_step(self) -> None:
        """Runs before every optimizer step, after all backward passes (with step hooks)."""

    def after_step(self, task_grad: list[torch.Tensor | None], idx: list[int] | None) -> None:
        """Runs after every optimizer step (with step hooks). ``task_grad[i]`` holds the task
        gradient of parameter i for the indices ``idx`` (``None``: all)."""

    def estimate(self, data: Batch) -> None:
        """Compute a data-based importance estimate for the next :meth:`consolidate` (EWC/MAS)."""
        raise NotImplementedError(f"{type(self).__name__} does not estimate importance from data")

    # ------------------------------------------------------------------ hooks

    @property
    def captures_task_grad(self) -> bool:
        """Whether the hooks keep the task gradient of every step, and run the step hooks."""
        return self.needs_task_grad or any(a.needs_task_grad for a in self.addons)

    @property
    def strength_on_device(self) -> bool:
        """Whether c multiplies the penalty gradient as the tensor :attr:`strength`."""
        return any(a.strength_on_device for a in self.addons)

    def attach(self) -> None:
        """Register the gradient hooks (and the optimizer step hooks where needed). Idempotent."""
        self.hooks.attach()

    def detach(self) -> None:
        """Remove every hook. The state is kept; :meth:`attach` resumes."""
        self.hooks.remove()

    @property
    def attached(self) -> bool:
        return self.hooks.attached

    @contextmanager
    def hooks_disabled(self) -> Iterator[None]:
        """Within this block the hooks pass gradients through untouched and record nothing
        (for extra backward passes, e.g. Fisher/MAS estimation or ``torch.autograd.grad``)."""
        with self.hooks.disabled():
            yield

    # ------------------------------------------------------------------ penalty

    def _update_coefs(self) -> None:
        """alpha_i = 2·c_g for the group g of parameter i, c_g = c · weight_g / norm_g: the
        factor of Ω ⊙ (θ − θ*) in the penalty gradient. Python floats (they change only at
        consolidation); with :attr:`strength_on_device` c is left out (the hooks multiply by the
        device tensor)."""
        c = 1.0 if self.strength_on_device else float(self.strength)
        alpha = [2.0 * c * self._group_factor(self._group_of[i]) for i in range(len(self.params))]
        self.alpha[:] = alpha  # in place: the hooks hold this list
        for addon in self.addons:
            addon.coefficients_changed(self)

    def _group_factor(self, gi: int) -> float:
        """c_g / c = weight_g / norm_g."""
        return self.group_weights[gi] / self._norm_scale[gi]

    def effective_c(self) -> dict[str, float]:
        """c_g per group as it multiplies Σ Ω (θ − θ*)² (includes normalisation)."""
        c = float(self.strength)
        return {g: c * self._group_factor(gi) for gi, g in enumerate(self.group_names)}

    @torch.no_grad()
    def penalty(self) -> float:
        """Current value of Σ_g c_g Σ Ω (θ − θ*)² (synchronises; for logging and tests)."""
        if not self.n_consolidations:
            return 0.0
        total = 0.0
        for gi, c_g in enumerate(self.effective_c().values()):
            for i in self.group_members[gi]:
                d = self._detached[i] - self._anchor[i]
                total += c_g * float((self._importance[i] * d * d).sum(dtype=torch.float64))
        return total

    @torch.no_grad()
    def penalty_gradient(self) -> dict[str, torch.Tensor]:
        """2·c_g · Ω ⊙ (θ − θ*) per parameter name: what the hooks add to ``p.grad``."""
        c_g = list(self.effective_c().values())
        return {
            name: 2.0 * c_g[self._group_of[i]] * self._importance[i] * (p - self._anchor[i])
            for i, (name, p) in enumerate(zip(self.names, self._detached, strict=True))
        }

    # ------------------------------------------------------------------ consolidation

    @torch.no_grad()
    def consolidate(self, data: Batch | None = None) -> None:
        """Fold the fresh importance estimate into Ω and move the anchor to the current θ.

        Ω ← max(0, combine(Ω, keep_top(fresh))) with ``accumulate``; θ* ← θ. ``data`` (for
        EWC/MAS) is passed to :meth:`estimate` first.
        """
        if data is not None:
            self.estimate(data)
        fresh = self.fresh_importance()
        if self.keep_top is not None:
            transforms.keep_top(fresh, self.group_members, self.keep_top)
        for addon in self.addons:
            addon.before_consolidate(self, fresh)
        k = self.n_consolidations
        for omega, new in zip(self._importance, fresh, strict=True):
            old = omega.to(new.dtype)  # bfloat16 storage: combine in the parameter dtype
            omega.copy_(self.combine(old, new, k).clamp_(min=0.0))
        for anchor, p in zip(self._anchor, self.params, strict=True):
            anchor.copy_(p.detach())
        self.reset()
        self._has_estimate = False
        self.n_consolidations += 1
        bad = [
            n for n, o in zip(self.names, self._importance, strict=True) if not o.isfinite().all()
        ]
        if bad:
            raise FloatingPointError(f"non-finite importance after consolidation in {bad}")
        if self.normalize == "mean":
            for gi, idx in enumerate(self.group_members):
                self._norm_scale[gi] = transforms.mean_scale([self._importance[i] for i in idx])
        self._update_coefs()

    def combine(self, old: torch.Tensor, fresh: torch.Tensor, k: int) -> torch.Tensor:
        """``accumulate`` applied to ``old`` (overwritten) after ``k`` earlier consolidations."""
        return transforms.combine(old, fresh, k, self.accumulate, self.gamma)

    # ------------------------------------------------------------------ inspection

    @property
    def importance(self) -> dict[str, torch.Tensor]:
        """Ω per parameter name (raw, before normalisation; in ``storage_dtype``)."""
        return dict(zip(self.names, self._importance, strict=True))

    @property
    def anchor(self) -> dict[str, torch.Tensor]:
        """θ* per parameter name."""
        return dict(zip(self.names, self._anchor, strict=True))

    def _saved_buffers(self) -> dict[str, list[torch.Tensor]]:
        """The per-parameter buffers a state dict holds."""
        return {"importance": self._importance, "anchor": self._anchor}

    def _buffers(self) -> dict[str, list[torch.Tensor]]:
        return {**self._saved_buffers(), "scratch": self._scratch}

    def state_bytes(self) -> int:
        """Bytes of the state: the parameter-sized buffers and the add-ons' fixed-size stores
        (such as a :class:`~continual.regularisers.functional.FunctionalAnchor`'s reservoir);
        constant in the number of consolidations."""
        own = sum(t.numel() * t.element_size() for ts in self._buffers().values() for t in ts)
        return own + sum(addon.state_bytes() for addon in self.addons)

    def param_bytes(self) -> int:
        """Bytes of the regularised parameters themselves (the unit of ``state_bytes``)."""
        return sum(p.numel() * p.element_size() for p in self.params)

    @torch.no_grad()
    def stats(self) -> dict[str, float]:
        """Scalars for logging: penalty, strength, Ω statistics per group (synchronises)."""
        out: dict[str, float] = {
            "penalty": self.penalty(),
            "c": float(self.strength),
            "consolidations": float(self.n_consolidations),
        }
        c_g = self.effective_c()
        for gname, idx in zip(self.group_names, self.group_members, strict=True):
            vals = [self._importance[i].double() for i in idx]
            n = sum(v.numel() for v in vals)
            out[f"c/{gname}"] = c_g[gname]
            out[f"omega_mean/{gname}"] = float(sum(v.sum() for v in vals)) / n
            out[f"omega_max/{gname}"] = float(max(v.max() for v in vals))
        for addon in self.addons:
            out.update(addon.stats(self))
        return out

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, keyed by parameter name (restores onto a fresh policy)."""
        state: dict[str, Any] = {
            "format": STATE_FORMAT,
            "kind": self.kind,
            "names": list(self.names),
            "groups": list(self.group_names),
            "group_weights": list(self.group_weights),
            "tensors": {
                key: {n: t.detach().clone() for n, t in zip(self.names, ts, strict=True)}
                for key, ts in self._saved_buffers().items()
            },
            "n_consolidations": self.n_consolidations,
            "c": float(self.strength),
            "norm_scale": list(self._norm_scale),
        }
        for addon in self.addons:
            state.update(addon.state_dict())
        return state

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; names and shapes must match the selected parameters.
        Keys this regulariser does not know (e.g. of add-ons it does not have) are ignored."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise ValueError("state: not a QuadraticRegulariser state_dict (missing format tag)")
        if state.get("kind") != self.kind:
            raise ValueError(
                f"state: saved by {state.get('kind')!r}, cannot load into {self.kind!r}"
            )
        saved, mine = list(state["names"]), self.names
        if set(saved) != set(mine):
            missing = sorted(set(mine) - set(saved))
            unexpected = sorted(set(saved) - set(mine))
            raise ValueError(
                f"state: parameter names differ (missing {missing}, unexpected {unexpected})"
            )
        if list(state.get("groups", self.group_names)) != self.group_names:
            raise ValueError(
                f"state: parameter groups {state.get('groups')} differ from {self.group_names}"
            )
        for key, buffers in self._saved_buffers().items():
            if key not in state["tensors"]:
                raise ValueError(f"state: missing tensors {key!r}")
            for name, src in state["tensors"][key].items():
                dst = buffers[self._name_to_index[name]]
                if tuple(src.shape) != tuple(dst.shape):
                    raise ValueError(
                        f"state: {key}[{name!r}] has shape {tuple(src.shape)}, "
                        f"parameter has {tuple(dst.shape)}"
                    )
                dst.copy_(src)
        self.n_consolidations = int(state["n_consolidations"])
        self.strength.fill_(float(state["c"]))
        self._norm_scale = [float(s) for s in state["norm_scale"]]
        self._update_coefs()
        for addon in self.addons:
            addon.load_state_dict(state)
        self.hooks.reset()
        self._has_estimate = False

    def rebind(self, params: ParamsLike, optimizer: torch.optim.Optimizer) -> None:
        """Move onto new parameter objects with the same names (e.g. after ``PPO.load``)."""
        state = self.state_dict()
        was_attached = self.attached
        self.detach()
        self.optimizer = optimizer
        self.module = params if isinstance(params, nn.Module) else None
        self._select(params)
        self._allocate()
        self.load_state_dict(state)
        if was_attached:
            self.attach()

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.params)
        return (
            f"{type(self).__name__}(c={float(self.strength):.4g}, groups={self.group_names}, "
            f"params={len(self.params)} tensors/{n} values, "
            f"consolidations={self.n_consolidations})"
        )


class Addon:
    """Something that rides along a regulariser: a further penalty whose gradient the hooks add
    with the quadratic one (:class:`~continual.regularisers.functional.FunctionalAnchor`), or
    a controller of its strength (:mod:`continual.experimental`). Every method is a no-op here;
    override what you need.

    An add-on's state goes into the regulariser's state dict at the top level.
    """

    #: The hooks keep the task gradient of every step and pass it to :meth:`after_step`.
    needs_task_grad: ClassVar[bool] = False
    #: c multiplies the penalty gradient as the device tensor ``reg.strength`` (which this
    #: add-on moves without host syncs) instead of inside the per-parameter floats.
    strength_on_device: ClassVar[bool] = False
    #: The hooks call :meth:`penalty_gradient` at the end of every backward pass.
    adds_gradient: ClassVar[bool] = False

    def bind(self, reg: QuadraticRegulariser) -> None:
        """The regulariser allocated its buffers (at construction and at every rebind)."""

    def coefficients_changed(self, reg: QuadraticRegulariser) -> None:
        """``reg.alpha`` was recomputed (after consolidation, load or rebind)."""

    def before_consolidate(self, reg: QuadraticRegulariser, fresh: list[torch.Tensor]) -> None:
        """At consolidation, ``fresh`` transformed, before Ω and θ* change."""

    def after_step(
        self,
        reg: QuadraticRegulariser,
        task_grad: list[torch.Tensor | None],
        idx: list[int] | None,
    ) -> None:
        """After each optimizer step once anything is consolidated; ``task_grad[i]`` holds the
        task gradient of parameter i for the indices ``idx`` (``None``: all)."""

    def penalty_gradient(self, reg: QuadraticRegulariser) -> list[torch.Tensor | None] | None:
        """With :attr:`adds_gradient`: the gradient of this add-on's own penalty, per parameter of
        ``reg.params`` (``None`` where it has none), or ``None`` for nothing this step. Called at
        the end of every backward pass once anything is consolidated, with the hooks disabled;
        the hooks add it to ``p.grad`` with the quadratic penalty's gradient, before gradient
        clipping and outside the task gradient that SI integrates."""
        return None

    def state_bytes(self) -> int:
        """Bytes of the add-on's state, counted in :meth:`QuadraticRegulariser.state_bytes`."""
        return 0

    def stats(self, reg: QuadraticRegulariser) -> dict[str, float]:
        """Scalars added to :meth:`QuadraticRegulariser.stats`."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Top-level keys added to the regulariser's state dict."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """``state`` is the regulariser's whole state dict."""
