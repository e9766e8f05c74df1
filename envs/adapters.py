"""Parameter adapters: how a stream over user envs sets a task parameter or a drifted value.

A stream over user envs separates *when* a value changes from *how* it reaches the env, as
NS-Gym separates its scheduler from its update functions: the :class:`~envs.stream.TaskStream`
is the scheduler (mixture and drift as functions of the global step), an adapter is the update
function. An adapter is any object with the two methods of :class:`ParamAdapter`; the stream
calls ``set`` at each episode's reset (task parameters, drift with ``update="episode"``) and
before each step (drift with ``update="step"``).

Shipped adapters: :class:`ClassicControlAdapter` (Gymnasium's CartPole, Pendulum, Acrobot,
MountainCar and MountainCarContinuous) and :class:`MiniGridAdapter` (MiniGrid's step budget,
with the ``minigrid`` extra). :class:`AttributeAdapter` covers a user env whose parameters are
plain attributes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym


@runtime_checkable
class ParamAdapter(Protocol):
    """Sets named scalar parameters of an env.

    ``env`` is the env as built (possibly wrapped); an adapter usually acts on ``env.unwrapped``.
    """

    def bounds(self, env: gym.Env, name: str) -> tuple[float, float]:
        """Closed range ``(low, high)`` of parameter ``name`` in its own units.

        :raises ValueError: the adapter does not know ``name`` for this env; the message names
            the parameters it knows.
        """
        ...

    def get(self, env: gym.Env, name: str) -> float:
        """The parameter's current value (the env's default before any ``set``)."""
        ...

    def set(self, env: gym.Env, name: str, value: float) -> None:
        """Give the parameter ``value`` (inside :meth:`bounds`), effective from the next step;
        quantities the env derives from it are updated too."""
        ...


class AttributeAdapter:
    """Parameters that are plain attributes of ``env.unwrapped``.

    :param bounds: parameter name -> ``(low, high)``; only these names can be set.
    :param integer: names whose value is rounded to an int before it is set.
    """

    def __init__(
        self, bounds: Mapping[str, tuple[float, float]], integer: tuple[str, ...] = ()
    ) -> None:
        self._bounds = {str(k): (float(lo), float(hi)) for k, (lo, hi) in bounds.items()}
        for k, (lo, hi) in self._bounds.items():
            if not lo <= hi:
                raise ValueError(f"bounds[{k!r}]=({lo}, {hi}) must have low <= high")
        self._integer = frozenset(integer)

    def known(self, env: gym.Env) -> dict[str, tuple[float, float]]:
        """Parameter name -> ``(low, high)`` for ``env``."""
        return dict(self._bounds)

    def bounds(self, env: gym.Env, name: str) -> tuple[float, float]:
        known = self.known(env)
        if name not in known:
            raise ValueError(
                f"parameter {name!r} is unknown to {type(self).__name__} for {_env_name(env)}; "
                f"known: {sorted(known)}"
            )
        return known[name]

    def get(self, env: gym.Env, name: str) -> float:
        self.bounds(env, name)
        return float(getattr(env.unwrapped, name))

    def set(self, env: gym.Env, name: str, value: float) -> None:
        setattr(env.unwrapped, name, round(value) if name in self._integer else float(value))


# Ranges keep each env physically meaningful: positive masses and lengths, and CartPole's
# force_mag may be negative, which swaps the meaning of its two actions.
_CLASSIC: dict[str, dict[str, tuple[float, float]]] = {
    "CartPoleEnv": {
        "gravity": (0.1, 50.0),
        "masscart": (0.01, 20.0),
        "masspole": (0.001, 5.0),
        "length": (0.05, 5.0),  # half the pole's length, m
        "force_mag": (-50.0, 50.0),
        "tau": (0.001, 0.1),
    },
    "PendulumEnv": {
        "g": (0.1, 50.0),
        "m": (0.01, 10.0),
        "l": (0.05, 5.0),
        "max_torque": (0.1, 10.0),
        "max_speed": (1.0, 50.0),
        "dt": (0.001, 0.2),
    },
    "AcrobotEnv": {
        "LINK_LENGTH_1": (0.1, 5.0),
        "LINK_LENGTH_2": (0.1, 5.0),
        "LINK_MASS_1": (0.1, 10.0),
        "LINK_MASS_2": (0.1, 10.0),
        "LINK_COM_POS_1": (0.05, 5.0),
        "LINK_COM_POS_2": (0.05, 5.0),
        "LINK_MOI": (0.1, 10.0),
    },
    "MountainCarEnv": {"force": (0.0001, 0.01), "gravity": (0.0001, 0.01)},
    "Continuous_MountainCarEnv": {"power": (0.0001, 0.01)},
}


class ClassicControlAdapter(AttributeAdapter):
    """Physical constants of Gymnasium's classic-control envs, chosen by the env's class.

    CartPole: gravity (m/s^2), masscart, masspole (kg), length (half the pole, m), force_mag
    (N; negative swaps the actions), tau (s per step). Pendulum: g, m, l, max_torque, max_speed,
    dt. Acrobot: the LINK_* constants. MountainCar: force, gravity. MountainCarContinuous:
    power. CartPole's derived ``total_mass`` and ``polemass_length`` follow its masses and
    length.
    """

    def __init__(self) -> None:
        super().__init__({})

    def known(self, env: gym.Env) -> dict[str, tuple[float, float]]:
        return dict(_CLASSIC.get(type(env.unwrapped).__name__, {}))

    def set(self, env: gym.Env, name: str, value: float) -> None:
        base = env.unwrapped
        setattr(base, name, float(value))
        if name in ("masscart", "masspole", "length") and hasattr(base, "polemass_length"):
            base.total_mass = base.masspole + base.masscart
            base.polemass_length = base.masspole * base.length


class MiniGridAdapter(AttributeAdapter):
    """MiniGrid's ``max_steps``: the episode's step budget (an int, rounded; also scales the
    reward ``1 - 0.9 * steps / max_steps`` of reaching the goal)."""

    def __init__(self) -> None:
        super().__init__({"max_steps": (1.0, 100_000.0)}, integer=("max_steps",))


def _env_name(env: gym.Env) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def default_adapter(env: gym.Env) -> AttributeAdapter | None:
    """The shipped adapter for ``env``'s family, or None when there is none."""
    base = env.unwrapped
    if type(base).__name__ in _CLASSIC:
        return ClassicControlAdapter()
    if any(c.__module__.startswith("minigrid") for c in type(base).__mro__):
        return MiniGridAdapter()
    return None


def check_value(adapter: ParamAdapter, env: gym.Env, name: str, value: float, where: str) -> None:
    """Raise a ValueError naming ``where`` and the allowed range if ``value`` is outside it."""
    lo, hi = adapter.bounds(env, name)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{where}={value!r} is out of range; allowed: [{lo:g}, {hi:g}]")


def require_minigrid() -> Any:
    """Import minigrid (registering its env ids), or explain how to install it."""
    try:
        import minigrid
    except ImportError as exc:
        raise ImportError(
            "MiniGrid envs need the 'minigrid' extra: pip install 'synaptic-rl[minigrid]'"
        ) from exc
    return minigrid
