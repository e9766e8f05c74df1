"""Structured-config schema of ``train.py`` (registered in Hydra's ConfigStore).

Every YAML file of the config tree is merged into these dataclasses, so an unknown key or a
value of the wrong type fails at composition with a message naming the key. Range checks that
types cannot express are in :func:`validate`, raising ``ValueError`` naming field and range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from agents.config import AgentConfig
from envs import DriftSpec, WorldConfig


@dataclass
class PhaseConfig:
    """One phase of a stream: train on ``task`` for ``steps`` env steps.

    ``task`` is a navigation task's name, or a Gymnasium env task: a mapping with ``env`` (a
    registered id) and parameter values, e.g. ``{env: CartPole-v1, length: 0.5}``
    (``envs.EnvTask.from_mapping``). A stream uses one kind.
    """

    task: Any = MISSING
    steps: int = MISSING


@dataclass
class StreamConfig:
    """A curriculum (``envs.StreamSpec`` fields) and the world it runs in."""

    name: str = MISSING  # reported in metrics.json (run.stream)
    schedule: list[PhaseConfig] = MISSING
    blur: int = 0  # transition window width, env steps (0 = hard switch)
    ramp: str = "linear"  # "linear" | "sigmoid"
    drift: list[DriftSpec] = field(default_factory=list)
    # Train on a uniform mixture of the schedule's tasks for the schedule's total length
    # instead of in sequence: the joint-training upper bound.
    joint: bool = False
    world: WorldConfig = field(default_factory=WorldConfig)  # navigation tasks only
    # Env tasks only: parameters appended to the observations, normalised to [-1, 1] (the
    # visible context of contextual RL), so tasks that differ in them can be told apart.
    observe: list[str] = field(default_factory=list)


@dataclass
class ContinualConfig:
    """A ``continual.ContinualCallback``, built with ``hydra.utils.instantiate``.

    ``regulariser`` names a method of ``continual.presets.METHODS``; every option left ``null``
    is that method's own, so a method's defaults live in one place.
    """

    _target_: str = "continual.ContinualCallback"
    name: str = MISSING  # method name reported in metrics.json (run.method); not passed on
    regulariser: str | None = "si"  # a METHODS name, or null (fine-tuning)
    trigger: str = "plateau"  # "plateau" | "boundary" | "interval" | "never"
    c: float | None = None
    select: Any = None  # which parameters carry importance (groups, patterns or {group: weight})
    signal: str = "negative_return"
    trigger_kwargs: dict[str, Any] = field(default_factory=dict)
    on_shift: Any = None  # a list of shift actions (``_target_`` nodes); null: the default
    n_estimate_samples: int = 1024
    # Regulariser options over the method's (null: the method's own).
    xi: float | None = None
    accumulate: str | None = None
    gamma: float | None = None
    normalize: str | None = None
    keep_top: float | None = None
    exclude: list[str] | None = None
    storage_dtype: str | None = None
    addons: Any = None  # regulariser add-ons (``_target_`` nodes), e.g. continual.experimental's
    # Experimental (continual.experimental.AdaptiveStrength): c adapts so that the signal
    # "gradient_ratio" or "drift" meets this target; null: fixed c.
    adaptive_target: float | None = None
    adaptive_signal: str = "gradient_ratio"


@dataclass
class EvalConfig:
    """Periodic evaluation of every task in its canonical context."""

    # Env steps between evaluations: 5 PPO updates of 16 x 128 steps, often enough to resolve
    # learning within a phase at a small share of the wall time (docs/study/defaults.md#evaluation).
    eval_freq: int = 10_240
    # Episodes per task and evaluation: success in steps of 1/20, fine enough to see partial
    # forgetting.
    n_eval_episodes: int = 20
    n_envs: int = 20  # eval envs per task: one batch of episodes per evaluation
    # Also evaluate the sampling policy: deterministic success is nearly binary on navigation,
    # the sampling policy's is the graded measure (docs/study/defaults.md#evaluation).
    stochastic: bool = True
    eval_at_start: bool = True
    figure_every: int = 0  # also log TensorBoard figures every N evaluations (0: at the end)
    # metrics.json of a single-task reference run (or a JSON mapping task -> AUC over its own
    # window) for forward transfer; None: not computed.
    reference: str | None = None


@dataclass
class Config:
    """Top-level config of ``train.py``."""

    stream: StreamConfig = MISSING
    agent: AgentConfig = MISSING
    continual: ContinualConfig = MISSING
    eval: EvalConfig = MISSING
    seed: int = 0
    # Env steps to train; None: the stream's total length (sum of its phases).
    total_steps: int | None = None
    # Training envs; with agent.n_steps = 128 one update sees 2048 samples
    # (docs/study/defaults.md#agent).
    n_envs: int = 16
    # Output directory; None: Hydra's run directory (outputs/<date>/<time>).
    run_dir: str | None = None
    # A previous run directory to continue from its last checkpoint (its saved config is used).
    resume: str | None = None
    # Env steps between checkpoints; checkpoints are taken between PPO updates, so the value
    # is rounded up to a multiple of n_envs x n_steps.
    checkpoint_freq: int = 20_480
    progress_bar: bool = True
    # Further SB3 callbacks, each a ``_target_`` node, run after the evaluation and before the
    # non-finite guard and the checkpoints.
    callbacks: list[Any] = field(default_factory=list)


# Keys of the continual node written by releases before it was built by ``_target_``.
_OLD_CONTINUAL_OPTIONS = ("xi", "accumulate", "normalize", "keep_top", "exclude", "storage_dtype")


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A run's saved ``config.yaml`` (as a plain dict) in today's schema.

    Runs written before the continual node was built by ``_target_`` spelled every option
    out, and named plain SI ``si``; they resume with exactly the same regulariser. A run that
    used an option since removed is refused with the reason.

    :raises ValueError: the run used a removed option; the message names it.
    """
    saved = {k: v for k, v in saved.items() if k != "debug"}  # a test hook, never set in runs
    old = saved.get("continual")
    if not isinstance(old, dict) or "_target_" in old:
        return saved
    where = f"continual ({old.get('name')})"
    if old.get("clip_penalty", True) is not True:
        raise ValueError(
            f"{where}: saved with clip_penalty=false, an option this release removed "
            "(docs/study/clipping.md); resume it with the release that wrote it"
        )
    shift = old.get("on_shift")
    if isinstance(shift, dict):
        others = {k: v for k, v in shift.items() if k != "reset_log_std"}
        if (
            others.get("reset_optimizer")
            or others.get("ent_coef") is not None
            or others.get("lr_warmup_rollouts")
        ):
            raise ValueError(
                f"{where}: saved with shift actions this release removed ({sorted(others)}); "
                "resume it with the release that wrote it"
            )
        level = shift.get("reset_log_std")
        shift = (
            []
            if level is None
            else [{"_target_": "continual.ResetExploration", "log_std": float(level)}]
        )
    regulariser = old.get("regulariser")
    new: dict[str, Any] = {
        "_target_": "continual.ContinualCallback",
        "name": old.get("name"),
        # Every option was written out, so the preset without options is the old regulariser.
        "regulariser": "si_paper" if regulariser == "si" else regulariser,
        "trigger": old.get("trigger", "plateau"),
        "c": old.get("c") if regulariser is not None else None,
        "select": old.get("params") if regulariser is not None else None,
        "signal": old.get("signal", "negative_return"),
        "trigger_kwargs": old.get("trigger_kwargs", {}),
        "on_shift": shift,
        "n_estimate_samples": old.get("n_estimate_samples", 1024),
        "adaptive_target": old.get("adaptive_target"),
        "adaptive_signal": old.get("adaptive_signal", "gradient_ratio"),
        **{k: old.get(k) for k in _OLD_CONTINUAL_OPTIONS if regulariser is not None},
        **(old.get("regulariser_kwargs") or {}),
    }
    return {**saved, "continual": new}


def register_configs() -> None:
    """Store the schema as ``base_config`` (the primary config's first default)."""
    ConfigStore.instance().store(name="base_config", node=Config)


def _positive_int(where: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{where}={v!r} must be an integer in [1, inf)")


def validate(cfg: Any) -> None:
    """Range checks on a composed config (a ``DictConfig`` of :class:`Config`)."""
    _positive_int("n_envs", cfg.n_envs)
    _positive_int("checkpoint_freq", cfg.checkpoint_freq)
    if cfg.total_steps is not None:
        _positive_int("total_steps", cfg.total_steps)
    if cfg.seed < 0:
        raise ValueError(f"seed={cfg.seed} must be in [0, 2**32)")
    if not cfg.stream.schedule:
        raise ValueError("stream.schedule must have at least one phase")
    for i, ph in enumerate(cfg.stream.schedule):
        _positive_int(f"stream.schedule[{i}].steps", ph.steps)
    _positive_int("eval.eval_freq", cfg.eval.eval_freq)
    _positive_int("eval.n_eval_episodes", cfg.eval.n_eval_episodes)
    _positive_int("eval.n_envs", cfg.eval.n_envs)
    if cfg.eval.figure_every < 0:
        raise ValueError(f"eval.figure_every={cfg.eval.figure_every} must be in [0, inf)")
