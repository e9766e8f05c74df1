"""Building the env's config dataclasses from plain mappings (dicts, Hydra nodes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def coerce(cls: type[T], obj: T | Mapping[str, Any] | None, what: str) -> T:
    """Return ``obj`` as an instance of dataclass ``cls``.

    ``None`` gives the defaults; a mapping (plain dict or Hydra ``DictConfig``) is checked for
    unknown keys, which raise a ``ValueError`` naming them and the allowed keys.
    """
    if obj is None:
        return cls()
    if isinstance(obj, cls):
        return obj
    if isinstance(obj, Mapping):
        allowed = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(obj) - allowed)
        if unknown:
            raise ValueError(f"unknown {what} field(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**{str(k): v for k, v in obj.items()})
    raise ValueError(f"{what} must be a {cls.__name__} or a mapping, got {type(obj).__name__}")
