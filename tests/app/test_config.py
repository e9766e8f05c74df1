"""In-process tests of the evaluation callback, checkpoints, the non-finite guard, the agent
factory and the config tree, on the real navigation envs and SB3 models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import train  # registers the config schema and resolvers
from agents import make_agent
from configs.schema import validate
from continual import ContinualCallback
from envs import make_user_vec_env, make_vec_env

REPO = Path(__file__).resolve().parents[2]
SMALL = {"n_steps": 32, "batch_size": 64, "n_epochs": 1, "pi_layers": [32], "vf_layers": [32]}


# Every option on disk, so that a new config file is checked as soon as it exists.
OPTIONS = {
    group: sorted(p.stem for p in (REPO / "configs" / group).glob("*.yaml"))
    for group in ("stream", "agent", "continual")
}


@pytest.mark.parametrize("group", sorted(OPTIONS))
def test_every_config_option_composes_and_builds(group: str) -> None:
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        for option in OPTIONS[group]:
            cfg = compose("config", overrides=[f"{group}={option}"])
            validate(cfg)
            spec, windows = train.stream_spec(cfg)
            _, env_tasks = train.env_tasks(cfg)
            # the navigation streams have >= 3 tasks; a third-party family may have 2
            assert len(windows) == len(spec.task_names) >= (3 if env_tasks is None else 2)
            if group == "continual":
                cb = train.continual_callback(cfg)
                assert (cb.consolidation.spec is None) == (option == "finetune")
            if group == "stream" and env_tasks is not None:
                env = make_user_vec_env(env_tasks, spec, n_envs=2, observe=cfg.stream.observe)
                env.reset()
                env.step(np.stack([env.action_space.sample() for _ in range(2)]))
            elif group == "stream":
                env = make_vec_env(
                    spec, n_envs=2, seed=0, world=OmegaConf.to_container(cfg.stream.world)
                )
                env.reset()
                env.step(np.zeros((2, *env.action_space.shape), dtype=np.float32))
                if option == "joint":
                    assert len(spec.schedule) == 1 and windows[0] == windows[-1]


def test_default_config_is_the_quick_si_keep_run() -> None:
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config")
    assert cfg.stream.name == "quick" and cfg.continual.name == "si_keep"
    options = train.continual_callback(cfg).consolidation.regulariser_kwargs
    assert options["keep_top"] == 0.5 and options["normalize"] == "mean"
    assert options == ContinualCallback().consolidation.regulariser_kwargs  # the library default
    assert cfg.agent.algo == "ppo" and cfg.n_envs == 16
    spec, _ = train.stream_spec(cfg)
    assert len(spec.task_names) >= 3 and spec.blur > 0 and spec.drift


def test_addons_from_the_config_join_the_adaptive_strength() -> None:
    overrides = [
        "continual.addons=[{_target_:continual.experimental.DriftDiagnostic}]",
        "continual.adaptive_target=0.2",
    ]
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    addons = train.continual_callback(cfg).consolidation.regulariser_kwargs["addons"]
    assert [type(a).__name__ for a in addons] == ["DriftDiagnostic", "AdaptiveStrength"]


def test_run_entry_point_reports_every_evaluation(tmp_path: Path) -> None:
    """``train.run`` is the programmatic entry (used by studies.tune): no HydraConfig needed."""
    overrides = [
        "total_steps=1024",
        "n_envs=4",
        "eval.eval_freq=512",
        "eval.n_eval_episodes=2",
        "eval.n_envs=2",
        "progress_bar=false",
        "agent.n_steps=64",
        "agent.pi_layers=[32]",
        "agent.vf_layers=[32]",
        "agent.batch_size=128",
    ]
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose(train.CONFIG_NAME, overrides=overrides)
    seen: list[tuple[int, float]] = []
    record = train.run(
        cfg,
        tmp_path / "run",
        on_eval=lambda step, s: seen.append((step, s["eval/avg_success"])),
        overrides=overrides,
    )
    assert [s for s, _ in seen] == [0, 512, 1024]
    assert record["run"]["overrides"] == overrides
    assert record["eval_steps"] == [0, 512, 1024]
    assert (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.parametrize("method", OPTIONS["continual"])
def test_every_continual_config_trains(method: str) -> None:
    """Each method's config is accepted by the real callback through training start, a
    consolidation-capable rollout end, and a PPO update."""
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=[f"continual={method}"])
    env = make_vec_env({"schedule": [("north", 512), ("southwest", 512)]}, n_envs=4, seed=0)
    m = make_agent(SMALL, env, seed=0)
    cb = train.continual_callback(cfg)
    m.learn(256, callback=cb)
    cb.consolidate()
    m.learn(128, callback=cb, reset_num_timesteps=False)
    assert all(torch.isfinite(p).all() for p in m.policy.parameters())


def test_reference_for_forward_transfer_and_relearn_cost(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "metrics.json").write_text(
        '{"per_task": {"north": {"auc_own_window": 0.4}, "southwest": {"auc_own_window": 0.2}},'
        ' "relearn": {"steps_to_threshold": {"north": 8192, "southwest": null}}}'
    )
    auc, scratch = train.reference(str(ref))
    assert auc == {"north": 0.4, "southwest": 0.2} and scratch == {"north": 8192.0}
    plain = tmp_path / "auc.json"
    plain.write_text('{"north": 0.5}')
    assert train.reference(str(plain)) == ({"north": 0.5}, None)
    assert train.reference(None) == (None, None)
    with pytest.raises(ValueError, match=r"eval\.reference="):
        train.reference(str(tmp_path / "missing.json"))
