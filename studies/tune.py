"""Tune the strength (c, or the adaptive target), SI's damping xi and the learning rate with Optuna.

Every trial is an ordinary training run: the Hydra config of ``train.py``, composed from the
same config tree with the same overrides, plus the overrides the sampler draws. Its outputs go
to ``<out>/trial_<n>/`` (``metrics.json``, ``success_matrix.csv``, plots, ``.hydra/``), so
``python -m studies.report <out>`` reports a study like any multirun.

Examples::

    python -m studies.tune continual=si_plateau stream=quick --n-trials 50
    # more workers on the same study, on this or other machines (shared file system or DB):
    python -m studies.tune continual=si_plateau stream=quick --n-trials 50 \\
        --study-name si_quick --storage runs/tune/si_quick/study.journal
    python -m studies.tune continual=si_plateau --storage postgresql://user@host/optuna \\
        --study-name s1
    # own search space: KEY=log:LOW:HIGH | float:LOW:HIGH | int:LOW:HIGH | choice:A,B,...
    python -m studies.tune continual=si_plateau --param continual.c=log:0.01:10 \\
        --param seed=choice:0,1

Objective (maximised, ``--objective``): by default ``average_performance``, the final success
averaged over tasks. It counts a forgotten task as a failure and a blocked task too, so it
rewards learning every task and keeping it. ``success_minus_forgetting`` (final success minus
average forgetting) is available, but ranks a run that never learns above one that learns each
task and then forgets; any other number in metrics.json can be named as well.
After each periodic evaluation the trial reports ``eval/avg_success`` at that env step, and the
pruner (median rule by default) stops trials that are worse than the median of earlier trials
at the same step.

Storage: a database URL (``sqlite:///study.db``, ``postgresql://...``; Optuna's RDB storage) or
a path to a journal file (Optuna's ``JournalStorage(JournalFileBackend(path))``, safe for
several processes on one machine or on a shared file system). Default:
``<out>/study.journal``. Running the command again with the same study name and storage
continues the study. ``--n-trials`` counts the trials of this process; ``--max-trials`` caps
the study's finished trials over all processes.

At the end, the best trial's overrides are printed as a ``python train.py ...`` command line.
A failing trial is recorded as failed with its error (also in ``trial_<n>/error.txt``) and
the study goes on, unless ``--fail-fast``; the command exits non-zero when no trial of the
study has completed.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from agents.record import strength_name
from continual.io import atomic_write_bytes
from studies.report.records import success_minus_forgetting

ROOT = Path(__file__).resolve().parents[1]
PROG = "python -m studies.tune"

#: Signature of the training entry point: (cfg, output_dir, on_eval) -> metrics dict.
RunFn = Callable[..., dict[str, Any]]
#: Called after each periodic evaluation with (env steps, scalars).
OnEval = Callable[[int, dict[str, float]], None]

REPORT_KEY = "eval/avg_success"
DEFAULT_OBJECTIVE = "average_performance"


def objective_value(metrics: dict[str, Any], name: str) -> float:
    """The value of objective ``name`` for one run's metrics (the metrics.json record).

    ``"success_minus_forgetting"`` is computed; any other name is a number of the record.

    :raises ValueError: the record has no finite number under ``name``; lists the numbers it has.
    """
    if name == "success_minus_forgetting":
        value = success_minus_forgetting(metrics)
    else:
        v = metrics.get(name)
        value = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
    if not math.isfinite(value):
        numbers = sorted(
            k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        )
        raise ValueError(
            f"objective {name!r} is not a finite number in the run's metrics "
            f"(got {metrics.get(name)!r}); numbers there: {numbers}"
        )
    return value


# ---------------------------------------------------------------------------------------------
# Search space


@dataclass(frozen=True)
class Param:
    """One dimension of the search space: a dotted config key and its distribution.

    ``kind``: ``"log"`` (float, log-uniform), ``"float"``, ``"int"`` or ``"choice"``.
    """

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "log":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))
        return trial.suggest_categorical(self.key, list(self.choices))

    def override(self, value: Any) -> str:
        """The Hydra override for a sampled value; floats keep 6 significant digits, so the
        printed override is exactly what the run used."""
        if isinstance(value, float):
            return f"{self.key}={value:.6g}"
        return f"{self.key}={value}"

    def spec(self) -> str:
        if self.kind == "choice":
            return f"{self.key}=choice:{','.join(self.choices)}"
        return f"{self.key}={self.kind}:{self.low:g}:{self.high:g}"


_KINDS = ("log", "float", "int", "choice")


def parse_param(spec: str) -> Param:
    """Parse ``KEY=log:LOW:HIGH``, ``KEY=float:LOW:HIGH``, ``KEY=int:LOW:HIGH`` or
    ``KEY=choice:A,B,...``.

    :raises ValueError: malformed spec or bounds; the message quotes the spec.
    """
    key, sep, dist = spec.partition("=")
    kind, _, rest = dist.partition(":")
    if not sep or not key or kind not in _KINDS or not rest:
        raise ValueError(
            f"--param {spec!r}: expected KEY=log:LOW:HIGH, KEY=float:LOW:HIGH, "
            f"KEY=int:LOW:HIGH or KEY=choice:A,B,..."
        )
    if kind == "choice":
        choices = tuple(c for c in rest.split(",") if c)
        if not choices:
            raise ValueError(f"--param {spec!r}: choice needs at least one value")
        return Param(key, kind, choices=choices)
    parts = rest.split(":")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--param {spec!r}: LOW and HIGH must be two numbers") from None
    if not low < high:
        raise ValueError(f"--param {spec!r}: need LOW < HIGH, got {low:g} >= {high:g}")
    if kind == "log" and low <= 0:
        raise ValueError(f"--param {spec!r}: log scale needs LOW > 0, got {low:g}")
    return Param(key, kind, low, high)


_MISSING = object()

#: Default log-uniform range per strength key (:func:`agents.record.strength_name`).
STRENGTH_BOUNDS: dict[str, tuple[float, float]] = {
    "adaptive_target": (0.01, 10.0),
    "c": (1e-3, 1e2),
}


def default_space(cfg: DictConfig) -> list[Param]:
    """The default search space for a composed config.

    - the strength: ``continual.adaptive_target`` (log 0.01-10) when the method runs in
      adaptive mode, else ``continual.c`` (log 1e-3-1e2); nothing when there is no regulariser;
    - SI's damping ``continual.xi`` (log 1e-4-1e-1) when the regulariser is SI;
    - ``agent.learning_rate`` (log 3e-5-3e-3).
    Keys that the config does not have are left out.
    """
    space: list[Param] = []
    reg = OmegaConf.select(cfg, "continual.regulariser", default=None)
    strength = strength_name(reg, OmegaConf.select(cfg, "continual.adaptive_target", default=None))
    if strength is not None:
        space.append(Param(f"continual.{strength}", "log", *STRENGTH_BOUNDS[strength]))
        if str(reg).lower() == "si":
            space.append(Param("continual.xi", "log", 1e-4, 1e-1))
    space.append(Param("agent.learning_rate", "log", 3e-5, 3e-3))
    return [p for p in space if OmegaConf.select(cfg, p.key, default=_MISSING) is not _MISSING]


def check_space(cfg: DictConfig, space: Sequence[Param]) -> None:
    """Every searched key must exist in the config (a typo would otherwise be a silent no-op).

    :raises ValueError: naming the key and the keys that exist at its parent.
    """
    for p in space:
        if OmegaConf.select(cfg, p.key, default=_MISSING) is _MISSING:
            parent = p.key.rsplit(".", 1)[0] if "." in p.key else ""
            node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
            known = sorted(node.keys()) if isinstance(node, DictConfig) else []
            where = f"'{parent}'" if parent else "the top level"
            raise ValueError(
                f"search-space key '{p.key}' is not in the config; keys at {where}: {known}"
            )


# ---------------------------------------------------------------------------------------------
# Storage, config, training app


def make_storage(spec: str | None, out_dir: Path) -> str | optuna.storages.BaseStorage:
    """A database URL is passed to Optuna as is; anything else is a journal file path."""
    if spec and "://" in spec:
        return spec
    path = Path(spec) if spec else out_dir / "study.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path)))


def describe_storage(spec: str | None, out_dir: Path) -> str:
    if spec and "://" in spec:
        return spec
    return str(Path(spec) if spec else out_dir / "study.journal")


@dataclass
class App:
    """Where the training config lives and how a run is started."""

    config_dir: Path
    config_name: str
    run: RunFn
    takes_overrides: bool = False
    """``run`` accepts ``overrides=`` (recorded in metrics.json)."""


DEFAULT_APP = "train:run"


def load_app(
    entry: str = DEFAULT_APP, config_dir: str | None = None, config_name: str | None = None
) -> App:
    """The training app: ``entry`` names ``module:function``, by default ``train.py``'s
    ``run(cfg, output_dir=..., on_eval=...)``. The config directory and primary config name
    default to the module's ``CONFIG_DIR`` and ``CONFIG_NAME`` (else ``configs/`` at the
    repository root, and ``config``).

    :raises ValueError: ``entry`` is malformed, or the module has no such callable.
    """
    module_name, sep, func_name = entry.partition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"--app {entry!r}: expected MODULE:FUNCTION, e.g. train:run")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if entry == DEFAULT_APP:
        # Imported here, not at the top: it builds Hydra's config store and loads SB3, which
        # a study with its own --app does not need.
        import train as module
    else:
        import importlib

        module = importlib.import_module(module_name)
    run = getattr(module, func_name, None)
    if not callable(run):
        raise ValueError(
            f"--app {entry!r}: {module_name} has no callable {func_name}(cfg, output_dir=..., "
            "on_eval=...) to start trials"
        )
    default_dir = getattr(module, "CONFIG_DIR", ROOT / "configs")
    cdir = Path(config_dir) if config_dir else Path(default_dir)
    cname = config_name or getattr(module, "CONFIG_NAME", "config")
    import inspect

    try:
        takes_overrides = "overrides" in inspect.signature(run).parameters
    except (TypeError, ValueError):
        takes_overrides = False
    return App(
        config_dir=cdir.resolve(), config_name=cname, run=run, takes_overrides=takes_overrides
    )


def compose(app: App, overrides: Sequence[str]) -> DictConfig:
    """Compose the training config with ``overrides``, exactly as ``train.py`` would.

    Raises Hydra's own errors (unknown config group option, unknown key, bad type), whose
    messages name the override.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(app.config_dir), version_base="1.3", job_name="tune"):
        return hydra_compose(config_name=app.config_name, overrides=list(overrides))


def _write_atomic(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _write_hydra_dir(trial_dir: Path, cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Hydra's ``.hydra/`` layout, so a trial directory reads like a multirun job directory."""
    hydra_dir = trial_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(hydra_dir / "config.yaml", OmegaConf.to_yaml(cfg))
    _write_atomic(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(list(overrides)))


# ---------------------------------------------------------------------------------------------
# The study


@dataclass
class TuneResult:
    study: optuna.Study
    best_overrides: list[str] | None
    out_dir: Path


def make_objective(
    app: App,
    base_overrides: Sequence[str],
    space: Sequence[Param],
    out_dir: Path,
    log: Callable[[str], None] = print,
    objective_name: str = DEFAULT_OBJECTIVE,
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: one training run per trial, pruned on ``eval/avg_success``."""

    def objective(trial: optuna.Trial) -> float:
        sampled = [p.override(p.suggest(trial)) for p in space]
        overrides = [*base_overrides, *sampled]
        trial.set_user_attr("overrides", overrides)
        trial_dir = out_dir / f"trial_{trial.number:04d}"
        trial.set_user_attr("dir", str(trial_dir))
        log(f"[trial {trial.number}] {' '.join(sampled)}")
        t0 = time.perf_counter()
        try:
            cfg = compose(app, overrides)
            _write_hydra_dir(trial_dir, cfg, overrides)

            def on_eval(step: int, scalars: dict[str, float]) -> None:
                value = scalars.get(REPORT_KEY)
                if value is None or not math.isfinite(value):
                    return
                trial.report(float(value), int(step))
                if trial.should_prune():
                    raise optuna.TrialPruned(
                        f"trial {trial.number} pruned at step {step}: "
                        f"{REPORT_KEY}={value:.3f} is below the median of earlier trials"
                    )

            extra = {"overrides": list(overrides)} if app.takes_overrides else {}
            metrics = app.run(cfg, output_dir=trial_dir, on_eval=on_eval, **extra)
        except optuna.TrialPruned as e:
            log(f"[trial {trial.number}] {e}")
            trial_dir.mkdir(parents=True, exist_ok=True)
            (trial_dir / "pruned.txt").write_text(f"{e}\n")
            raise
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            trial.set_user_attr("error", msg)
            trial_dir.mkdir(parents=True, exist_ok=True)
            (trial_dir / "error.txt").write_text(
                f"overrides: {' '.join(overrides)}\n\n{traceback.format_exc()}"
            )
            log(
                f"[trial {trial.number}] FAILED: {msg}\n"
                f"    overrides: {' '.join(overrides)}\n    traceback: {trial_dir / 'error.txt'}"
            )
            raise
        for key in ("average_performance", "average_forgetting", "average_plasticity"):
            v = metrics.get(key)
            if isinstance(v, (int, float)):
                trial.set_user_attr(key, float(v))
        trial.set_user_attr("wall_time_s", round(time.perf_counter() - t0, 2))
        try:
            value = objective_value(metrics, objective_name)
        except ValueError as e:
            trial.set_user_attr("error", f"ValueError: {e}")
            log(f"[trial {trial.number}] FAILED: {e}")
            raise
        log(f"[trial {trial.number}] objective {value:.4f}")
        return value

    return objective


def shell_command(program: str, args: Sequence[str]) -> str:
    """A command line safe to paste into a POSIX shell (list overrides hold braces and commas,
    which the shell would expand)."""
    return " ".join([program, *(shlex.quote(a) for a in args)])


def _counts(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


def best_command(study: optuna.Study) -> list[str] | None:
    """The best completed trial's overrides, or None when no trial has completed."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return None
    return list(study.best_trial.user_attrs.get("overrides", []))


def tune(
    overrides: Sequence[str] = (),
    *,
    n_trials: int | None = 20,
    max_trials: int | None = None,
    timeout: float | None = None,
    study_name: str = "tune",
    storage: str | None = None,
    out_dir: str | Path | None = None,
    params: Sequence[str] | None = None,
    sampler: str = "tpe",
    seed: int | None = None,
    pruner: str = "median",
    pruner_startup_trials: int = 5,
    pruner_warmup_steps: int = 0,
    fail_fast: bool = False,
    objective: str = DEFAULT_OBJECTIVE,
    app: App | None = None,
    log: Callable[[str], None] = print,
) -> TuneResult:
    """Run (or continue) a study. See the module docstring; CLI flags map one to one.

    :raises ValueError: bad search space, sampler or pruner name, or a search key the config lacks.
    :raises hydra.errors.*: the base overrides do not compose (e.g. a nonexistent config option).
    """
    if sampler not in ("tpe", "random"):
        raise ValueError(f"sampler={sampler!r} is unknown; allowed: ['tpe', 'random']")
    if pruner not in ("median", "none"):
        raise ValueError(f"pruner={pruner!r} is unknown; allowed: ['median', 'none']")
    if n_trials is not None and n_trials < 1:
        raise ValueError(f"n_trials={n_trials} must be in [1, inf)")
    app = app or load_app()
    out = Path(out_dir) if out_dir is not None else ROOT / "runs" / "tune" / study_name
    out.mkdir(parents=True, exist_ok=True)

    # Compose once before any trial: a bad override fails here, with Hydra's message.
    base_cfg = compose(app, overrides)
    space = [parse_param(p) for p in params] if params else default_space(base_cfg)
    if not space:
        raise ValueError("the search space is empty; give --param KEY=...")
    check_space(base_cfg, space)
    searched = {p.key for p in space}
    clash = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in searched]
    if clash:
        raise ValueError(f"overrides {clash} set keys that are also searched; drop one of them")

    prn: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=pruner_startup_trials, n_warmup_steps=pruner_warmup_steps
        )
        if pruner == "median"
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=study_name,
        storage=make_storage(storage, out),
        pruner=prn,
        direction="maximize",
        load_if_exists=True,
    )
    previous = len(study.get_trials(deepcopy=False))
    recorded = study.user_attrs.get("objective")
    if recorded is not None and recorded != objective:
        raise ValueError(
            f"study '{study_name}' maximises {recorded!r}; this run asks for {objective!r}. "
            "Values of different objectives cannot be compared: use another --study-name."
        )
    study.set_user_attr("objective", objective)
    # A seeded sampler restarted on a continued study would draw the trials it drew before;
    # offsetting by the study's size keeps a rerun reproducible without repeating itself.
    smp_seed = None if seed is None else seed + previous
    study.sampler = (
        optuna.samplers.TPESampler(seed=smp_seed)
        if sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=smp_seed)
    )
    where = describe_storage(storage, out)
    log(
        f"study '{study_name}' in {where}: "
        + (f"continuing from {previous} trials" if previous else "new")
        + f"; searching {', '.join(p.spec() for p in space)}"
    )
    join = [*overrides, "--study-name", study_name, "--storage", where, "--out", str(out)]
    log("more workers can join: " + shell_command(PROG, join))
    study.set_user_attr("base_overrides", list(overrides))
    callbacks = []
    if max_trials is not None:
        callbacks.append(
            optuna.study.MaxTrialsCallback(
                max_trials,
                states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED),
            )
        )
    study.optimize(
        make_objective(app, overrides, space, out, log, objective),
        n_trials=n_trials,
        timeout=timeout,
        catch=() if fail_fast else (Exception,),
        callbacks=callbacks,
    )
    best = best_command(study)
    _write_summary(study, out, best)
    return TuneResult(study=study, best_overrides=best, out_dir=out)


def _write_summary(study: optuna.Study, out: Path, best: list[str] | None) -> None:
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "last_step": t.last_step,
                **{k: v for k, v in t.user_attrs.items()},
            }
        )
    summary = {
        "study_name": study.study_name,
        "objective": f"{study.user_attrs.get('objective', DEFAULT_OBJECTIVE)} (maximised)",
        "counts": _counts(study),
        "best": None
        if best is None
        else {
            "number": study.best_trial.number,
            "value": study.best_value,
            "overrides": best,
            "command": shell_command("python train.py", best),
        },
        "trials": rows,
    }
    _write_atomic(out / "study.json", json.dumps(summary, indent=2, default=str))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tune c (or the adaptive target), xi and the learning rate with Optuna. "
        "Positional arguments are Hydra overrides of train.py's config, applied to every "
        "trial. Objective: final average success (maximised), see --objective.",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. continual=si_plateau")
    parser.add_argument("--n-trials", type=int, default=20, help="trials run by this process")
    parser.add_argument(
        "--max-trials",
        type=int,
        default=None,
        help="stop when the study (all processes) has this many complete or pruned trials",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds for this process")
    parser.add_argument("--study-name", default="tune")
    parser.add_argument(
        "--storage",
        default=None,
        help="database URL (sqlite:///x.db, postgresql://...) or journal file path "
        "(default: <out>/study.journal)",
    )
    parser.add_argument(
        "--out", default=None, help="trial directories (default: runs/tune/<study>)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=None,
        help="search dimension KEY=log:LOW:HIGH|float:LOW:HIGH|int:LOW:HIGH|choice:A,B; "
        "repeatable; replaces the default space (strength, xi, learning rate)",
    )
    parser.add_argument("--sampler", default="tpe", choices=["tpe", "random"])
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="sampler seed (offset by the study's trial count; give concurrent workers "
        "different seeds or none)",
    )
    parser.add_argument("--pruner", default="median", choices=["median", "none"])
    parser.add_argument("--pruner-startup-trials", type=int, default=5)
    parser.add_argument(
        "--pruner-warmup-steps", type=int, default=0, help="env steps before pruning may act"
    )
    parser.add_argument(
        "--objective",
        default=DEFAULT_OBJECTIVE,
        help="maximised: average_performance (final success averaged over tasks, default), "
        "success_minus_forgetting, or any number of metrics.json",
    )
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failing trial")
    parser.add_argument(
        "--app",
        default=DEFAULT_APP,
        help=f"training entry point MODULE:FUNCTION (default {DEFAULT_APP})",
    )
    parser.add_argument("--config-dir", default=None, help="default: the app module's CONFIG_DIR")
    parser.add_argument("--config-name", default=None, help="default: its CONFIG_NAME or 'config'")
    args = parser.parse_args(argv)

    # One concise line per trial comes from the objective; keep Optuna's warnings (failures).
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        app = load_app(args.app, args.config_dir, args.config_name)
        result = tune(
            args.overrides,
            n_trials=args.n_trials,
            max_trials=args.max_trials,
            timeout=args.timeout,
            study_name=args.study_name,
            storage=args.storage,
            out_dir=args.out,
            params=args.param,
            sampler=args.sampler,
            seed=args.seed,
            pruner=args.pruner,
            pruner_startup_trials=args.pruner_startup_trials,
            pruner_warmup_steps=args.pruner_warmup_steps,
            fail_fast=args.fail_fast,
            objective=args.objective,
            app=app,
        )
    except Exception as e:
        # Config errors (Hydra's messages name the bad override), bad search spaces, and with
        # --fail-fast the first failing trial.
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2

    study = result.study
    counts = _counts(study)
    print(
        f"\nstudy '{study.study_name}': {len(study.trials)} trials ("
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f"); trial directories in {result.out_dir}"
    )
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    for t in failed:
        err = t.user_attrs.get("error", "see the log above")
        print(f"  trial {t.number} failed: {err}")
    if result.best_overrides is None:
        print("no trial has completed: no best overrides", file=sys.stderr)
        return 1
    best = study.best_trial
    extra = ", ".join(
        f"{k} {best.user_attrs[k]:.3f}"
        for k in ("average_performance", "average_forgetting", "average_plasticity")
        if k in best.user_attrs
    )
    print(
        f"best trial #{best.number}: objective {best.value:.4f}" + (f" ({extra})" if extra else "")
    )
    print("best overrides, ready to paste:")
    print("  " + shell_command("python train.py", result.best_overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
