"""The fast path: the penalty gradient added to ``p.grad`` by hooks, never through the loss.

Per-parameter gradient hooks note which parameters received a gradient; a callback queued on
autograd's engine (run once per backward, after the last gradient is accumulated and before
``backward()`` returns) adds 2·c_g·Ω ⊙ (θ − θ*) to all of them with fused multi-tensor ops:
before any gradient clipping, exactly as if the penalty were part of the loss, without an
autograd graph or a second backward pass. Add-ons with a penalty of their own (a functional
anchor) add its gradient in the same callback, from an autograd pass over their own data. The
optimizer's step pre/post hooks measure the step Δθ (after clipping, momentum, Adam) for SI.
Per-step work uses ``torch._foreach_*`` ops and never synchronises with the device. This is the
only module that uses private torch API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from continual.regularisers.penalty import QuadraticRegulariser

__all__ = ["PenaltyHooks"]

# Autograd's engine: the id of the running backward pass, and a queue of callbacks that it runs
# once that pass has accumulated every gradient, before backward() returns (the mechanism
# DistributedDataParallel uses to finish its gradient reduction).
_graph_task_id: Callable[[], int] = torch._C._current_graph_task_id
_queue_callback: Callable[[Callable[[], None]], None] = (
    torch.autograd.Variable._execution_engine.queue_callback  # type: ignore[attr-defined]
)


class PenaltyHooks:
    """The hooks of one regulariser: they read its Ω, θ*, ``alpha`` and consolidation count, and
    call its ``before_step``/``after_step`` (and its add-ons' ``after_step``) around each
    optimizer step.

    The task gradient g that SI integrates is the tensor autograd accumulated into ``p.grad``
    before the penalty gradient is added: the end-of-backward callback keeps a reference to it
    (no copy) until the step's post-hook and gives ``p.grad`` a new tensor, g + penalty gradient.

    :param reg: the regulariser whose penalty gradient the hooks add.
    """

    def __init__(self, reg: QuadraticRegulariser) -> None:
        self.reg = reg
        # Whether the hooks keep the task gradient of every step and run the step hooks (SI, or
        # an add-on that needs it).
        self._capture = reg.captures_task_grad
        self._addons = list(reg.addons)
        # c multiplies on the device (an add-on moves it) instead of inside reg.alpha.
        self._c_on_device = reg.strength_on_device
        # Add-ons with a penalty of their own, whose gradient joins the quadratic one.
        self._gradient_addons = [a for a in reg.addons if a.adds_gradient]
        self._handles: list[Any] = []
        self._enabled = True
        n = len(reg.params)
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
        self.task_grad: list[torch.Tensor | None] = [None] * n
        self._no_grad: list[torch.Tensor | None] = [None] * n

    # ------------------------------------------------------------------ registration

    def attach(self) -> None:
        """Register the per-parameter gradient hooks, and the optimizer step hooks where the
        task gradient is kept. Idempotent."""
        if self._handles:
            return
        reg = self.reg
        self._fired[:] = self._not_fired
        self.task_grad[:] = self._no_grad
        self._pending.clear()
        self._queued_task = -1
        self._handles = [p.register_hook(self._make_grad_hook(i)) for i, p in enumerate(reg.params)]
        if self._capture:
            self._handles.append(reg.optimizer.register_step_pre_hook(self._pre_step))
            self._handles.append(reg.optimizer.register_step_post_hook(self._post_step))

    def remove(self) -> None:
        """Remove every hook."""
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    @property
    def handles(self) -> list[Any]:
        """The registered hook handles: one per parameter, then the two step hooks if any."""
        return list(self._handles)

    def reset(self) -> None:
        """Forget which parameters fired this step (after the state was replaced)."""
        self._fired[:] = self._not_fired

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """Within this block the hooks pass gradients through untouched and record nothing."""
        previous = self._enabled
        self._enabled = False
        try:
            yield
        finally:
            self._enabled = previous

    # ------------------------------------------------------------------ backward

    def _make_grad_hook(self, i: int) -> Callable[[torch.Tensor], None]:
        # The hook only takes note; the arithmetic runs once per backward pass, for all
        # parameters together, in _end_of_backward. What the hook touches is bound here once.
        reg, param, capture = self.reg, self.reg.params[i], self._capture
        fired, pending, task_grad = self._fired, self._pending, self.task_grad
        graph_task_id, queue_callback = _graph_task_id, _queue_callback
        end_of_backward = self._end_of_backward

        def hook(grad: torch.Tensor) -> None:
            if not self._enabled:
                return
            if grad.requires_grad:  # backward(create_graph=True): keep values, not the graph
                grad = grad.detach()  # (autograd copies the gradient into p.grad then anyway)
            if fired[i] and param.grad is not None:
                # A further backward before the same optimizer step (gradient accumulation):
                # the penalty gradient is already in p.grad once; only the task gradient sums.
                if capture:
                    task_grad[i] = task_grad[i] + grad
                return
            if capture and not reg.n_consolidations:
                # No penalty gradient to add: keep autograd's task-gradient tensor (no copy).
                # While this reference lives, autograd accumulates a copy of it into p.grad,
                # which gradient clipping may then scale in place.
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
        if self.reg.n_consolidations:  # nothing consolidated: no penalty yet
            self._add_penalty_gradient(idx)

    def _add_penalty_gradient(self, idx: list[int] | None) -> None:
        """p.grad += 2·c_g · Ω ⊙ (θ − θ*), the gradient of c_g Σ Ω (θ − θ*)², exactly as if the
        penalty were part of the loss; for the parameters ``idx`` (``None``: all).

        A few fused multi-tensor ops for all parameters, rather than small ops per parameter
        inside autograd's per-parameter hooks: on small networks the cost is the number of op
        launches and interpreter round trips, not the arithmetic.
        """
        reg = self.reg
        params, theta, importance = reg.params, reg._detached, reg._importance
        anchor, alpha = reg._anchor, reg.alpha
        if idx is not None:
            params, theta, importance, anchor, alpha = (
                [seq[i] for i in idx] for seq in (params, theta, importance, anchor, alpha)
            )
        grads = [p.grad for p in params]
        if not self._capture and not self._c_on_device and not any(alpha):
            # c = 0: no quadratic term, only the add-ons' penalties (e.g. a functional anchor).
            self._add_addon_gradients(grads, idx)
            return
        diff = torch._foreach_sub(theta, anchor)
        if self._c_on_device:
            torch._foreach_mul_(diff, reg.strength)  # alpha leaves c out
        try:
            if not self._capture:
                torch._foreach_addcmul_(grads, importance, diff, alpha)
                self._add_addon_gradients(grads, idx)
                return
            totals = torch._foreach_addcmul(grads, importance, diff, alpha)
        except TypeError:  # a p.grad is None: torch.autograd.grad outside hooks_disabled
            every = range(len(reg.params)) if idx is None else idx
            kept = [i for i, p in zip(every, params, strict=True) if p.grad is not None]
            if kept:
                self._add_penalty_gradient(kept)
            return
        self._add_addon_gradients(totals, idx)
        # p.grad was autograd's task-gradient tensor: keep it (no copy) until the step ends,
        # and give p.grad a new tensor holding the sum.
        if grads[0].requires_grad:  # backward(create_graph=True): keep values, not the graph
            grads = [g.detach() for g in grads]
        if idx is None:
            self.task_grad[:] = grads
        else:
            for i, g in zip(idx, grads, strict=True):
                self.task_grad[i] = g
        for p, total in zip(params, totals, strict=True):
            p.grad = total

    def _add_addon_gradients(self, targets: list[torch.Tensor], idx: list[int] | None) -> None:
        """targets += the penalty gradient of every add-on that has one; ``targets`` are the
        gradients of the parameters ``idx`` (``None``: all). The add-ons run their own autograd
        passes, which the hooks must not take for the model's."""
        if not self._gradient_addons:
            return
        reg = self.reg
        with self.disabled(), torch.enable_grad():
            for addon in self._gradient_addons:
                extra = addon.penalty_gradient(reg)
                if extra is None:
                    continue
                if idx is not None:
                    extra = [extra[i] for i in idx]
                pairs = [(t, e) for t, e in zip(targets, extra, strict=True) if e is not None]
                if pairs:
                    torch._foreach_add_([t for t, _ in pairs], [e for _, e in pairs])

    # ------------------------------------------------------------------ optimizer step

    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self._enabled:
            return
        self.reg.before_step()

    def _post_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        # Detached parameter aliases, buffers and detached task gradients only: no autograd,
        # no no_grad context needed (entering one costs more than SI's bookkeeping ops).
        if not self._enabled:
            return
        fired = self._fired
        idx = None if all(fired) else [i for i, f in enumerate(fired) if f]
        reg = self.reg
        reg.after_step(self.task_grad, idx)
        if self._addons and reg.n_consolidations:
            for addon in self._addons:
                addon.after_step(reg, self.task_grad, idx)
        fired[:] = self._not_fired
        self.task_grad[:] = self._no_grad
