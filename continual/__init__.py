"""Continual learning for stable-baselines3 and plain PyTorch.

Quadratic consolidation regularisers (SI and peers), triggers that decide when to consolidate
(task-free plateau detector, oracle boundaries, fixed intervals), and the SB3 callback that wires
them into training; continual evaluation (the success matrix S[eval, task]) and its metrics.
Nothing here knows about the environments or agent builders of this project.
"""

from continual.callback import ContinualCallback, ShiftActions
from continual.evaluation import ContinualEvalCallback, InfoArrayLogger
from continual.regularisers import L2, MAS, SI, OnlineEWC, QuadraticRegulariser
from continual.triggers import (
    BoundaryTrigger,
    IntervalTrigger,
    NeverTrigger,
    PlateauTrigger,
    Trigger,
    TriggerEvent,
)

__all__ = [
    "L2",
    "MAS",
    "SI",
    "BoundaryTrigger",
    "ContinualCallback",
    "ContinualEvalCallback",
    "InfoArrayLogger",
    "IntervalTrigger",
    "NeverTrigger",
    "OnlineEWC",
    "PlateauTrigger",
    "QuadraticRegulariser",
    "ShiftActions",
    "Trigger",
    "TriggerEvent",
]
