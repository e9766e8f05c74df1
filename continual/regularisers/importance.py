"""How each method estimates the importance Ω of the penalty Σ_g c_g Σ Ω (θ − θ*)².

- :class:`SI` (Zenke, Poole & Ganguli 2017): the path integral of the task gradient along the
  parameter trajectory, accumulated at every optimizer step.
- :class:`L2`: Ω = 1.
- :class:`OnlineEWC` (Schwarz et al. 2018): a diagonal Fisher estimated on data, decayed by γ.
- :class:`MAS` (Aljundi et al. 2018): |∂‖f(x)‖² / ∂θ| averaged over inputs.

Each is a :class:`~continual.regularisers.penalty.QuadraticRegulariser` with its own
``fresh_importance`` (and, for SI, ``before_step``/``after_step``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

import torch

from continual.regularisers.penalty import Batch, QuadraticRegulariser
from continual.regularisers.selection import ParamsLike
from continual.regularisers.transforms import Accumulate

__all__ = ["L2", "MAS", "SI", "DataImportance", "OnlineEWC"]


class SI(QuadraticRegulariser):
    """Synaptic Intelligence (Zenke, Poole & Ganguli 2017), as in their reference code.

    Per optimizer step (paper eq. 3, discretised):  ω ← ω − g ⊙ Δθ, with g the gradient of the
    task loss only (kept at the end of the backward pass, before the penalty gradient is added)
    and Δθ = θ_after − θ_before the change the step actually made (after clipping and Adam).

    At consolidation (paper eq. 5):  Ω ← max(0, Ω + ω / ((θ − θ*)² + ξ));  θ* ← θ;  ω ← 0.
    ``accumulate="ema"`` (Ω ← γΩ + new) lets importance fade under drift; ``"mean"`` averages.

    :param xi: damping ξ > 0 of the denominator (same units as θ²).
    :param kwargs: the options of :class:`~continual.regularisers.penalty.QuadraticRegulariser`.
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
        self._omega = self._zeros()  # ω: the path integral since the last consolidation

    def before_step(self) -> None:
        torch._foreach_copy_(self._scratch, self._detached)  # θ_before

    def after_step(self, task_grad: list[torch.Tensor | None], idx: list[int] | None) -> None:
        # Eq. 3, ω ← ω − g ⊙ Δθ, as  scratch ← θ_before − θ_after = −Δθ;  ω ← ω + g ⊙ scratch.
        # Detached aliases and buffers only: no autograd, no no_grad context needed.
        torch._foreach_sub_(self._scratch, self._detached)
        if idx is None:
            torch._foreach_addcmul_(self._omega, task_grad, self._scratch)
        elif idx:
            omega, scratch = self._omega, self._scratch
            torch._foreach_addcmul_(
                [omega[i] for i in idx], [task_grad[i] for i in idx], [scratch[i] for i in idx]
            )

    def fresh_importance(self) -> list[torch.Tensor]:
        # Eq. 5: ω / ((θ − θ*)² + ξ)
        denom = torch._foreach_sub(self._detached, self._anchor)
        torch._foreach_mul_(denom, denom)
        torch._foreach_add_(denom, self.xi)
        return torch._foreach_div(self._omega, denom)

    def reset(self) -> None:
        torch._foreach_zero_(self._omega)

    @property
    def omega(self) -> dict[str, torch.Tensor]:
        """ω per parameter name: the path integral since the last consolidation."""
        return dict(zip(self.names, self._omega, strict=True))

    def _saved_buffers(self) -> dict[str, list[torch.Tensor]]:
        return {**super()._saved_buffers(), "omega": self._omega}

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

    def fresh_importance(self) -> list[torch.Tensor]:
        return [torch.ones_like(p, dtype=torch.float32) for p in self.params]


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


class DataImportance(QuadraticRegulariser):
    """Importance estimated on data with extra backward passes: the average over samples of a
    per-chunk fold of ∂ objective(fn(chunk)) / ∂θ (see :class:`OnlineEWC`, :class:`MAS`).

    :param fn: ``fn(batch)`` gives the model's output for a batch (default: the module itself).
    :param chunk_size: samples per backward pass (larger is faster and noisier).
    :param kwargs: the options of :class:`~continual.regularisers.penalty.QuadraticRegulariser`.
    """

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

    def objective(self, out: torch.Tensor) -> torch.Tensor:
        """The scalar whose gradient a chunk contributes."""
        raise NotImplementedError

    def fold(self, acc: torch.Tensor, grad: torch.Tensor) -> None:
        """Add one chunk's gradient ``grad`` to the estimate ``acc`` (in place)."""
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
                    objective = self.objective(fn(chunk))
                    grads = torch.autograd.grad(objective, self.params, allow_unused=True)
                    with torch.no_grad():
                        for a, g in zip(acc, grads, strict=True):
                            if g is not None:
                                self.fold(a, g)
                    n_total += n
        if n_total == 0:
            raise ValueError("data: no samples to estimate importance from")
        with torch.no_grad():
            torch._foreach_div_(acc, float(n_total))
        self._has_estimate = True

    def fresh_importance(self) -> list[torch.Tensor]:
        if not self._has_estimate:
            raise RuntimeError(
                f"{type(self).__name__}: call estimate(data) (or consolidate(data)) first"
            )
        return self._scratch


class OnlineEWC(DataImportance):
    """Online EWC (Schwarz et al. 2018): Ω ← γΩ + F, F the diagonal Fisher information.

    ``fn(batch)`` returns per-sample log-likelihoods log p(y|x) with shape ``[B]``; draw y from
    the model itself (true Fisher). Samples are processed in chunks of ``chunk_size``: each
    chunk contributes (∂ Σ_k log p_k / ∂θ)², and the total is divided by the number of samples.
    Because the score has zero mean under the model, this is unbiased for E[(∂ log p/∂θ)²] at any
    chunk size (larger chunks are faster and noisier; ``chunk_size=1`` is the textbook sum).
    """

    kind: ClassVar[str] = "ewc"
    default_accumulate: ClassVar[Accumulate] = "ema"

    def objective(self, out: torch.Tensor) -> torch.Tensor:
        return out.sum()

    def fold(self, acc: torch.Tensor, grad: torch.Tensor) -> None:
        acc.addcmul_(grad, grad)


class MAS(DataImportance):
    """Memory Aware Synapses (Aljundi et al. 2018): Ω_new = mean_k |∂‖f(x_k)‖² / ∂θ|.

    ``fn(batch)`` returns the model output f(x) with the batch along dim 0 (default: the module
    itself). With ``chunk_size > 1`` each chunk contributes |Σ_k ∂‖f(x_k)‖²/∂θ|, a lower bound
    of the per-sample sum (faster). Default accumulation: running mean over consolidations.
    """

    kind: ClassVar[str] = "mas"
    default_accumulate: ClassVar[Accumulate] = "mean"

    def objective(self, out: torch.Tensor) -> torch.Tensor:
        return out.pow(2).sum()

    def fold(self, acc: torch.Tensor, grad: torch.Tensor) -> None:
        acc.add_(grad.abs())
