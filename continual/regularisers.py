"""Quadratic consolidation regularisers: one penalty, several importance estimates.

Every method here adds the same penalty to the task loss,

    L_reg(θ) = Σ_g c_g · Σ_{i ∈ g} Ω_i (θ_i − θ*_i)²

over parameter groups g (for example actor and critic, each with its own strength c_g), with
θ* the anchor (the parameters at the last consolidation) and Ω the per-parameter importance.
The methods differ only in how Ω is estimated:

- :class:`SI` (Zenke, Poole & Ganguli 2017): the path integral of the task gradient along the
  parameter trajectory, accumulated at every optimizer step.
- :class:`L2`: Ω = 1.
- :class:`OnlineEWC` (Schwarz et al. 2018): a diagonal Fisher estimated on data, decayed by γ.
- :class:`MAS` (Aljundi et al. 2018): |∂‖f(x)‖² / ∂θ| averaged over recent inputs.

The penalty is never put into the loss. Its gradient 2·c_g·Ω ⊙ (θ − θ*) is added analytically
to ``p.grad`` at the end of the ordinary backward pass: per-parameter gradient hooks note which
parameters received a gradient, and a callback queued on autograd's engine (run once per
backward, after the last gradient is accumulated and before ``backward()`` returns) adds the
penalty gradient to all of them with fused multi-tensor ops. That is before any gradient
clipping, exactly as if the penalty were part of the loss, without building an autograd graph
and without a second backward pass. With ``clip_penalty=False`` it is added later, in the
optimizer's step pre-hook, after clipping: a global-norm clip (SB3's ``max_grad_norm``) then
bounds the task gradient alone, and a strong penalty cannot shrink the task gradient of the
parameters it does not hold. The task-only gradient that SI integrates is the gradient
autograd accumulated before the penalty is added. The optimizer's step pre/post hooks measure
the change Δθ that the step really made (after clipping, momentum, Adam). Per-step bookkeeping
uses fused ``torch._foreach_*`` ops and never synchronises with the device (no ``.item()``).

Plain PyTorch usage (the hooks attach on construction)::

    import torch
    from torch import nn
    from continual import SI

    model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    si = SI(model, optimizer, c=1.0, xi=1e-3)
    for task in tasks:                     # each task: an iterable of (x, y) batches
        for x, y in task:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()   # task loss only
            optimizer.step()
        si.consolidate()                   # at a task end (or let a trigger decide)
    si.penalty()      # float: Σ_g c_g Σ Ω (θ − θ*)²
    si.importance     # dict name -> Ω
    sd = si.state_dict(); si.load_state_dict(sd); si.detach()

Memory is constant in the number of consolidations. Parameter-sized buffers per regularised
parameter (``BUFFERS`` on each class; :meth:`QuadraticRegulariser.state_bytes`):

- every method: Ω (importance) and θ* (anchor). L2 needs nothing else (two buffers).
- SI adds the running path integral ω and one scratch buffer that holds θ_before from the
  step's pre-hook to its post-hook, where it becomes −Δθ: four buffers. The task gradient g is
  the tensor autograd accumulated into ``p.grad``; the end-of-backward callback keeps a
  reference to it (no copy) until the step's post-hook and gives ``p.grad`` a new tensor,
  g + penalty gradient. So g is no state between steps; during a step it occupies the memory
  autograd allocated for it anyway.
- OnlineEWC and MAS add one scratch buffer for the fresh estimate (three buffers).
- The penalty gradient itself is computed from Ω, θ* and θ at the end of the backward pass; its
  temporaries live only for that call.
- ``storage_dtype=torch.bfloat16`` stores Ω and θ* in bfloat16 (half their bytes); ω and the
  scratch stay in the parameter dtype because they accumulate small differences.

Limitations: every extra backward pass through the parameters (``torch.autograd.grad`` included)
goes through the hooks unless it runs inside :meth:`QuadraticRegulariser.hooks_disabled`
(``torch.autograd.grad`` outside it would have the penalty gradient added to ``p.grad``). With
a ``torch.amp.GradScaler`` the hooks see scaled gradients, so SI's path integral and the penalty
would be off by the scale factor: not supported.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Literal, get_args

import torch
from torch import nn

__all__ = [
    "L2",
    "MAS",
    "PRESETS",
    "SI",
    "OnlineEWC",
    "QuadraticRegulariser",
]

Accumulate = Literal["sum", "ema", "mean"]
Normalize = Literal["mean", "max"] | None
AdaptiveSignal = Literal["gradient_ratio", "drift"]
ADAPTIVE_SIGNALS: tuple[str, ...] = get_args(AdaptiveSignal)


def check_adaptive_signal(signal: str) -> None:
    """Raise a ValueError naming the choices unless ``signal`` is an :data:`AdaptiveSignal`."""
    if signal not in ADAPTIVE_SIGNALS:
        choices = " or ".join(repr(s) for s in ADAPTIVE_SIGNALS)
        raise ValueError(f"adaptive_signal: must be {choices}, got {signal!r}")


def check_keep_top(keep_top: float | None) -> None:
    """Raise a ValueError unless ``keep_top`` is None or a fraction in (0, 1]."""
    if keep_top is not None and not 0.0 < keep_top <= 1.0:
        raise ValueError(
            f"keep_top: must be None (keep all) or a fraction in (0, 1], got {keep_top}"
        )


ParamsLike = nn.Module | Iterable[tuple[str, torch.Tensor]]
Selection = str | Sequence[str] | Mapping[str, float] | None
Batch = torch.Tensor | Mapping[str, torch.Tensor]

STATE_FORMAT = "continual.QuadraticRegulariser/1"

# Autograd's engine: the id of the running backward pass, and a queue of callbacks that it runs
# once that pass has accumulated every gradient, before backward() returns (the mechanism
# DistributedDataParallel uses to finish its gradient reduction).
_graph_task_id: Callable[[], int] = torch._C._current_graph_task_id
_queue_callback: Callable[[Callable[[], None]], None] = (
    torch.autograd.Variable._execution_engine.queue_callback  # type: ignore[attr-defined]
)

#: Named parameter selections. Names follow stable-baselines3's ActorCriticPolicy and
#: sb3-contrib's RecurrentActorCriticPolicy; a shared feature extractor counts as actor.
PRESETS: dict[str, tuple[str, ...]] = {
    "all": ("*",),
    "actor": (
        "features_extractor.*",
        "pi_features_extractor.*",
        "mlp_extractor.policy_net.*",
        "lstm_actor.*",
        "action_net.*",
    ),
    "critic": (
        "vf_features_extractor.*",
        "mlp_extractor.value_net.*",
        "lstm_critic.*",
        "critic.*",
        "value_net.*",
    ),
    "head": ("action_net.*",),
    "hidden": (
        "features_extractor.*",
        "pi_features_extractor.*",
        "mlp_extractor.policy_net.*",
        "lstm_actor.*",
    ),
}


def _match(name: str, pattern: str) -> bool:
    """Glob match (``fnmatch``, whole name); a ``re:`` prefix means a regex (``re.search``)."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


def _resolve_groups(select: Selection) -> list[tuple[str, tuple[str, ...], float]]:
    """Turn a selection into ``[(group name, patterns, weight)]``."""
    if select is None:
        return [("all", PRESETS["all"], 1.0)]
    items: list[tuple[str, float]]
    if isinstance(select, str):
        items = [(select, 1.0)]
    elif isinstance(select, Mapping):
        items = [(str(k), float(v)) for k, v in select.items()]
    else:
        items = [(str(k), 1.0) for k in select]
    if not items:
        raise ValueError("select: must name at least one parameter group or pattern")
    groups = []
    for key, weight in items:
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"select[{key!r}]: group weight must be finite and >= 0, got {weight}")
        groups.append((key, PRESETS.get(key, (key,)), weight))
    return groups


def _named_params(params: ParamsLike) -> list[tuple[str, torch.Tensor]]:
    if isinstance(params, nn.Module):
        return list(params.named_parameters())
    out = []
    for item in params:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], torch.Tensor)):
            raise ValueError(
                "params: expected an nn.Module or an iterable of (name, parameter) pairs, "
                f"got an element of type {type(item).__name__}"
            )
        out.append((str(item[0]), item[1]))
    return out


def _split(batch: Batch, size: int) -> Iterator[tuple[Batch, int]]:
    """Split a tensor (or a dict of tensors) along dim 0 into chunks of ``size`` samples."""
    if isinstance(batch, Mapping):
        n = len(next(iter(batch.values())))
        for start in range(0, n, size):
            chunk = {k: v[start : start + size] for k, v in batch.items()}
            yield chunk, len(next(iter(chunk.values())))
    else:
        for chunk in torch.split(batch, size):
            yield chunk, len(chunk)


class QuadraticRegulariser:
    """Penalty ``Σ_g c_g Σ Ω (θ − θ*)²`` with hook-added gradient; subclasses estimate Ω.

    :param params: an ``nn.Module`` or an iterable of ``(name, parameter)`` pairs. Only parameters
        with ``requires_grad`` and selected by ``select``/``exclude`` are regularised.
    :param optimizer: the optimizer that updates these parameters; SI (and adaptive mode) use
        its step pre/post hooks to measure Δθ (and the gradient ratio).
    :param c: strength (dimensionless multiplier of the penalty). In adaptive mode, the initial
        value of the adaptive strength.
    :param select: which parameters, and their groups. ``None``: all. A string or a list of strings:
        preset names (:data:`PRESETS`: ``"actor"``, ``"critic"``, ``"head"``, ``"hidden"``,
        ``"all"``) or name patterns (glob; ``"re:<regex>"`` for a regex), one group each.
        A mapping ``{group: weight}`` gives each group its own strength ``c_g = c · weight``.
        A parameter belongs to the first group it matches; every group must match something.
    :param exclude: name patterns never regularised (checked first), e.g. ``("log_std",)``.
    :param accumulate: how a consolidation combines the old Ω with the new estimate:
        ``"sum"`` Ω ← Ω + new, ``"ema"`` Ω ← γΩ + new, ``"mean"`` running average over
        consolidations; the result is clamped at 0. Default: the method's own.
    :param gamma: decay γ of ``accumulate="ema"``, in (0, 1].
    :param normalize: ``None`` (raw Ω), ``"mean"`` or ``"max"``: at each consolidation, each
        group's Ω is divided (through its effective c) by its mean or max, so the strength no
        longer scales with reward or gradient magnitude.
    :param keep_top: if set, a fraction in (0, 1]: at each consolidation only the largest
        ``keep_top`` of each group's fresh importance values are kept, the rest of that estimate
        is set to 0 before it is combined into Ω. A parameter no consolidation kept carries no
        penalty at any c, so a strong c freezes what earlier tasks relied on most and leaves the
        rest free, instead of holding every parameter in proportion to c.
    :param adaptive_target: if set, the effective c is adapted at every step (in log space,
        with rate ``adaptive_rate``, clamped to ``adaptive_bounds``) so that the quantity chosen
        by ``adaptive_signal`` meets this target.
    :param adaptive_signal: what ``adaptive_target`` sets.
        ``"gradient_ratio"``: ‖penalty gradient‖ / ‖task gradient‖.
        ``"drift"``: the *drift budget* D = Σ Ω (θ − θ*)² / L, where L is the same quadratic
        form of what was learned, Σ Ω_new (θ* − θ*_previous)², summed over consolidations like
        Ω. D estimates the share of the consolidated progress that the moves since the anchor
        undo; c rises while D is above the target and falls while it is below (dual ascent on
        the constraint D ≤ target), so ``c`` is only the starting value.
    :param clip_penalty: ``True``: the penalty gradient is added at the end of the backward
        pass, so gradient clipping scales it with the task gradient, exactly as if the penalty
        were part of the loss. ``False``: it is added in the optimizer's step pre-hook, after
        clipping. Under a global-norm clip a strong penalty otherwise makes up most of the norm,
        and the clip then shrinks the task gradient of every parameter, also of those the
        penalty does not hold (with Adam, their steps shrink once that gradient nears ε).
        Unclipped, the penalty gradient can be large: with plain SGD keep ``lr · 2c·Ω`` below 1.
        The learning study found ``True`` better with SB3's PPO (README).
    :param storage_dtype: dtype of Ω and θ*: ``None`` (the parameter's dtype) or
        ``torch.bfloat16`` (half the bytes of float32; θ − θ* then carries bfloat16 rounding of θ*).
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
        clip_penalty: bool = True,
        adaptive_target: float | None = None,
        adaptive_signal: AdaptiveSignal = "gradient_ratio",
        adaptive_rate: float = 0.01,
        adaptive_bounds: tuple[float, float] = (1e-6, 1e6),
        storage_dtype: torch.dtype | str | None = None,
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
        if normalize not in (None, "mean", "max"):
            raise ValueError(f"normalize: must be None, 'mean' or 'max', got {normalize!r}")
        check_keep_top(keep_top)
        if adaptive_target is not None:
            if not (math.isfinite(adaptive_target) and adaptive_target > 0):
                raise ValueError(f"adaptive_target: must be > 0, got {adaptive_target}")
            if c <= 0:
                raise ValueError(f"c: adaptive mode needs an initial c > 0, got {c}")
        check_adaptive_signal(adaptive_signal)
        if not 0.0 < adaptive_rate <= 1.0:
            raise ValueError(f"adaptive_rate: must be in (0, 1], got {adaptive_rate}")
        lo, hi = adaptive_bounds
        if not 0 < lo <= hi:
            raise ValueError(f"adaptive_bounds: need 0 < low <= high, got {adaptive_bounds}")
        if isinstance(storage_dtype, str):
            names = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
            storage_dtype = names.get(storage_dtype.replace("torch.", ""))  # type: ignore[assignment]
            if storage_dtype is None:
                raise ValueError(f"storage_dtype: must be one of {sorted(names)} or None")
        if storage_dtype not in (None, torch.float32, torch.float64, torch.bfloat16):
            raise ValueError("storage_dtype: must be None, torch.float32/float64 or torch.bfloat16")

        self.optimizer = optimizer
        self.module: nn.Module | None = params if isinstance(params, nn.Module) else None
        self.c = float(c)
        self.accumulate: Accumulate = accumulate
        self.gamma = float(gamma)
        self.normalize: Normalize = normalize
        self.keep_top = None if keep_top is None else float(keep_top)
        self.clip_penalty = bool(clip_penalty)
        self.adaptive_target = adaptive_target
        self.adaptive_signal: AdaptiveSignal = adaptive_signal
        self.adaptive_rate = float(adaptive_rate)
        self.adaptive_bounds = (float(lo), float(hi))
        # Whether the hooks keep the task gradient of every step (SI, adaptive mode).
        self._capture = self.needs_task_grad or adaptive_target is not None
        # Whether the optimizer's step hooks run: to measure the step, or to add the penalty
        # gradient after clipping.
        self._step_hooks = self._capture or not self.clip_penalty
        self.storage_dtype: torch.dtype | None = storage_dtype  # type: ignore[assignment]
        self.select = select
        self.exclude = tuple(exclude)
        self.n_consolidations = 0

        self._select_params(_named_params(params))
        self._allocate()
        self._handles: list[Any] = []
        self._hooks_enabled = True
        self._has_estimate = False
        if attach:
            self.attach()

    # ------------------------------------------------------------------ construction

    def _select_params(self, named: list[tuple[str, torch.Tensor]]) -> None:
        groups = _resolve_groups(self.select)
        members: list[list[int]] = [[] for _ in groups]
        self.names: list[str] = []
        self.params: list[torch.Tensor] = []
        for name, p in named:
            if not p.requires_grad or any(_match(name, pat) for pat in self.exclude):
                continue
            for gi, (_, patterns, _) in enumerate(groups):
                if any(_match(name, pat) for pat in patterns):
                    if not p.is_leaf:
                        raise ValueError(f"params: {name!r} is not a leaf tensor")
                    members[gi].append(len(self.params))
                    self.names.append(name)
                    self.params.append(p)
                    break
        available = [n for n, _ in named]
        for (gname, patterns, _), idx in zip(groups, members, strict=True):
            if not idx:
                raise ValueError(
                    f"select: group {gname!r} (patterns {list(patterns)}) matches no trainable, "
                    f"non-excluded parameter; names are {available}"
                )
        self.group_names = [g[0] for g in groups]
        self.group_weights = [g[2] for g in groups]
        self._group_idx = members
        self._name_to_index = {n: i for i, n in enumerate(self.names)}

    def _zeros(self, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        return [torch.zeros_like(p, dtype=dtype or p.dtype) for p in self.params]

    def _allocate(self) -> None:
        with torch.no_grad():
            self._importance = self._zeros(self.storage_dtype)
            self._anchor = [
                p.detach().to(self.storage_dtype or p.dtype, copy=True) for p in self.params
            ]
            # SI: θ before each step; EWC/MAS: the fresh estimate at consolidation.
            self._scratch = self._zeros() if "scratch" in self.BUFFERS else []
        device, dtype = self.params[0].device, self.params[0].dtype
        # The strength c lives on the device: adaptive mode updates it without host syncs.
        self._c_t = torch.tensor(self.c, dtype=dtype, device=device)
        self._norm_scale = [1.0] * len(self.group_names)
        self._group_of = [0] * len(self.params)
        for gi, idx in enumerate(self._group_idx):
            for i in idx:
                self._group_of[i] = gi
        self._log_ratio_ema = torch.tensor(float("nan"), device=device)
        # L of the drift budget: Σ Ω_new (θ* − θ*_previous)², combined over consolidations like Ω.
        self._learned = torch.zeros((), dtype=dtype, device=device)
        # Detached aliases of the parameters, made once: they share storage, see every in-place
        # update, and keep the per-step ops out of autograd without a no_grad context.
        self._detached = [p.detach() for p in self.params]
        self._update_coefs()
        n = len(self.params)
        # Per step: which parameters have their task gradient (and penalty gradient) this step.
        self._fired = [False] * n
        self._not_fired = [False] * n
        self._all_fired = [True] * n
        # Per backward pass: parameters whose gradient arrived and awaits the penalty gradient,
        # and the backward (autograd graph task) the end-of-backward callback is queued for.
        self._pending: list[int] = []
        self._queued_task = -1
        # Task gradients of the current step: references to autograd's tensors, dropped after
        # the step (transient, not state).
        self._task_grad: list[torch.Tensor | None] = [None] * n
        self._no_grad: list[torch.Tensor | None] = [None] * n

    # ------------------------------------------------------------------ hooks

    def attach(self) -> None:
        """Register the per-parameter gradient hooks, and the optimizer step hooks where the
        method needs them (SI, adaptive mode, ``clip_penalty=False``). Idempotent."""
        if self._handles:
            return
        self._fired[:] = self._not_fired
        self._task_grad[:] = self._no_grad
        self._pending.clear()
        self._queued_task = -1
        self._handles = [
            p.register_hook(self._make_grad_hook(i)) for i, p in enumerate(self.params)
        ]
        if self._step_hooks:
            self._handles.append(self.optimizer.register_step_pre_hook(self._pre_step))
            self._handles.append(self.optimizer.register_step_post_hook(self._post_step))

    def detach(self) -> None:
        """Remove every hook. The state is kept; :meth:`attach` resumes."""
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    @contextmanager
    def hooks_disabled(self) -> Iterator[None]:
        """Within this block the hooks pass gradients through untouched and record nothing
        (used for the extra backward passes of Fisher/MAS estimation)."""
        previous = self._hooks_enabled
        self._hooks_enabled = False
        try:
            yield
        finally:
            self._hooks_enabled = previous

    def _make_grad_hook(self, i: int) -> Callable[[torch.Tensor], None]:
        # The hook only takes note; the arithmetic runs once per backward pass, for all
        # parameters together, in _end_of_backward. What the hook touches is bound here once.
        param, capture, late = self.params[i], self._capture, not self.clip_penalty
        fired, pending, task_grad = self._fired, self._pending, self._task_grad
        graph_task_id, queue_callback = _graph_task_id, _queue_callback
        end_of_backward = self._end_of_backward

        def hook(grad: torch.Tensor) -> None:
            if not self._hooks_enabled:
                return
            if grad.requires_grad:  # backward(create_graph=True): keep values, not the graph
                grad = grad.detach()  # (autograd copies the gradient into p.grad then anyway)
            if fired[i] and param.grad is not None:
                # A further backward before the same optimizer step (gradient accumulation):
                # the penalty gradient is already in p.grad once; only the task gradient sums.
                if capture:
                    task_grad[i] = task_grad[i] + grad
                return
            if capture and (late or not self.n_consolidations):
                # No penalty gradient to add now: keep autograd's task-gradient tensor (no
                # copy). While this reference lives, autograd accumulates a copy of it into
                # p.grad, which gradient clipping may then scale in place.
                task_grad[i] = grad
            task = graph_task_id()
            if task != self._queued_task:  # the first regularised gradient of this backward
                self._queued_task = task
                pending.clear()  # left over only if an earlier backward raised
                queue_callback(end_of_backward)
            pending.append(i)

        return hook

    def _end_of_backward(self) -> None:
        """Runs once per backward pass, after autograd has accumulated the last gradient into
        p.grad and before ``backward()`` returns: before any gradient clipping."""
        pending, fired = self._pending, self._fired
        if len(pending) == len(fired):  # every parameter: the common case
            fired[:] = self._all_fired
            idx = None
        else:
            idx = sorted(pending)
            for i in idx:
                fired[i] = True
        pending.clear()
        # Nothing consolidated: no penalty yet. clip_penalty=False: the step pre-hook adds it.
        if self.n_consolidations and self.clip_penalty:
            self._add_penalty_gradient(idx)

    def _add_penalty_gradient(self, idx: list[int] | None) -> None:
        """p.grad += 2·c_g · Ω ⊙ (θ − θ*), the gradient of c_g Σ Ω (θ − θ*)², exactly as if the
        penalty were part of the loss; for the parameters ``idx`` (``None``: all). Called at the
        end of the backward pass, or with ``clip_penalty=False`` in the step pre-hook, where
        the task gradient SI keeps is already a tensor apart from p.grad.

        A few fused multi-tensor ops for all parameters, rather than small ops per parameter
        inside autograd's per-parameter hooks: on small networks the cost is the number of op
        launches and interpreter round trips, not the arithmetic.
        """
        params, theta, importance = self.params, self._detached, self._importance
        anchor, alpha = self._anchor, self._alpha
        if idx is not None:
            params, theta, importance, anchor, alpha = (
                [seq[i] for i in idx] for seq in (params, theta, importance, anchor, alpha)
            )
        grads = [p.grad for p in params]
        diff = torch._foreach_sub(theta, anchor)
        if self.adaptive_target is not None:
            torch._foreach_mul_(diff, self._c_t)  # c lives on the device in adaptive mode
        try:
            if not self._capture or not self.clip_penalty:
                torch._foreach_addcmul_(grads, importance, diff, alpha)
                return
            totals = torch._foreach_addcmul(grads, importance, diff, alpha)
        except TypeError:  # a p.grad is None: torch.autograd.grad outside hooks_disabled
            every = range(len(self.params)) if idx is None else idx
            kept = [i for i, p in zip(every, params, strict=True) if p.grad is not None]
            if kept:
                self._add_penalty_gradient(kept)
            return
        # p.grad was autograd's task-gradient tensor: keep it (no copy) until the step ends,
        # and give p.grad a new tensor holding the sum.
        if grads[0].requires_grad:  # backward(create_graph=True): keep values, not the graph
            grads = [g.detach() for g in grads]
        if idx is None:
            self._task_grad[:] = grads
        else:
            for i, g in zip(idx, grads, strict=True):
                self._task_grad[i] = g
        for p, total in zip(params, totals, strict=True):
            p.grad = total

    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self._hooks_enabled:
            return
        fired = self._fired
        if not self.clip_penalty and self.n_consolidations and any(fired):
            idx = None if all(fired) else [i for i, f in enumerate(fired) if f]
            self._add_penalty_gradient(idx)
        self._before_step()

    def _post_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        # Detached parameter aliases, buffers and detached task gradients only: no autograd,
        # no no_grad context needed (entering one costs more than SI's bookkeeping ops).
        if not self._hooks_enabled:
            return
        fired = self._fired
        idx = None if all(fired) else [i for i, f in enumerate(fired) if f]
        if self._capture:
            self._after_step(idx)
        if self.adaptive_target is not None and self.n_consolidations:
            self._adapt(idx)
        fired[:] = self._not_fired
        self._task_grad[:] = self._no_grad

    def _before_step(self) -> None:
        """Subclass hook: runs before every optimizer step, after all backward passes."""

    def _after_step(self, idx: list[int] | None) -> None:
        """Subclass hook: runs after every optimizer step.
        ``self._task_grad[i]`` holds g_task for the indices ``idx`` (``None``: all)."""

    # ------------------------------------------------------------------ penalty

    def _group_factor(self, gi: int) -> float:
        """c_g / c = weight_g / normalisation_g."""
        return self.group_weights[gi] / self._norm_scale[gi]

    def _update_coefs(self) -> None:
        """Per-parameter factor of Ω ⊙ (θ − θ*) in the penalty gradient: 2·c_g, or 2·c_g/c in
        adaptive mode (there c multiplies on the device). Python floats: they change only at
        consolidation."""
        c = 1.0 if self.adaptive_target is not None else float(self._c_t)
        alpha = [2.0 * c * self._group_factor(self._group_of[i]) for i in range(len(self.params))]
        if hasattr(self, "_alpha"):
            self._alpha[:] = alpha  # the hooks hold this list
        else:
            self._alpha = alpha
        self._alpha_t = torch.tensor(alpha, dtype=self._c_t.dtype, device=self._c_t.device)

    def _adapt(self, idx: list[int] | None) -> None:
        """Move c so that the ``adaptive_signal`` meets the target (log space, tensors only).

        ``gradient_ratio``: r = ‖penalty grad‖ / ‖task grad‖ is proportional to c, so
        log c ← clamp(log c + η·(log target − log r)): an EMA with rate η of log(c·target/r), the
        strength that would have hit the target at this step.

        ``drift``: D = Σ Ω (θ − θ*)² / L responds to c only through later steps, so c integrates
        the error, log c ← clamp(log c + η·clip(log D − log target, −1, 1)): dual ascent on the
        constraint D ≤ target, with c as its multiplier. All parameters count, whichever fired.
        """
        eta, lo, hi = self.adaptive_rate, *self.adaptive_bounds
        if self.adaptive_signal == "drift":
            log_drift = torch.log(self._undone()) - torch.log(self._learned)
            error = torch.clamp(log_drift - math.log(self.adaptive_target), -1.0, 1.0)
            step = torch.where(self._learned > 0, eta * error, 0.0).to(self._c_t.dtype)
            self._c_t.copy_(torch.clamp(self._c_t * torch.exp(step), lo, hi))
            return
        grads = self._task_grad if idx is None else [self._task_grad[i] for i in idx]
        if not grads:
            return
        g_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        pen = torch._foreach_sub(self._detached, self._anchor)
        torch._foreach_mul_(pen, self._importance)
        norms = torch.stack(torch._foreach_norm(pen)) * self._alpha_t * self._c_t
        p_norm = torch.linalg.vector_norm(norms)
        log_ratio = torch.log(p_norm) - torch.log(g_norm)
        valid = torch.isfinite(log_ratio)
        step = torch.where(valid, eta * (math.log(self.adaptive_target) - log_ratio), 0.0)
        self._c_t.copy_(torch.clamp(self._c_t * torch.exp(step), lo, hi))
        ema = self._log_ratio_ema
        blended = torch.where(torch.isnan(ema), log_ratio, (1 - eta) * ema + eta * log_ratio)
        ema.copy_(torch.where(valid, blended, ema))

    def _undone(self) -> torch.Tensor:
        """Σ Ω (θ − θ*)², unweighted by c (a scalar tensor on the parameters' device)."""
        moved = torch._foreach_sub(self._detached, self._anchor)
        torch._foreach_mul_(moved, moved)
        torch._foreach_mul_(moved, self._importance)
        return torch.stack(torch._foreach_norm(moved, 1)).sum()

    def drift(self) -> float:
        """D = Σ Ω (θ − θ*)² / L: the share of the consolidated progress that the moves since the
        anchor undo, by the quadratic model of the penalty (L = Σ Ω_new (θ* − θ*_previous)²
        over the consolidations, combined like Ω). NaN before the first consolidation.
        Dimensionless, whatever the method, c or normalisation (synchronises; for logging)."""
        learned = float(self._learned)
        return float(self._undone()) / learned if learned > 0 else math.nan

    @torch.no_grad()
    def penalty(self) -> float:
        """Current value of Σ_g c_g Σ Ω (θ − θ*)² (synchronises; for logging and tests)."""
        if not self.n_consolidations:
            return 0.0
        total = 0.0
        for gi, c_g in enumerate(self.effective_c().values()):
            for i in self._group_idx[gi]:
                d = self._detached[i] - self._anchor[i]
                total += c_g * float((self._importance[i] * d * d).sum(dtype=torch.float64))
        return total

    def effective_c(self) -> dict[str, float]:
        """c_g per group as it multiplies Σ Ω (θ − θ*)² (includes adaptation and normalisation)."""
        c = float(self._c_t)
        return {g: c * self._group_factor(gi) for gi, g in enumerate(self.group_names)}

    # ------------------------------------------------------------------ consolidation

    def _new_importance(self) -> list[torch.Tensor]:
        """Subclass hook: the importance estimate of the period since the last consolidation."""
        raise NotImplementedError

    def _reset_after_consolidation(self) -> None:
        """Subclass hook: clear per-period accumulators."""

    @torch.no_grad()
    def consolidate(self, data: Batch | None = None) -> None:
        """Fold the current importance estimate into Ω and move the anchor to the current θ.

        Ω ← max(0, combine(Ω, new)) with ``accumulate``; θ* ← θ. ``data`` (for EWC/MAS) is
        passed to :meth:`estimate` first.
        """
        if data is not None:
            self.estimate(data)
        new = self._new_importance()
        if self.keep_top is not None:
            self._keep_largest(new)
        k = self.n_consolidations
        # L of the drift budget, before the anchor moves: Σ Ω_new (θ − θ*)², the quadratic form
        # of what this period learned.
        learned = sum(
            (fresh.clamp(min=0.0) * (p.detach() - anchor) ** 2).sum(dtype=self._learned.dtype)
            for fresh, p, anchor in zip(new, self.params, self._anchor, strict=True)
        )
        self._combine(self._learned, learned, k)
        for omega, fresh in zip(self._importance, new, strict=True):
            old = omega.to(fresh.dtype)  # bfloat16 storage: combine in the parameter dtype
            omega.copy_(self._combine(old, fresh, k).clamp_(min=0.0))
        for anchor, p in zip(self._anchor, self.params, strict=True):
            anchor.copy_(p.detach())
        self._reset_after_consolidation()
        self._has_estimate = False
        self.n_consolidations += 1
        bad = [
            n for n, o in zip(self.names, self._importance, strict=True) if not o.isfinite().all()
        ]
        if bad:
            raise FloatingPointError(f"non-finite importance after consolidation in {bad}")
        self._update_normalisation()

    def _keep_largest(self, fresh: list[torch.Tensor]) -> None:
        """Zero all but the ``keep_top`` fraction of largest values of ``fresh``, per group."""
        for idx in self._group_idx:
            values = torch.cat([fresh[i].reshape(-1).clamp(min=0.0) for i in idx])
            n_keep = max(1, math.ceil(self.keep_top * values.numel()))
            threshold = torch.kthvalue(values.float().cpu(), values.numel() - n_keep + 1).values
            for i in idx:
                fresh[i].mul_(fresh[i] >= threshold.to(fresh[i].device, fresh[i].dtype))

    def _combine(self, old: torch.Tensor, fresh: torch.Tensor, k: int) -> torch.Tensor:
        """``accumulate`` applied to ``old`` (overwritten) after ``k`` earlier consolidations."""
        if self.accumulate == "sum":
            return old.add_(fresh)
        if self.accumulate == "ema":
            return old.mul_(self.gamma).add_(fresh)
        return old.mul_(k).add_(fresh).div_(k + 1)

    def _update_normalisation(self) -> None:
        if self.normalize is not None:
            for gi, idx in enumerate(self._group_idx):
                vals = [self._importance[i].double() for i in idx]
                if self.normalize == "mean":
                    s = float(sum(v.sum() for v in vals)) / sum(v.numel() for v in vals)
                else:
                    s = float(max(v.max() for v in vals))
                self._norm_scale[gi] = s if math.isfinite(s) and s > 0 else 1.0
        self._update_coefs()

    def estimate(self, data: Batch) -> None:
        """Compute a data-based importance estimate for the next :meth:`consolidate` (EWC/MAS)."""
        raise NotImplementedError(f"{type(self).__name__} does not estimate importance from data")

    # ------------------------------------------------------------------ inspection

    @property
    def importance(self) -> dict[str, torch.Tensor]:
        """Ω per parameter name (raw, before normalisation; in ``storage_dtype``)."""
        return dict(zip(self.names, self._importance, strict=True))

    @property
    def anchor(self) -> dict[str, torch.Tensor]:
        """θ* per parameter name."""
        return dict(zip(self.names, self._anchor, strict=True))

    def _buffer_lists(self) -> dict[str, list[torch.Tensor]]:
        return {"importance": self._importance, "anchor": self._anchor, "scratch": self._scratch}

    def state_bytes(self) -> int:
        """Bytes held in parameter-sized buffers (constant in the number of consolidations)."""
        return sum(t.numel() * t.element_size() for ts in self._buffer_lists().values() for t in ts)

    def param_bytes(self) -> int:
        """Bytes of the regularised parameters themselves (the unit of ``state_bytes``)."""
        return sum(p.numel() * p.element_size() for p in self.params)

    @torch.no_grad()
    def stats(self) -> dict[str, float]:
        """Scalars for logging: penalty, strength, Ω statistics per group (synchronises)."""
        out: dict[str, float] = {
            "penalty": self.penalty(),
            "c": float(self._c_t),
            "consolidations": float(self.n_consolidations),
        }
        c_g = self.effective_c()
        for gname, idx in zip(self.group_names, self._group_idx, strict=True):
            vals = [self._importance[i].double() for i in idx]
            n = sum(v.numel() for v in vals)
            out[f"c/{gname}"] = c_g[gname]
            out[f"omega_mean/{gname}"] = float(sum(v.sum() for v in vals)) / n
            out[f"omega_max/{gname}"] = float(max(v.max() for v in vals))
        if self.n_consolidations:
            out["drift"] = self.drift()
        if self.adaptive_target is not None and self.adaptive_signal == "gradient_ratio":
            out["adaptive_ratio"] = math.exp(float(self._log_ratio_ema))
        return out

    # ------------------------------------------------------------------ persistence

    def _extra_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Subclass hook: additional per-parameter tensors to save (besides Ω and θ*)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, keyed by parameter name (restores onto a fresh policy)."""
        tensors = {
            "importance": self.importance,
            "anchor": self.anchor,
            **self._extra_state(),
        }
        return {
            "format": STATE_FORMAT,
            "kind": self.kind,
            "names": list(self.names),
            "groups": list(self.group_names),
            "tensors": {
                k: {n: t.detach().clone() for n, t in v.items()} for k, v in tensors.items()
            },
            "n_consolidations": self.n_consolidations,
            "c": float(self._c_t),
            "norm_scale": list(self._norm_scale),
            "log_ratio_ema": float(self._log_ratio_ema),
            "learned": float(self._learned),
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; names and shapes must match the selected parameters."""
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
        targets = {"importance": self._importance, "anchor": self._anchor}
        targets.update({k: self._extra_buffer(k) for k in self._extra_state()})
        for key, buffers in targets.items():
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
        self._c_t.fill_(float(state["c"]))
        self._norm_scale = [float(s) for s in state["norm_scale"]]
        self._log_ratio_ema.fill_(float(state.get("log_ratio_ema", float("nan"))))
        self._learned.fill_(float(state.get("learned", 0.0)))
        self._update_coefs()
        self._fired[:] = self._not_fired
        self._has_estimate = False

    def _extra_buffer(self, key: str) -> list[torch.Tensor]:
        raise KeyError(key)

    def rebind(self, params: ParamsLike, optimizer: torch.optim.Optimizer) -> None:
        """Move onto new parameter objects with the same names (e.g. after ``PPO.load``)."""
        state = self.state_dict()
        was_attached = self.attached
        self.detach()
        self.optimizer = optimizer
        self.module = params if isinstance(params, nn.Module) else None
        self._select_params(_named_params(params))
        self._allocate()
        self.load_state_dict(state)
        if was_attached:
            self.attach()

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.params)
        return (
            f"{type(self).__name__}(c={float(self._c_t):.4g}, groups={self.group_names}, "
            f"params={len(self.params)} tensors/{n} values, "
            f"consolidations={self.n_consolidations})"
        )


class SI(QuadraticRegulariser):
    """Synaptic Intelligence (Zenke, Poole & Ganguli 2017), as in their reference code.

    Per optimizer step k (paper eq. 3, discretised):  ω ← ω − g ⊙ Δθ, with g the gradient of
    the task loss only (kept at the end of the backward pass, before the penalty gradient is
    added) and Δθ = θ_after − θ_before the change the step actually made (after clipping and
    Adam).

    At consolidation (paper eq. 5):  Ω ← max(0, Ω + ω / ((θ − θ*)² + ξ));  θ* ← θ;  ω ← 0.
    ``accumulate="ema"`` (Ω ← γΩ + new) lets importance fade under drift; ``"mean"`` averages.

    :param xi: damping ξ > 0 of the denominator (same units as θ²).
    """

    BUFFERS: ClassVar[tuple[str, ...]] = ("omega", "importance", "anchor", "scratch")
    default_accumulate: ClassVar[Accumulate] = "sum"
    kind: ClassVar[str] = "si"
    needs_task_grad: ClassVar[bool] = True

    def __init__(
        self,
        params: ParamsLike,
        optimizer: torch.optim.Optimizer,
        *,
        xi: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        if not (math.isfinite(xi) and xi > 0):
            raise ValueError(f"xi: must be > 0, got {xi}")
        self.xi = float(xi)
        super().__init__(params, optimizer, **kwargs)

    def _allocate(self) -> None:
        super()._allocate()
        self._omega = self._zeros()  # ω: running path integral since the last consolidation

    def _before_step(self) -> None:
        torch._foreach_copy_(self._scratch, self._detached)  # θ_before

    def _after_step(self, idx: list[int] | None) -> None:
        # scratch ← θ_before − θ_after = −Δθ;   ω ← ω + g ⊙ (−Δθ)
        torch._foreach_sub_(self._scratch, self._detached)
        if idx is None:
            torch._foreach_addcmul_(self._omega, self._task_grad, self._scratch)
        elif idx:
            omega, scratch, grads = self._omega, self._scratch, self._task_grad
            torch._foreach_addcmul_(
                [omega[i] for i in idx], [grads[i] for i in idx], [scratch[i] for i in idx]
            )

    def _new_importance(self) -> list[torch.Tensor]:
        denom = torch._foreach_sub(self._detached, self._anchor)
        torch._foreach_mul_(denom, denom)
        torch._foreach_add_(denom, self.xi)
        return torch._foreach_div(self._omega, denom)

    def _reset_after_consolidation(self) -> None:
        torch._foreach_zero_(self._omega)

    @property
    def omega(self) -> dict[str, torch.Tensor]:
        """ω per parameter name: the path integral since the last consolidation."""
        return dict(zip(self.names, self._omega, strict=True))

    def _buffer_lists(self) -> dict[str, list[torch.Tensor]]:
        return {**super()._buffer_lists(), "omega": self._omega}

    def _extra_state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"omega": self.omega}

    def _extra_buffer(self, key: str) -> list[torch.Tensor]:
        if key == "omega":
            return self._omega
        return super()._extra_buffer(key)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "xi": self.xi}


class L2(QuadraticRegulariser):
    """L2 to the anchor: Ω = 1 for every selected parameter, c · Σ (θ − θ*)²."""

    BUFFERS: ClassVar[tuple[str, ...]] = ("importance", "anchor")
    kind: ClassVar[str] = "l2"

    def __init__(self, params: ParamsLike, optimizer: torch.optim.Optimizer, **kwargs: Any) -> None:
        if kwargs.get("accumulate") not in (None, "mean"):
            raise ValueError("accumulate: L2 keeps Ω = 1 and takes no accumulate option")
        kwargs["accumulate"] = "mean"  # the running mean of ones stays exactly one
        super().__init__(params, optimizer, **kwargs)

    def _new_importance(self) -> list[torch.Tensor]:
        return [torch.ones_like(p, dtype=torch.float32) for p in self.params]


class _DataImportance(QuadraticRegulariser):
    """Shared machinery of importance estimates that need their own backward passes."""

    def __init__(
        self,
        params: ParamsLike,
        optimizer: torch.optim.Optimizer,
        *,
        fn: Callable[[Batch], torch.Tensor] | None = None,
        chunk_size: int = 1,
        **kwargs: Any,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
        super().__init__(params, optimizer, **kwargs)
        if fn is None and self.module is None:
            raise ValueError("fn: required when params is not an nn.Module")
        self.fn = fn
        self.chunk_size = int(chunk_size)

    def _objective(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _fold(self, acc: torch.Tensor, grad: torch.Tensor) -> None:
        raise NotImplementedError

    def estimate(
        self, data: Batch | Iterable[Batch], fn: Callable[[Batch], torch.Tensor] | None = None
    ) -> None:
        """Estimate importance on ``data`` (a batch, or an iterable of batches, along dim 0) into
        the scratch buffer, for the next :meth:`consolidate`. Hooks are off meanwhile; ``p.grad``
        is left untouched."""
        fn = fn or self.fn or self.module
        assert fn is not None
        batches = [data] if isinstance(data, torch.Tensor | Mapping) else list(data)
        acc = self._scratch
        n_total = 0
        with self.hooks_disabled(), torch.enable_grad():
            torch._foreach_zero_(acc)
            for batch in batches:
                for chunk, n in _split(batch, self.chunk_size):
                    objective = self._objective(fn(chunk))
                    grads = torch.autograd.grad(objective, self.params, allow_unused=True)
                    with torch.no_grad():
                        for a, g in zip(acc, grads, strict=True):
                            if g is not None:
                                self._fold(a, g)
                    n_total += n
        if n_total == 0:
            raise ValueError("data: no samples to estimate importance from")
        with torch.no_grad():
            torch._foreach_div_(acc, float(n_total))
        self._has_estimate = True

    def _new_importance(self) -> list[torch.Tensor]:
        if not self._has_estimate:
            raise RuntimeError(
                f"{type(self).__name__}: call estimate(data) (or consolidate(data)) first"
            )
        return self._scratch


class OnlineEWC(_DataImportance):
    """Online EWC (Schwarz et al. 2018): Ω ← γΩ + F, F the diagonal Fisher information.

    ``fn(batch)`` returns per-sample log-likelihoods log p(y|x) with shape ``[B]``; draw y from
    the model itself (true Fisher). Samples are processed in chunks of ``chunk_size``: each
    chunk contributes (∂ Σ_k log p_k / ∂θ)², and the total is divided by the number of samples.
    Because the score has zero mean under the model, this is unbiased for E[(∂ log p/∂θ)²] at any
    chunk size (larger chunks are faster and noisier; ``chunk_size=1`` is the textbook sum).
    """

    kind: ClassVar[str] = "ewc"
    default_accumulate: ClassVar[Accumulate] = "ema"

    def _objective(self, out: torch.Tensor) -> torch.Tensor:
        return out.sum()

    def _fold(self, acc: torch.Tensor, grad: torch.Tensor) -> None:
        acc.addcmul_(grad, grad)


class MAS(_DataImportance):
    """Memory Aware Synapses (Aljundi et al. 2018): Ω_new = mean_k |∂‖f(x_k)‖² / ∂θ|.

    ``fn(batch)`` returns the model output f(x) with the batch along dim 0 (default: the module
    itself). With ``chunk_size > 1`` each chunk contributes |Σ_k ∂‖f(x_k)‖²/∂θ|, a lower bound
    of the per-sample sum (faster). Default accumulation: running mean over consolidations.
    """

    kind: ClassVar[str] = "mas"
    default_accumulate: ClassVar[Accumulate] = "mean"

    def _objective(self, out: torch.Tensor) -> torch.Tensor:
        return out.pow(2).sum()

    def _fold(self, acc: torch.Tensor, grad: torch.Tensor) -> None:
        acc.add_(grad.abs())
