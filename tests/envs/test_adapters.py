"""Parameter adapters: set values reach the env, unknown names and the missing extra are
explained."""

from __future__ import annotations

import sys

import gymnasium as gym
import pytest

from envs.adapters import (
    AttributeAdapter,
    ClassicControlAdapter,
    MiniGridAdapter,
    ParamAdapter,
    check_value,
    default_adapter,
    require_minigrid,
)


@pytest.mark.parametrize(
    ("env_id", "name", "value"),
    [
        ("CartPole-v1", "gravity", 12.0),
        ("CartPole-v1", "force_mag", -10.0),
        ("Pendulum-v1", "g", 5.0),
        ("Acrobot-v1", "LINK_MASS_2", 2.0),
        ("MountainCar-v0", "force", 0.002),
        ("MountainCarContinuous-v0", "power", 0.002),
    ],
)
def test_classic_control_sets_the_attribute(env_id: str, name: str, value: float) -> None:
    env = gym.make(env_id)
    adapter = default_adapter(env)
    assert isinstance(adapter, ClassicControlAdapter) and isinstance(adapter, ParamAdapter)
    lo, hi = adapter.bounds(env, name)
    assert lo <= value <= hi
    adapter.set(env, name, value)
    assert getattr(env.unwrapped, name) == value == adapter.get(env, name)


def test_cartpole_derived_quantities_follow() -> None:
    env = gym.make("CartPole-v1")
    adapter = ClassicControlAdapter()
    adapter.set(env, "length", 1.5)
    adapter.set(env, "masspole", 0.2)
    base = env.unwrapped
    assert base.polemass_length == pytest.approx(0.2 * 1.5)
    assert base.total_mass == pytest.approx(0.2 + base.masscart)


def test_unknown_parameter_names_the_known_ones() -> None:
    env = gym.make("CartPole-v1")
    with pytest.raises(
        ValueError,
        match=r"'wind' is unknown to ClassicControlAdapter for "
        r"CartPole-v1; known: \['force_mag', 'gravity'",
    ):
        ClassicControlAdapter().bounds(env, "wind")


def test_value_out_of_range_names_the_field() -> None:
    env = gym.make("CartPole-v1")
    with pytest.raises(
        ValueError,
        match=r"tasks\['x'\].length=-1.0 is out of range; allowed: "
        r"\[0.05, 5\]",
    ):
        check_value(ClassicControlAdapter(), env, "length", -1.0, "tasks['x'].length")


def test_attribute_adapter_rounds_integers() -> None:
    env = gym.make("CartPole-v1")
    adapter = AttributeAdapter({"x_threshold": (1, 10), "steps": (1, 9)}, integer=("steps",))
    adapter.set(env, "steps", 3.6)
    assert env.unwrapped.steps == 4
    with pytest.raises(ValueError, match=r"bounds\['a'\]=\(2.0, 1.0\)"):
        AttributeAdapter({"a": (2, 1)})


def test_minigrid_max_steps() -> None:
    require_minigrid()
    env = gym.make("MiniGrid-Empty-5x5-v0")
    adapter = default_adapter(env)
    assert isinstance(adapter, MiniGridAdapter)
    adapter.set(env, "max_steps", 30.4)
    assert env.unwrapped.max_steps == 30 == adapter.get(env, "max_steps")


def test_missing_minigrid_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "minigrid", None)
    with pytest.raises(ImportError, match=r"pip install 'synaptic-rl\[minigrid\]'"):
        require_minigrid()


def test_unknown_family_has_no_adapter() -> None:
    assert default_adapter(gym.make("FrozenLake-v1")) is None
