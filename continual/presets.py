"""Named continual-learning methods: which importance estimate, with which options and strength.

A method is one quadratic regulariser (:mod:`continual.regularisers`) with its settings. The
SB3 callback builds it by name (``ContinualCallback("si")``), and ``train.py``'s configs name the
same presets, so each method's defaults live here and nowhere else. Why each value is what it is:
``docs/study/index.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from continual.regularisers import (
    L2,
    MAS,
    SI,
    Addon,
    FunctionalAnchor,
    OnlineEWC,
    QuadraticRegulariser,
)

__all__ = ["DEFAULT_METHOD", "METHODS", "Method", "get_method"]


@dataclass(frozen=True)
class Method:
    """A named method: a regulariser class, its strength and its options.

    :param regulariser: the regulariser class; ``None`` for fine-tuning (no penalty).
    :param c: the penalty strength (dimensionless).
    :param options: further keyword arguments of the regulariser (e.g. ``normalize``,
        ``keep_top``, ``xi``).
    :param select: which parameters carry importance (see
        :data:`continual.regularisers.PARAMETER_GROUPS`).
    :param exclude: parameter name patterns never regularised. ``log_std`` is excluded because
        the shift action raises it to restore exploration.
    :param addons: factories of the add-ons the regulariser carries (each callback gets new
        ones: an add-on holds state), e.g. ``FunctionalAnchor``.
    :param summary: one line for listings.
    """

    regulariser: type[QuadraticRegulariser] | None
    c: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)
    select: Any = "actor"
    exclude: tuple[str, ...] = ("log_std",)
    addons: tuple[Callable[[], Addon], ...] = ()
    summary: str = ""

    def regulariser_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the regulariser class (after ``params`` and ``optimizer``)."""
        kwargs = {"c": self.c, "select": self.select, "exclude": self.exclude, **self.options}
        if self.addons:
            kwargs["addons"] = [make() for make in self.addons]
        return kwargs


#: The recommended method: ``ContinualCallback()`` builds it.
DEFAULT_METHOD = "si"

METHODS: Mapping[str, Method] = MappingProxyType(
    {
        "si": Method(
            SI,
            c=10.0,
            options={"normalize": "mean", "keep_top": 0.5},
            # The value network carries its own importance at 1/100 of the policy's strength:
            # the weight that measured best on both study streams (docs/study/critic.md).
            select={"actor": 1.0, "critic": 0.01},
            summary="SI on the policy and value networks, keeping the larger half of each "
            "importance estimate, recommended",
        ),
        # On shared inputs every weight-space penalty tried blocked new tasks, SI's at c = 0.1
        # too, so the anchor carries no quadratic term: L2 at c = 0 holds it, and a c > 0
        # adds a weight-space L2 beside it (docs/study/shared-inputs.md).
        "distill": Method(
            L2,
            c=0.0,
            addons=(FunctionalAnchor,),
            summary="a KL to the consolidated policy on a fixed-size reservoir of past "
            "observations, no weight-space penalty: for tasks that share their inputs",
        ),
        "si_paper": Method(
            SI, c=1.0, summary="Synaptic Intelligence as in Zenke, Poole & Ganguli 2017"
        ),
        "l2": Method(L2, c=0.01, summary="L2 to the anchor, importance 1 everywhere"),
        "ewc": Method(OnlineEWC, c=1.0, summary="online EWC, a decayed diagonal Fisher"),
        "mas": Method(MAS, c=1.0, summary="Memory Aware Synapses, output sensitivity"),
        "finetune": Method(None, c=0.0, summary="no regulariser, the lower bound"),
    }
)
"""Method name -> :class:`Method`. Aliases: ``si_keep`` = ``si``, ``online_ewc`` = ``ewc``."""

_ALIASES = {"si_keep": "si", "online_ewc": "ewc"}


def get_method(name: str | None) -> Method:
    """The preset called ``name`` (``None``: fine-tuning).

    :raises ValueError: unknown name; the message lists the known ones.
    """
    key = "finetune" if name is None else _ALIASES.get(name.lower(), name.lower())
    if key not in METHODS:
        listing = "; ".join(f"{n} = {m.summary}" for n, m in METHODS.items())
        raise ValueError(
            f"regulariser: unknown method {name!r}; choose one of: {listing}; "
            f"aliases: {sorted(_ALIASES)}"
        )
    return METHODS[key]
