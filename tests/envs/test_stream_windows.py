"""StreamSpec.windows(), visits() and boundaries(): the training windows, visits and task
switches that train.py evaluates against and records in metrics.json."""

from __future__ import annotations

from envs import StreamSpec, TaskStream


def test_hard_switches() -> None:
    spec = StreamSpec.sequence(["north", "south", "east"], 1000)
    assert spec.windows() == [(0, 1000), (1000, 2000), (2000, 3000)]
    assert spec.boundaries() == [1000, 2000]
    assert spec.boundaries() == TaskStream(spec).boundaries


def test_blur_does_not_move_windows_or_switches() -> None:
    """A switch is the middle of its blur window; the windows are the schedule's phases."""
    spec = StreamSpec(schedule=[("north", 1000), ("south", 3000)], blur=400)
    assert spec.windows() == [(0, 1000), (1000, 4000)]
    assert spec.boundaries() == [1000]
    stream = TaskStream(spec)
    assert stream.mixture(1000).tolist() == [0.5, 0.5]


def test_a_revisited_task_has_its_last_window() -> None:
    spec = StreamSpec(schedule=[("north", 100), ("south", 200), ("north", 300)])
    assert spec.task_names == ["north", "south"]
    assert spec.windows() == [(300, 600), (100, 300)]
    assert spec.boundaries() == [100, 300]
    assert spec.visits() == [("north", 0, 100), ("south", 100, 300), ("north", 300, 600)]


def test_consecutive_phases_of_one_task_are_one_phase() -> None:
    spec = StreamSpec(schedule=[("north", 100), ("north", 100), ("south", 100)])
    assert spec.boundaries() == [200]
    assert spec.windows() == [(100, 200), (200, 300)]  # the last phase that draws it
    assert spec.visits() == [("north", 0, 200), ("south", 200, 300)]


def test_joint_every_task_trains_throughout() -> None:
    spec = StreamSpec.joint(["north", "south", "east"], 3000)
    assert spec.windows() == [(0, 3000)] * 3
    assert spec.boundaries() == []
    assert spec.visits() == []  # a mixture phase is nobody's visit


def test_single_phase_has_no_switch() -> None:
    spec = StreamSpec(schedule=[("north", 500)])
    assert spec.windows() == [(0, 500)]
    assert spec.boundaries() == []
