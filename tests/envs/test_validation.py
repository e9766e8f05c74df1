"""Bad parameters fail early with a ValueError naming the field and the allowed range."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from envs import (
    Landmark,
    StreamSpec,
    TaskSpec,
    WorldConfig,
    get_task,
    make_eval_envs,
    make_vec_env,
)

G = (0.6, 0.6)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Landmark(0.0, 0.5, 0.0), r"Landmark.radius=0.0 must be in \(0"),
        (lambda: Landmark(0.0, 0.5, -0.1), r"Landmark.radius"),
        (lambda: Landmark(1.5, 0.0, 0.1), r"Landmark.x=1.5 must be in \[-1.0, 1.0\]"),
        (lambda: Landmark(0.0, 0.0, 0.1, kind=-1), r"Landmark.kind"),
        (lambda: TaskSpec("t", goal=(0.5, 0.5), goal_radius=0.0), r"goal_radius=0.0 must be in"),
        (lambda: TaskSpec("t", goal=(0.5, 0.5), goal_radius=-1), r"goal_radius"),
        (
            lambda: TaskSpec("t", goal=(1.2, 0.0)),
            r"goal=\(1.2, 0.0\).*outside the arena.*\[-0.85, 0.85\]",
        ),
        (lambda: TaskSpec("t", goal=(0.9, 0.0), goal_radius=0.15), r"goal=.*outside the arena"),
        (lambda: TaskSpec("t", goal=(0.5, 0.5), start=(-1.0, 0.0)), r"start=.*outside the arena"),
        (lambda: TaskSpec("t", goal=(0.1, 0.0)), r"start region overlaps the goal region"),
        (
            lambda: TaskSpec("t", goal=(0.6, 0.6), landmarks=[Landmark(0.2, 0.0, 0.1, solid=True)]),
            r"landmarks\[0\] is solid and overlaps the start region",
        ),
        (
            lambda: TaskSpec("t", goal=(0.6, 0.6), landmarks=[Landmark(0.6, 0.5, 0.1, solid=True)]),
            r"landmarks\[0\] is solid and overlaps the goal region",
        ),
        (lambda: TaskSpec("t", goal=G, friction=-1), r"friction=-1.0 must be in \[0, inf\)"),
        (lambda: TaskSpec("t", goal=(0.6, 0.6), wind=(1.0,)), r"wind must be a pair"),
        (
            lambda: TaskSpec.from_any({"name": "t", "goal": G, "speed": 1}),
            r"unknown TaskSpec field.*speed",
        ),
    ],
)
def test_task_validation(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_solid_landmark_clear_of_start_is_fine() -> None:
    TaskSpec("t", goal=(0.6, 0.6), landmarks=[Landmark(0.0, 0.5, 0.1, solid=True)])
    TaskSpec("t", goal=(0.6, 0.6), landmarks=[Landmark(0.2, 0.0, 0.1, solid=False)])


def test_unknown_task_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown task name 'nowhere'; known tasks: \[.*'north'"):
        get_task("nowhere")
    with pytest.raises(ValueError, match="unknown task name 'nowhere'"):
        make_vec_env({"schedule": [["nowhere", 100]]}, n_envs=2)
    with pytest.raises(ValueError, match="unknown task name 'nowhere'"):
        make_eval_envs(["north", "nowhere"], n_envs=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"schedule": [("north", -5)]},
            r"schedule\[0\]: duration=-5 must be an integer in \[1, inf\)",
        ),
        ({"schedule": [("north", 0)]}, r"duration=0"),
        ({"schedule": []}, r"at least one entry"),
        ({"schedule": [({"north": 0.5, "south": 0.4}, 10)]}, r"weights must sum to 1, got 0.9"),
        ({"schedule": [({"north": 1.5, "south": -0.5}, 10)]}, r"weights must be in \[0, 1\]"),
        ({"schedule": [("north", 10), ("south", 10)], "blur": 20}, r"blur=20 must be in \[0, 10\]"),
        ({"blur": -1}, r"blur=-1 must be an integer in \[0, inf\)"),
        ({"ramp": "cosine"}, r"ramp='cosine' is unknown; allowed: \['linear', 'sigmoid'\]"),
        ({"drift": [{"param": "goal", "process": "levy"}]}, r"DriftSpec.process='levy' is unknown"),
        ({"drift": [{"param": "goal", "update": "never"}]}, r"DriftSpec.update='never'"),
        ({"drift": [{"param": "goal", "bound": 0}]}, r"DriftSpec.bound=0.0 must be in \(0, inf\)"),
        ({"drift": [{"param": "goal", "rate": 1}]}, r"unknown DriftSpec field.*rate"),
        ({"schedule": [("north", 10, 3)]}, r"must be a \(task, duration\) pair"),
    ],
)
def test_stream_validation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        StreamSpec(**kwargs)


def test_unknown_nav_drift_param_fails_at_the_env() -> None:
    # StreamSpec also drives user envs, so the navigation world checks its own parameters.
    spec = StreamSpec(drift=[{"param": "gravity"}])
    with pytest.raises(ValueError, match=r"DriftSpec.param='gravity' is unknown; allowed"):
        make_vec_env(spec, n_envs=1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_rays": 0}, r"WorldConfig.n_rays=0 must be an integer in \[1, inf\)"),
        ({"landmark_channels": 0}, r"landmark_channels=0"),
        ({"lidar_range": 0.0}, r"lidar_range=0.0 must be in \(0.0, inf\)"),
        ({"dt": -0.1}, r"WorldConfig.dt"),
        ({"action_bound": 0.5}, r"action_bound=0.5 must be in \[1.0, inf\)"),
        ({"sensor_noise": -0.1}, r"sensor_noise"),
        ({"cue_steps": -1}, r"cue_steps=-1 must be None or an integer"),
        ({"mix_seed": -2}, r"mix_seed=-2 must be None or an integer in \[0, inf\)"),
        ({"max_episode_steps": 0}, r"max_episode_steps=0"),
    ],
)
def test_world_validation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        WorldConfig(**kwargs)


def test_unknown_keys_in_plain_dicts() -> None:
    with pytest.raises(ValueError, match=r"unknown WorldConfig field\(s\) \['n_ray'\]"):
        make_vec_env({"schedule": [["north", 100]]}, world={"n_ray": 8})
    with pytest.raises(ValueError, match=r"unknown StreamSpec field\(s\) \['blurr'\]"):
        make_vec_env({"schedule": [["north", 100]], "blurr": 3})
    with pytest.raises(ValueError, match=r"n_envs=0 must be an integer in \[1, inf\)"):
        make_vec_env({"schedule": [["north", 100]]}, n_envs=0)


def test_hydra_style_configs_are_accepted() -> None:
    cfg = OmegaConf.create(
        {
            "stream": {
                "schedule": [
                    {"task": "north", "steps": 1000},
                    ["south", 1000],
                    [{"north": 0.5, "south": 0.5}, 500],
                ],
                "blur": 200,
                "ramp": "sigmoid",
                "drift": [{"param": "wind", "process": "sine", "bound": 0.1, "period": 400}],
            },
            "world": {"n_rays": 12, "cue_steps": 4},
            "tasks": {"east": {"goal": [0.6, 0.0], "landmarks": [[0.0, 0.8, 0.2, 3]]}},
        }
    )
    env = make_vec_env(cfg.stream, n_envs=4, seed=0, world=cfg.world)
    assert env.task_names == ["north", "south"]
    assert env.stream.total_steps == 2500
    env.reset()
    obs, *_ = env.step(np.zeros((4, 2), dtype=np.float32))
    assert obs.shape == (4, 4 + 12 * 9)
    custom = make_vec_env({"schedule": [["east", 100]]}, n_envs=2, tasks=cfg.tasks)
    assert custom.core.tasks[0].landmarks[0].kind == 3
    evals = make_eval_envs(["north", "east"], n_envs=2, world=cfg.world, tasks=cfg.tasks)
    assert list(evals) == ["north", "east"]
    assert evals["east"].task_names == ["north", "east"]
    assert evals["east"].core.task.tolist() == [1, 1]
