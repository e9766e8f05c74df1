"""Continual learning for stable-baselines3 and plain PyTorch.

Quadratic consolidation regularisers (SI and peers, :mod:`continual.regularisers`), triggers that
decide when to consolidate (:mod:`continual.triggers`), named methods (:mod:`continual.presets`),
the continual metrics (:mod:`continual.metrics`), and the SB3 callbacks (:mod:`continual.sb3`).
The SB3 names are imported on first use, so ``from continual import SI`` works in a plain
PyTorch program without stable-baselines3. Nothing here knows about any environment.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from continual.presets import METHODS, Method
from continual.regularisers import (
    L2,
    MAS,
    SI,
    FunctionalAnchor,
    OnlineEWC,
    QuadraticRegulariser,
    ReservoirBuffer,
)
from continual.triggers import (
    BoundaryTrigger,
    IntervalTrigger,
    NeverTrigger,
    PlateauTrigger,
    Trigger,
    TriggerEvent,
)

if TYPE_CHECKING:
    from continual.sb3 import (
        ConsolidationCallback,
        ContinualCallback,
        ContinualEvalCallback,
        InfoArrayLogger,
        ResetExploration,
        TaskShiftDetector,
    )

_SB3_NAMES = frozenset(
    {
        "ConsolidationCallback",
        "ContinualCallback",
        "ContinualEvalCallback",
        "InfoArrayLogger",
        "ResetExploration",
        "TaskShiftDetector",
    }
)


def __getattr__(name: str) -> Any:
    if name in _SB3_NAMES:
        return getattr(importlib.import_module("continual.sb3"), name)
    raise AttributeError(f"module 'continual' has no attribute {name!r}")


__all__ = [
    "L2",
    "MAS",
    "METHODS",
    "SI",
    "BoundaryTrigger",
    "ConsolidationCallback",
    "ContinualCallback",
    "ContinualEvalCallback",
    "FunctionalAnchor",
    "InfoArrayLogger",
    "IntervalTrigger",
    "Method",
    "NeverTrigger",
    "OnlineEWC",
    "PlateauTrigger",
    "QuadraticRegulariser",
    "ReservoirBuffer",
    "ResetExploration",
    "TaskShiftDetector",
    "Trigger",
    "TriggerEvent",
]
