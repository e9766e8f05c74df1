"""Task library: what a navigation task is, and the built-in tasks.

A task is a point in context space: a goal region, a start region, a set of circles (landmarks
and solid obstacles) and the dynamics parameters. All coordinates are in arena units; the arena
is the square [-1, 1]^2.

The built-in tasks are designed to *conflict* and yet be *distinguishable*:

* goals sit on a ring of radius 0.65 around the shared start region, at least 60 degrees apart
  (the first three of ``DEFAULT_TASKS`` are 120 degrees apart), so a policy that learned one
  task heads the wrong way on another;
* every task has its own landmark set of its own *kind*. With the default observation, each
  kind is read on its own lidar channel, so the inputs that identify a task are sparse and are
  zero in every other task: one network can solve all tasks without a task label.

Landmarks of the built-in tasks do not collide (solid circles trap a policy that heads the
wrong way); ``pillars`` is the exception that shows solid obstacles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envs.coerce import coerce

ARENA: float = 1.0
"""Half-width of the square arena [-ARENA, ARENA]^2."""

N_KINDS: int = 8
"""Number of landmark kinds used by the built-in tasks (kinds 0..7); the default number of
landmark lidar channels."""

Vec2 = tuple[float, float]


def _vec2(value: Any, name: str) -> Vec2:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers (x, y), got {value!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return (x, y)


@dataclass(frozen=True)
class Landmark:
    """A circle in the arena.

    :param x: centre x, arena units; must lie in [-1, 1].
    :param y: centre y, arena units; must lie in [-1, 1].
    :param radius: radius, arena units; > 0.
    :param kind: integer kind >= 0. Kind ``k`` is read on landmark lidar channel
        ``k % landmark_channels`` and drawn in the k-th palette colour.
    :param solid: solid circles collide with the agent and are read on the wall/solid lidar channel;
        landmark-only circles (the default) are seen through the landmark channels and do not
        collide.
    """

    x: float
    y: float
    radius: float
    kind: int = 0
    solid: bool = False

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            v = float(getattr(self, name))
            if not (-ARENA <= v <= ARENA):
                raise ValueError(f"Landmark.{name}={v} must be in [-{ARENA}, {ARENA}]")
            object.__setattr__(self, name, v)
        r = float(self.radius)
        if not (r > 0 and math.isfinite(r)):
            raise ValueError(f"Landmark.radius={self.radius} must be in (0, {2 * ARENA}]")
        object.__setattr__(self, "radius", r)
        if int(self.kind) != self.kind or int(self.kind) < 0:
            raise ValueError(f"Landmark.kind={self.kind!r} must be an integer >= 0")
        object.__setattr__(self, "kind", int(self.kind))
        object.__setattr__(self, "solid", bool(self.solid))

    @classmethod
    def from_any(cls, obj: Landmark | Mapping[str, Any] | Sequence[Any]) -> Landmark:
        """Build from a Landmark, a mapping of its fields, or a sequence (x, y, radius, ...)."""
        if isinstance(obj, Landmark | Mapping):
            return coerce(cls, obj, "Landmark")
        return cls(*obj)


@dataclass(frozen=True)
class TaskSpec:
    """One navigation task in its canonical context.

    :param name: unique task name.
    :param goal: goal centre (x, y); the whole goal circle must lie inside the arena.
    :param goal_radius: goal radius (> 0); reaching it ends the episode with success.
    :param landmarks: circles of this task (see :class:`Landmark`).
    :param start: centre of the start region.
    :param start_radius: start positions are drawn uniformly from this disc (>= 0; 0 = fixed start).
    :param friction: linear velocity damping, 1/s (>= 0); terminal speed is force_scale/friction.
    :param wind: constant acceleration (x, y), arena units/s^2, added to the applied force.
    :param action_noise: std of Gaussian noise added to the applied force (>= 0).
    """

    name: str
    goal: Vec2
    goal_radius: float = 0.15
    landmarks: tuple[Landmark, ...] = ()
    start: Vec2 = (0.0, 0.0)
    start_radius: float = 0.2
    friction: float = 2.0
    wind: Vec2 = (0.0, 0.0)
    action_noise: float = 0.1
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"TaskSpec.name must be a non-empty string, got {self.name!r}")
        n = self.name
        object.__setattr__(self, "goal", _vec2(self.goal, f"TaskSpec({n}).goal"))
        object.__setattr__(self, "start", _vec2(self.start, f"TaskSpec({n}).start"))
        object.__setattr__(self, "wind", _vec2(self.wind, f"TaskSpec({n}).wind"))
        object.__setattr__(self, "landmarks", tuple(Landmark.from_any(lm) for lm in self.landmarks))
        gr = float(self.goal_radius)
        if not (0 < gr <= ARENA / 2):
            raise ValueError(f"TaskSpec({n}).goal_radius={gr} must be in (0, {ARENA / 2}]")
        object.__setattr__(self, "goal_radius", gr)
        sr = float(self.start_radius)
        if not (0 <= sr <= ARENA / 2):
            raise ValueError(f"TaskSpec({n}).start_radius={sr} must be in [0, {ARENA / 2}]")
        object.__setattr__(self, "start_radius", sr)
        for name, (x, y), r in (("goal", self.goal, gr), ("start", self.start, sr)):
            lim = ARENA - r
            if not (abs(x) <= lim and abs(y) <= lim):
                raise ValueError(
                    f"TaskSpec({n}).{name}=({x}, {y}) lies (partly) outside the arena: with "
                    f"{name}_radius={r} each coordinate must be in [{-lim:.3g}, {lim:.3g}]"
                )
        if math.dist(self.goal, self.start) <= gr + sr:
            raise ValueError(
                f"TaskSpec({n}): start region overlaps the goal region; "
                f"|goal - start| must be > goal_radius + start_radius = {gr + sr:.3g}"
            )
        for i, lm in enumerate(self.landmarks):
            if not lm.solid:
                continue
            if math.dist((lm.x, lm.y), self.start) < lm.radius + sr:
                raise ValueError(
                    f"TaskSpec({n}).landmarks[{i}] is solid and overlaps the start region; "
                    f"|centre - start| must be >= radius + start_radius = {lm.radius + sr:.3g}"
                )
            if math.dist((lm.x, lm.y), self.goal) < lm.radius + gr:
                raise ValueError(
                    f"TaskSpec({n}).landmarks[{i}] is solid and overlaps the goal region; "
                    f"|centre - goal| must be >= radius + goal_radius = {lm.radius + gr:.3g}"
                )
        for name in ("friction", "action_noise"):
            v = float(getattr(self, name))
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"TaskSpec({n}).{name}={v} must be in [0, inf)")
            object.__setattr__(self, name, v)

    @classmethod
    def from_any(cls, obj: TaskSpec | Mapping[str, Any]) -> TaskSpec:
        """Build from a TaskSpec or a mapping of its fields (e.g. a Hydra config node)."""
        if obj is None:
            raise ValueError("TaskSpec must be a TaskSpec or a mapping, got NoneType")
        return coerce(cls, obj, "TaskSpec")


GOAL_RING = 0.65
"""Distance of the built-in goals from the arena centre (the start region's centre)."""


def _ring(angle_deg: float, radius: float = GOAL_RING) -> Vec2:
    a = math.radians(angle_deg)
    return (round(radius * math.cos(a), 4), round(radius * math.sin(a), 4))


def _circle_set(
    kind: int, n: int, ring: float, radius: float, phase_deg: float
) -> tuple[Landmark, ...]:
    """n landmarks of one kind evenly spread on a ring: seen from anywhere in the arena, at
    least one of them subtends more than the 22.5 degree spacing of 16 lidar rays."""
    return tuple(
        Landmark(*_ring(phase_deg + 360.0 * j / n, ring), radius=radius, kind=kind)
        for j in range(n)
    )


def _ring_task(
    name: str,
    angle: float,
    kind: int,
    n: int,
    ring: float,
    radius: float,
    phase: float,
    description: str,
) -> TaskSpec:
    return TaskSpec(
        name=name,
        goal=_ring(angle),
        landmarks=_circle_set(kind, n, ring, radius, phase),
        description=description,
    )


_LIBRARY: tuple[TaskSpec, ...] = (
    _ring_task("north", 90, 0, 3, 0.78, 0.20, 0, "goal N; 3 large landmarks"),
    _ring_task("southwest", 210, 1, 4, 0.80, 0.16, 0, "goal SW; 4 medium landmarks"),
    _ring_task("southeast", 330, 2, 5, 0.82, 0.13, 6, "goal SE; 5 small landmarks"),
    _ring_task("northeast", 30, 3, 2, 0.62, 0.24, 120, "goal NE; 2 large landmarks NW/SE"),
    _ring_task("northwest", 150, 4, 2, 0.62, 0.24, 90, "goal NW; 2 large landmarks N/S"),
    _ring_task("south", 270, 5, 6, 0.85, 0.11, 0, "goal S; 6 small landmarks"),
    TaskSpec(
        name="windy",
        goal=_ring(180),
        landmarks=_circle_set(6, 3, 0.80, 0.18, 0),
        wind=(0.3, 0.0),
        description="goal W against an eastward wind; 3 landmarks",
    ),
    TaskSpec(
        name="pillars",
        goal=_ring(0),
        landmarks=(
            Landmark(0.40, 0.22, 0.10, kind=7, solid=True),
            Landmark(0.40, -0.22, 0.10, kind=7, solid=True),
            *_circle_set(7, 3, 0.80, 0.18, 60),
        ),
        description="goal E behind two solid pillars; 3 landmarks",
    ),
)

TASKS: dict[str, TaskSpec] = {t.name: t for t in _LIBRARY}
"""The built-in tasks by name."""

DEFAULT_TASKS: list[str] = ["north", "southwest", "southeast", "northeast", "northwest", "south"]
"""Default task order. The first three (goals 120 degrees apart) form the quick curriculum;
the first five or all six the standard one."""


def get_task(name: str, extra: Mapping[str, TaskSpec] | None = None) -> TaskSpec:
    """Look a task up by name in ``extra`` (user tasks), then in :data:`TASKS`.

    :param name: the task name.
    :param extra: user tasks by name, looked up first.
    :return: the task.
    :raises ValueError: unknown name; the message lists the known names.
    """
    if extra and name in extra:
        return extra[name]
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        known = sorted({*TASKS, *(extra or {})})
        raise ValueError(f"unknown task name {name!r}; known tasks: {known}") from None
