"""Quadratic consolidation regularisers: one penalty, several importance estimates.

    L_reg(θ) = Σ_g c_g Σ_{i ∈ g} Ω_i (θ_i − θ*_i)²

:mod:`~continual.regularisers.penalty` holds the penalty and its consolidation,
:mod:`~continual.regularisers.importance` the methods (SI, L2, OnlineEWC, MAS),
:mod:`~continual.regularisers.transforms` what a consolidation does to a fresh estimate,
:mod:`~continual.regularisers.selection` which parameters are held, in which groups,
:mod:`~continual.regularisers.hooks` the fast path that adds the penalty gradient, and
:mod:`~continual.regularisers.reference` SI from its definition, to test against.
:mod:`~continual.regularisers.functional` adds a second penalty beside the quadratic one: a
functional anchor on a fixed-size reservoir of past inputs
(:mod:`~continual.regularisers.reservoir`), for inputs that tasks share.
Plain PyTorch: nothing here imports stable-baselines3. Guide: docs/concepts.md.
"""

from continual.regularisers.functional import Divergence, FunctionalAnchor, squared_error
from continual.regularisers.importance import L2, MAS, SI, DataImportance, OnlineEWC
from continual.regularisers.penalty import STATE_FORMAT, Addon, Batch, QuadraticRegulariser
from continual.regularisers.reservoir import ReservoirBuffer
from continual.regularisers.selection import PARAMETER_GROUPS, ParamsLike, Selection
from continual.regularisers.transforms import Accumulate, Normalize, check_keep_top

__all__ = [
    "L2",
    "MAS",
    "PARAMETER_GROUPS",
    "SI",
    "STATE_FORMAT",
    "Accumulate",
    "Addon",
    "Batch",
    "DataImportance",
    "Divergence",
    "FunctionalAnchor",
    "Normalize",
    "OnlineEWC",
    "ParamsLike",
    "QuadraticRegulariser",
    "ReservoirBuffer",
    "Selection",
    "check_keep_top",
    "squared_error",
]
