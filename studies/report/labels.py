"""How numbers, swept values and groups are written in the report's tables and plots."""

from __future__ import annotations

import math


def fmt_axis(v: float | str) -> str:
    """Tick label of a swept value: 3e-4 rather than 0.0003, 10 rather than 10.0."""
    if isinstance(v, str):
        return v
    if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4):
        mantissa, exp = f"{v:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exp)}"
    return f"{v:g}"


def fmt_value(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return "∞" if x == math.inf else f"{x:.3f}"


def group_label(method: str, setting: str) -> str:
    return f"{method} [{setting}]" if setting else method
