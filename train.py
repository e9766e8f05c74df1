"""Train an agent on a task stream with a continual-learning callback, evaluating every task.

    python train.py                                   # quick curriculum, PPO + task-free SI
    python train.py stream=drift continual=si_plateau continual.c=0.5 seed=3
    python train.py -m continual=finetune,l2,ewc,si_boundary,si_plateau seed=0,1,2
    python train.py resume=outputs/2026-01-01/12-00-00   # continue after a crash

The run directory receives TensorBoard logs (``tb/``), ``checkpoint.pt``, ``config.yaml`` (the
resolved config), and at the end ``metrics.json``, ``success_matrix.csv``, ``curves.png``,
``matrix.png``, ``model.zip`` and ``continual_state.pt``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.vec_env import VecMonitor

from agents import load_agent, make_agent, set_torch_threads
from agents.checkpoint import (
    CHECKPOINT,
    CheckpointCallback,
    CheckpointError,
    load_checkpoint,
    restore_model_state,
    restore_rng,
    save_checkpoint,
)
from agents.guard import NonFiniteError, NonFiniteGuard
from agents.record import RunInfo, build_record, stream_info, strength_name, write_record
from configs.schema import Config, register_configs, upgrade_saved_config, validate
from continual import ContinualCallback
from continual.experimental import AdaptiveStrength
from continual.io import atomic_write_bytes
from continual.sb3 import ContinualEvalCallback, InfoArrayLogger
from envs import (
    EnvTask,
    StreamSpec,
    make_eval_envs,
    make_user_eval_envs,
    make_user_vec_env,
    make_vec_env,
)
from envs.user_stream import name_env_tasks

CONFIG_FILE = "config.yaml"
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIG_NAME = "config"

# `resume=<dir>` makes Hydra write into that run directory, its own files under .hydra/resume.
OmegaConf.register_new_resolver(
    "resume_or", lambda resume, default: resume or default, replace=True
)
OmegaConf.register_new_resolver(
    "hydra_subdir", lambda resume: ".hydra/resume" if resume else ".hydra", replace=True
)
register_configs()


# ---------------------------------------------------------------------- config -> objects
def env_tasks(cfg: DictConfig) -> tuple[list[str], dict[str, EnvTask] | None]:
    """Each phase's task name, and the Gymnasium env tasks by name (None: navigation tasks)."""
    phases = [p.task for p in cfg.stream.schedule]
    mappings = [isinstance(t, DictConfig) for t in phases]
    if not any(mappings):
        return [str(t) for t in phases], None
    if not all(mappings):
        raise ValueError(
            "stream.schedule mixes navigation task names and env tasks ({env: ...}); "
            "a stream uses one kind"
        )
    return name_env_tasks([OmegaConf.to_container(t) for t in phases])  # type: ignore[misc]


def stream_spec(cfg: DictConfig) -> tuple[StreamSpec, list[tuple[int, int]]]:
    """The StreamSpec of ``cfg.stream`` and each task's training window ``[start, end)``."""
    s = cfg.stream
    names, _ = env_tasks(cfg)
    schedule = [(n, int(p.steps)) for n, p in zip(names, s.schedule, strict=True)]
    drift = [OmegaConf.to_container(d) for d in s.drift]
    spec = StreamSpec(schedule=schedule, blur=s.blur, ramp=s.ramp, drift=drift)
    if s.joint:
        spec = StreamSpec.joint(spec.task_names, sum(d for _, d in schedule), drift=drift)
    return spec, spec.windows()


def continual_callback(cfg: DictConfig) -> ContinualCallback:
    """``cfg.continual`` built by its ``_target_``; ``name`` is only recorded, and
    ``adaptive_target``/``adaptive_signal`` become the experimental adaptive-strength add-on."""
    node = OmegaConf.to_container(cfg.continual, resolve=True)
    assert isinstance(node, dict)
    name, target, signal = (node.pop(k) for k in ("name", "adaptive_target", "adaptive_signal"))
    try:
        if target is not None:
            node["addons"] = [*(node.get("addons") or []), AdaptiveStrength(target, signal=signal)]
        return instantiate(node, seed=cfg.seed, _convert_="all")
    except InstantiationException as exc:
        raise ValueError(f"continual ({name}): {exc.__cause__ or exc}") from None
    except ValueError as exc:
        raise ValueError(f"continual ({name}): {exc}") from None


def reference(path: str | None) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """A single-task reference: (task -> own-window AUC, task -> env steps to the relearn
    threshold), from a run's metrics.json or a plain task -> AUC mapping file (no steps)."""
    if path is None:
        return None, None
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.json"
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"eval.reference={path}: cannot read a JSON file ({exc})") from exc
    if "per_task" not in data:
        return {str(k): float(v) for k, v in data.items()}, None
    auc = {k: float(v["auc_own_window"]) for k, v in data["per_task"].items()}
    steps = data.get("relearn", {}).get("steps_to_threshold", {})
    scratch = {k: float(v) for k, v in steps.items() if v is not None}
    return auc, scratch or None


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The config as flat ``a.b.c`` keys for TensorBoard's hparams tab."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = node if isinstance(node, (bool, int, float, str)) else str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


# ---------------------------------------------------------------------- run directory
def prepare(
    cfg: DictConfig, output_dir: Path, overrides: list[str]
) -> tuple[DictConfig, Path, dict[str, Any] | None, list[str]]:
    """(config, run dir, checkpoint payload or None, the run's overrides)."""
    if cfg.resume is None:
        run_dir = Path(cfg.run_dir or output_dir).resolve()
        if (run_dir / CHECKPOINT).exists():
            raise ValueError(
                f"run_dir={run_dir} already holds a run; continue it with resume={run_dir} "
                "or choose another run_dir"
            )
        cfg.run_dir = str(run_dir)
        return cfg, run_dir, None, overrides
    run_dir = Path(cfg.resume).resolve()
    others = [o for o in overrides if not o.startswith("resume=")]
    if others:
        raise ValueError(f"resume uses the run's saved config; remove the other overrides {others}")
    if not (run_dir / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"resume={cfg.resume}: not a run directory ({CONFIG_FILE} not found in {run_dir})"
        )
    try:
        written = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_FILE))
    except Exception as exc:
        raise CheckpointError(f"resume={cfg.resume}: unreadable {CONFIG_FILE} ({exc})") from exc
    try:
        upgraded = upgrade_saved_config(written)  # type: ignore[arg-type]
    except ValueError as exc:
        raise CheckpointError(f"resume={cfg.resume}: {exc}") from None
    try:
        saved = OmegaConf.merge(OmegaConf.structured(Config), upgraded)
    except Exception as exc:
        raise CheckpointError(f"resume={cfg.resume}: unreadable {CONFIG_FILE} ({exc})") from exc
    payload = load_checkpoint(run_dir)
    saved.run_dir = str(run_dir)
    saved.resume = str(run_dir)
    return saved, run_dir, payload, list(payload.get("overrides", overrides))


def print_table(metrics: dict[str, Any], wall: float, num_timesteps: int) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.2f}"

    table = Table(title=f"continual metrics after {num_timesteps:,} env steps ({wall:.0f} s)")
    for col in ("task", "final", "own window end", "forgetting", "AUC"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for name, m in metrics["per_task"].items():
        table.add_row(
            name, fmt(m["final"]), fmt(m["plasticity"]), fmt(m["forgetting"]), fmt(m["auc"])
        )
    table.add_row(
        "average",
        fmt(metrics["average_performance"]),
        fmt(metrics["average_plasticity"]),
        fmt(metrics["average_forgetting"]),
        fmt(metrics["average_auc"]),
        style="bold",
    )
    Console().print(table)


# ---------------------------------------------------------------------- entry points
def run(
    cfg: DictConfig,
    output_dir: str | Path,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Train (or resume, if ``cfg.resume``) one run described by a composed config.

    ``output_dir``: the run directory unless ``cfg.run_dir`` names one. ``on_eval``: called
    after every evaluation with ``(env steps, eval/* scalars)``. ``overrides``: recorded in
    metrics.json. Returns the metrics.json record.
    """
    started = time.perf_counter()
    cfg, run_dir, payload, overrides = prepare(cfg, Path(output_dir), list(overrides or []))
    validate(cfg)
    set_torch_threads(cfg.agent.torch_threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    if payload is None:
        resolved = OmegaConf.to_yaml(cfg, resolve=True)
        atomic_write_bytes(run_dir / CONFIG_FILE, resolved.encode())

    spec, windows = stream_spec(cfg)
    total_steps = int(cfg.total_steps or sum(int(p.steps) for p in cfg.stream.schedule))
    _, tasks = env_tasks(cfg)
    if tasks is None:
        world = OmegaConf.to_container(cfg.stream.world)
        nav = make_vec_env(spec, n_envs=cfg.n_envs, seed=cfg.seed, world=world)
        eval_envs = make_eval_envs(
            nav.task_names, n_envs=cfg.eval.n_envs, seed=cfg.seed, world=world
        )
    else:
        observe = list(cfg.stream.observe)
        nav = make_user_vec_env(tasks, spec, n_envs=cfg.n_envs, seed=cfg.seed, observe=observe)
        eval_envs = make_user_eval_envs(
            tasks, nav.task_names, n_envs=cfg.eval.n_envs, seed=cfg.seed, observe=observe
        )
    env = VecMonitor(nav)  # episode returns/lengths for SB3's rollout/* scalars
    tb_dir = run_dir / "tb"

    cont = continual_callback(cfg)
    reference_auc, scratch_steps = reference(cfg.eval.reference)
    evaluator = ContinualEvalCallback(
        eval_envs,
        eval_freq=cfg.eval.eval_freq,
        n_eval_episodes=cfg.eval.n_eval_episodes,
        task_windows=windows,
        stochastic=cfg.eval.stochastic,
        eval_at_start=cfg.eval.eval_at_start,
        seed=cfg.seed,
        figure_every=cfg.eval.figure_every,
        hparams=flat_hparams(cfg),
        reference_auc=reference_auc,
        scratch_steps=scratch_steps,
        visits=spec.visits(),
        on_eval=on_eval,
    )
    if payload is None:
        model = make_agent(cfg.agent, env, seed=cfg.seed, tensorboard_log=tb_dir)
    else:
        model = load_agent(cfg.agent, payload["model_zip"], env, tensorboard_log=tb_dir)
        model.num_timesteps = int(payload["num_timesteps"])
        nav.set_stream_state(payload["stream"])
        cont.load_state_dict(payload["continual"])
        evaluator.load_state_dict(payload["eval"])
        restore_model_state(model, payload)
        restore_rng(payload["rng"])
        print(f"resuming {run_dir} at env step {model.num_timesteps:,} of {total_steps:,}")

    def extras() -> dict[str, Any]:
        return {
            "continual": cont.state_dict(),
            "stream": nav.get_stream_state(),
            "eval": evaluator.state_dict(),
            "overrides": overrides,
        }

    checkpointer = CheckpointCallback(run_dir, cfg.checkpoint_freq, extras)

    def describe_checkpoint() -> str:
        step = checkpointer.last_saved_step
        if step is None and payload is not None:
            step = int(payload["num_timesteps"])
        if step is None:
            return "No checkpoint was written."
        return (
            f"The last good checkpoint ({run_dir / CHECKPOINT}, env step {step:,}) is "
            f"intact; fix the cause, then continue with resume={run_dir}."
        )

    def regulariser_tensors() -> dict[str, Any]:
        reg = cont.regulariser
        if reg is None:
            return {}
        out = {f"continual importance {k!r}": v for k, v in reg.importance.items()}
        out.update({f"continual anchor {k!r}": v for k, v in reg.anchor.items()})
        return out

    guard = NonFiniteGuard(regulariser_tensors, describe_checkpoint)
    callbacks = [
        cont,
        evaluator,
        InfoArrayLogger("mixture", "stream/weight_", scalar_keys=("dominant_task_id",)),
    ]
    callbacks += instantiate(cfg.callbacks, _convert_="all")
    callbacks += [guard, checkpointer]  # guard first: a bad state is never checkpointed

    remaining = total_steps - model.num_timesteps
    if remaining > 0:
        try:
            model.learn(
                total_timesteps=remaining,
                callback=CallbackList(callbacks),
                progress_bar=cfg.progress_bar,
                tb_log_name="run",
                reset_num_timesteps=payload is None,
            )
        except NonFiniteError:
            raise
        except (FloatingPointError, ValueError, RuntimeError) as exc:
            bad = guard.find_non_finite()
            if bad or isinstance(exc, FloatingPointError):
                # The message names the cause; its traceback (tensor dumps) would bury it.
                raise guard.error(bad or ["see cause"], exc) from None
            raise
        save_checkpoint(run_dir, model, extras())
    elif evaluator.final_metrics is None:
        print(f"{run_dir} already reached {model.num_timesteps:,} env steps; writing outputs")

    metrics = evaluator.compute_metrics()
    c = cfg.continual
    strength = strength_name(c.regulariser, c.adaptive_target)
    run_info: RunInfo = {
        "method": c.name,
        "stream": cfg.stream.name,
        "algo": cfg.agent.algo,
        "seed": int(cfg.seed),
        # c as the method's preset and the overrides set it, not the config's null.
        "strength": c.adaptive_target if strength == "adaptive_target" else cont.strength,
        "strength_name": strength,
        "overrides": overrides,
        "total_steps": total_steps,
        "num_timesteps": int(model.num_timesteps),
        "consolidations": int(cont.n_consolidations),
        "shifts": int(cont.n_shifts),
        "state_bytes": cont.state_bytes(),
    }
    success = evaluator.matrix("success").tolist()
    record = build_record(run_info, success, metrics, stream_info(spec, cfg.stream.joint))
    write_record(run_dir, record)
    evaluator.save_outputs(run_dir)
    model.save(run_dir / "model.zip")
    cont.save(run_dir / "continual_state.pt")
    print_table(metrics, time.perf_counter() - started, int(model.num_timesteps))
    print(f"outputs in {run_dir}")
    return record


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """The CLI: Hydra composes the config; returns the average performance (for sweepers)."""
    hc = HydraConfig.get()
    record = run(cfg, hc.runtime.output_dir, overrides=list(hc.overrides.task))
    return float(record["average_performance"])


if __name__ == "__main__":
    main()
