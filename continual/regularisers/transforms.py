"""What a consolidation does to the fresh importance estimate before Ω holds it.

- :func:`keep_top`: keep the largest share of each group's fresh values, zero the rest.
- :func:`combine`: the accumulate rule that folds the fresh estimate into Ω
  (``"sum"``, ``"ema"``, ``"mean"``).
- :func:`mean_scale`: a group's mean Ω, by which ``normalize="mean"`` divides its strength.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = ["Accumulate", "Normalize", "check_keep_top", "combine", "keep_top", "mean_scale"]

Accumulate = Literal["sum", "ema", "mean"]
Normalize = Literal["mean"] | None


def check_keep_top(fraction: float | None) -> None:
    """Raise a ValueError unless ``fraction`` is None or a fraction in (0, 1]."""
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ValueError(
            f"keep_top: must be None (keep all) or a fraction in (0, 1], got {fraction}"
        )


def keep_top(fresh: list[torch.Tensor], groups: list[list[int]], fraction: float) -> None:
    """Zero, in place, all but the ``fraction`` of largest values of ``fresh``, per group.

    A parameter no consolidation kept carries no penalty at any c, so a strong c freezes what
    earlier tasks relied on most and leaves the rest free.

    :param fresh: the fresh importance estimate, one tensor per parameter.
    :param groups: per group, the indices into ``fresh`` of its parameters.
    :param fraction: the share kept, in (0, 1]; at least one value per group.
    """
    for idx in groups:
        values = torch.cat([fresh[i].reshape(-1).clamp(min=0.0) for i in idx])
        n_keep = max(1, math.ceil(fraction * values.numel()))
        threshold = torch.kthvalue(values.float().cpu(), values.numel() - n_keep + 1).values
        for i in idx:
            fresh[i].mul_(fresh[i] >= threshold.to(fresh[i].device, fresh[i].dtype))


def combine(
    old: torch.Tensor, fresh: torch.Tensor, k: int, rule: Accumulate, gamma: float
) -> torch.Tensor:
    """Fold ``fresh`` into ``old`` (overwritten and returned) after ``k`` earlier consolidations.

    ``"sum"``: old + fresh.  ``"ema"``: γ·old + fresh.  ``"mean"``: (k·old + fresh) / (k + 1).
    """
    if rule == "sum":
        return old.add_(fresh)
    if rule == "ema":
        return old.mul_(gamma).add_(fresh)
    return old.mul_(k).add_(fresh).div_(k + 1)


def mean_scale(importance: list[torch.Tensor]) -> float:
    """The mean of the values of ``importance`` (one group's Ω), in float64; 1.0 if that is not
    a positive finite number (nothing to normalise by)."""
    vals = [o.double() for o in importance]
    s = float(sum(v.sum() for v in vals)) / sum(v.numel() for v in vals)
    return s if math.isfinite(s) and s > 0 else 1.0
