"""Which parameters a regulariser holds, and in which groups.

A selection names parameter groups: presets (:data:`PARAMETER_GROUPS`) or name patterns, glob
(``fnmatch``, whole name) or regex (``"re:<regex>"``, ``re.search``). A mapping
``{group: weight}`` gives each group its own strength ``c_g = c · weight``. A parameter belongs
to the first group it matches; ``exclude`` patterns are checked first.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["PARAMETER_GROUPS", "ParamsLike", "Selected", "Selection", "select_parameters"]

ParamsLike = nn.Module | Iterable[tuple[str, torch.Tensor]]
Selection = str | Sequence[str] | Mapping[str, float] | None

#: Named parameter groups. Names follow stable-baselines3's ActorCriticPolicy and sb3-contrib's
#: RecurrentActorCriticPolicy; a shared feature extractor counts as actor.
PARAMETER_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ("*",),
    "actor": (
        "features_extractor.*",
        "pi_features_extractor.*",
        "mlp_extractor.policy_net.*",
        "lstm_actor.*",
        "action_net.*",
    ),
    "critic": (
        "vf_features_extractor.*",
        "mlp_extractor.value_net.*",
        "lstm_critic.*",
        "critic.*",
        "value_net.*",
    ),
    "head": ("action_net.*",),
    "hidden": (
        "features_extractor.*",
        "pi_features_extractor.*",
        "mlp_extractor.policy_net.*",
        "lstm_actor.*",
    ),
}


@dataclass(frozen=True)
class Selected:
    """The regularised parameters, in the order of ``params``, and their groups.

    :param names: parameter names.
    :param params: the parameters (leaf tensors with ``requires_grad``).
    :param group_names: one name per group (the preset name or pattern that made it).
    :param group_weights: one weight per group (``c_g = c · weight``).
    :param members: per group, the indices into ``params`` of its parameters.
    """

    names: list[str]
    params: list[torch.Tensor]
    group_names: list[str]
    group_weights: list[float]
    members: list[list[int]]


def matches(name: str, pattern: str) -> bool:
    """Glob match (``fnmatch``, whole name); a ``re:`` prefix means a regex (``re.search``)."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


def resolve_groups(select: Selection) -> list[tuple[str, tuple[str, ...], float]]:
    """Turn a selection into ``[(group name, patterns, weight)]``."""
    if select is None:
        return [("all", PARAMETER_GROUPS["all"], 1.0)]
    items: list[tuple[str, float]]
    if isinstance(select, str):
        items = [(select, 1.0)]
    elif isinstance(select, Mapping):
        items = [(str(k), float(v)) for k, v in select.items()]
    else:
        items = [(str(k), 1.0) for k in select]
    if not items:
        raise ValueError("select: must name at least one parameter group or pattern")
    groups = []
    for key, weight in items:
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"select[{key!r}]: group weight must be finite and >= 0, got {weight}")
        groups.append((key, PARAMETER_GROUPS.get(key, (key,)), weight))
    return groups


def named_parameters(params: ParamsLike) -> list[tuple[str, torch.Tensor]]:
    """``(name, parameter)`` pairs of an ``nn.Module``, or the pairs given, checked."""
    if isinstance(params, nn.Module):
        return list(params.named_parameters())
    out = []
    for item in params:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], torch.Tensor)):
            raise ValueError(
                "params: expected an nn.Module or an iterable of (name, parameter) pairs, "
                f"got an element of type {type(item).__name__}"
            )
        out.append((str(item[0]), item[1]))
    return out


def select_parameters(
    params: ParamsLike, select: Selection = None, exclude: Sequence[str] = ()
) -> Selected:
    """The trainable parameters of ``params`` that ``select`` names and ``exclude`` does not.

    :raises ValueError: a group matches no trainable, non-excluded parameter, or a selected
        parameter is not a leaf tensor.
    """
    named = named_parameters(params)
    groups = resolve_groups(select)
    members: list[list[int]] = [[] for _ in groups]
    names: list[str] = []
    selected: list[torch.Tensor] = []
    for name, p in named:
        if not p.requires_grad or any(matches(name, pat) for pat in exclude):
            continue
        for gi, (_, patterns, _) in enumerate(groups):
            if any(matches(name, pat) for pat in patterns):
                if not p.is_leaf:
                    raise ValueError(f"params: {name!r} is not a leaf tensor")
                members[gi].append(len(selected))
                names.append(name)
                selected.append(p)
                break
    available = [n for n, _ in named]
    for (gname, patterns, _), idx in zip(groups, members, strict=True):
        if not idx:
            raise ValueError(
                f"select: group {gname!r} (patterns {list(patterns)}) matches no trainable, "
                f"non-excluded parameter; names are {available}"
            )
    return Selected(
        names=names,
        params=selected,
        group_names=[g[0] for g in groups],
        group_weights=[g[2] for g in groups],
        members=members,
    )
