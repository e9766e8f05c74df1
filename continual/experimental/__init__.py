"""Experimental add-ons to the regularisers: kept working and tested, not recommended.

:class:`~continual.experimental.adaptive_strength.DriftDiagnostic` logs the drift budget D;
:class:`~continual.experimental.adaptive_strength.AdaptiveStrength` adapts c at every step to a
target gradient ratio or drift budget. Both plug into any regulariser as ``addons=[...]``.
Why they are not the default: docs/study/adaptive.md.
"""

from continual.experimental.adaptive_strength import (
    ADAPTIVE_SIGNALS,
    AdaptiveSignal,
    AdaptiveStrength,
    DriftDiagnostic,
    check_adaptive_signal,
)

__all__ = [
    "ADAPTIVE_SIGNALS",
    "AdaptiveSignal",
    "AdaptiveStrength",
    "DriftDiagnostic",
    "check_adaptive_signal",
]
