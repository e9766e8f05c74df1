"""Study report: aggregate the ``metrics.json`` of many runs into one table, plots and Markdown.

Works on any directory tree that holds run directories with a ``metrics.json`` each: a Hydra
multirun (``multirun/<date>/<time>/<job>/``), a tuning study written by ``tune.py``, or a folder
of single runs. It reads only those JSON files (and, as a fallback, Hydra's ``.hydra/*.yaml``
next to them), so it knows nothing about the environments or the agents.

Usage::

    python -m continual.report multirun/2026-01-01/12-00-00            # writes <dir>/report/
    python -m continual.report runs/study_a runs/study_b --out docs/results

Outputs (in ``--out``, default ``<first dir>/report``):

- ``report.md``: the summary table and the plots, ready to paste into a README;
- ``summary.csv``: one row per (method, setting): number of seeds, and for each metric the mean
  over seeds and a percentile-bootstrap interval of that mean (90% by default);
- ``runs.csv``: one row per run;
- ``methods.png``: method comparison bars with the intervals;
- ``curves.png``: success per task against env steps, mean over seeds with its interval band;
- ``sensitivity.png``: final average success against the strength (c or the adaptive target),
  when the runs have one.

A run's *setting* is its Hydra overrides minus the seed and the method choice, so that seeds
pool and everything else that was swept separates. The fields read from ``metrics.json`` are
listed in :data:`SCHEMA_FIELDS`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METRICS_FILE = "metrics.json"
MATRIX_CSV = "success_matrix.csv"

#: Fields of ``metrics.json`` that this module reads. Everything else is ignored.
SCHEMA_FIELDS: dict[str, str] = {
    "run.method": "name of the continual method (the `continual` config choice)",
    "run.seed": "integer seed",
    "run.stream": "name of the stream config (optional)",
    "run.strength": "c, or the adaptive target in adaptive mode; null when not applicable",
    "run.strength_name": '"c" | "adaptive_target" | null',
    "run.overrides": "the run's Hydra task overrides, e.g. ['continual=si_plateau', 'seed=0']",
    "task_names": "task names, the column order of the success matrix (alias: tasks)",
    "eval_steps": "env steps at which each evaluation ran (rows of the success matrix)",
    "success_matrix": "S[eval, task], success rates in [0, 1]; when absent, the `success/<task>` "
    "columns of success_matrix.csv next to metrics.json are read",
    "average_performance": "mean over tasks of the final success",
    "average_forgetting": "mean over tasks of (success at the end of the own window - final "
    "success), as continual.metrics.summarize computes it; `forgetting` is read as an alias",
    "forward_transfer": "optional scalar",
    "<any other top-level number>": "usable as a table metric (--metrics)",
}
"""Scalars may also sit in a nested ``"metrics"`` object (e.g. the output of
:func:`continual.metrics.summarize` stored under that key)."""

#: Metrics shown in the table by default, with their display names.
DEFAULT_METRICS: dict[str, str] = {
    "average_performance": "final avg success",
    "average_forgetting": "forgetting",
    "average_plasticity": "plasticity",
}

#: Display names of further metrics (any number of metrics.json can be tabulated).
METRIC_NAMES: dict[str, str] = {
    **DEFAULT_METRICS,
    "forward_transfer": "forward transfer",
    "success_minus_forgetting": "success - forgetting",
    "average_auc": "AUC",
}

#: Overrides that never define a setting: the seed pools, the method has its own column, and
#: these only say where outputs go or how runs are launched.
_NON_SETTING_KEYS = ("seed", "continual", "hydra", "output_dir", "run_dir", "resume")


def success_minus_forgetting(metrics: dict[str, Any]) -> float:
    """Final average success minus average forgetting.

    A missing ``forgetting`` counts as 0, so a single-task run scores its final success. NaN
    when ``average_performance`` is missing. Note that it ranks a run that never learns (0)
    above one that learns each task and forgets the earlier ones (negative); final average
    success alone already counts forgotten tasks as failures.
    """
    avg = _as_float(metrics.get("average_performance"))
    forg = _as_float(metrics.get("average_forgetting", metrics.get("forgetting")))
    return avg - (0.0 if math.isnan(forg) else forg)


@dataclass
class RunRecord:
    """One run, as read from its ``metrics.json``.

    ``success`` has shape (n_evals, n_tasks) and ``eval_steps`` shape (n_evals,); both are
    empty when the file has no matrix.
    """

    path: Path
    method: str
    seed: int | None
    setting: str
    base_setting: str
    strength: float | None
    strength_name: str | None
    metrics: dict[str, float]
    tasks: list[str] = field(default_factory=list)
    eval_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    success: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    overrides: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    """The runs that could be read, and what was skipped and why."""

    runs: list[RunRecord]
    skipped: list[tuple[Path, str]]
    missing: list[tuple[Path, str]]
    """Hydra job directories (they hold ``.hydra/``) without a ``metrics.json``, and why:
    failed, pruned or unfinished runs."""
    common: list[str] = field(default_factory=list)
    """Overrides shared by all runs (e.g. a shortened schedule): left out of the settings."""


# ---------------------------------------------------------------------------------------------
# Reading


def _as_float(x: Any) -> float:
    if x is None or isinstance(x, bool):
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _override_key(override: str) -> str:
    key = override.split("=", 1)[0]
    return key.lstrip("+~")


def _read_yaml(path: Path) -> Any:
    # omegaconf is a hard dependency of the project and reads Hydra's own files faithfully.
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def _hydra_fallback(run_dir: Path) -> dict[str, Any]:
    """Method, seed, stream and overrides from Hydra's ``.hydra/`` files, where they exist."""
    out: dict[str, Any] = {}
    hydra_dir = run_dir / ".hydra"
    if (hydra_dir / "overrides.yaml").is_file():
        overrides = _read_yaml(hydra_dir / "overrides.yaml") or []
        out["overrides"] = [str(o) for o in overrides]
        for o in out["overrides"]:
            key, _, value = o.partition("=")
            key = key.lstrip("+~")
            if key == "continual":
                out.setdefault("method", value)
            elif key == "seed":
                out.setdefault("seed", value)
            elif key == "stream":
                out.setdefault("stream", value)
    if (hydra_dir / "hydra.yaml").is_file():
        choices = (_read_yaml(hydra_dir / "hydra.yaml") or {}).get("hydra", {})
        choices = (choices.get("runtime") or {}).get("choices") or {}
        out.setdefault("method", choices.get("continual"))
        out.setdefault("stream", choices.get("stream"))
    if "seed" not in out and (hydra_dir / "config.yaml").is_file():
        out["seed"] = (_read_yaml(hydra_dir / "config.yaml") or {}).get("seed")
    return out


def _read_matrix_csv(path: Path, tasks: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(task names, steps, S) from the ``step,success/<task>,...`` columns of a matrix CSV;
    empty arrays when the file is absent."""
    if not path.is_file():
        return tasks, np.zeros(0), np.zeros((0, 0))
    import csv

    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        header = rows[0]
        cols = [i for i, h in enumerate(header) if h.startswith("success/")]
        names = [header[i].split("/", 1)[1] for i in cols]
        if tasks and set(tasks) == set(names):
            cols = [cols[names.index(t)] for t in tasks]
            names = list(tasks)
        steps = np.array([float(r[header.index("step")]) for r in rows[1:]])
        S = np.array([[float(r[i]) for i in cols] for r in rows[1:]]).reshape(len(steps), -1)
    except (IndexError, ValueError) as e:
        raise ValueError(f"{path}: malformed success matrix ({e})") from e
    return names, steps, S


def _setting_items(overrides: Sequence[str]) -> list[str]:
    """The overrides that can separate groups: not the seed, method, output or hydra ones."""
    kept = []
    for o in overrides:
        key = _override_key(o)
        if key in _NON_SETTING_KEYS or key.startswith(("hydra.", "hydra/")):
            continue
        kept.append(o.lstrip("+"))
    return sorted(kept)


def _setting(
    overrides: Sequence[str], strength_name: str | None, drop: Iterable[str] = ()
) -> tuple[str, str]:
    """(setting, base_setting): overrides that separate groups, with/without the strength;
    ``drop``: overrides shared by every run of the study, which separate nothing."""
    dropped = set(drop)
    kept = [o for o in _setting_items(overrides) if o not in dropped]
    setting = " ".join(kept)
    if strength_name:
        base = [o for o in kept if _override_key(o).rsplit(".", 1)[-1] != strength_name]
    else:
        base = kept
    return setting, " ".join(base)


def load_run(path: str | Path) -> RunRecord:
    """Read one ``metrics.json`` (the file, or the run directory holding it).

    Raises:
        ValueError: the file is not valid JSON, is not an object, or has a malformed matrix;
            the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read metrics ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")

    run = data.get("run") or {}
    if not isinstance(run, dict):
        raise ValueError(f"{path}: field 'run' must be an object")
    fallback = _hydra_fallback(path.parent)
    method = run.get("method") or fallback.get("method") or "unknown"
    seed_raw = run.get("seed", fallback.get("seed"))
    try:
        seed = None if seed_raw is None else int(seed_raw)
    except (TypeError, ValueError):
        seed = None
    overrides = run.get("overrides") or fallback.get("overrides", [])
    overrides = [str(o) for o in overrides]
    strength_name = run.get("strength_name")
    strength = _as_float(run.get("strength"))

    tasks = [str(t) for t in data.get("task_names") or data.get("tasks") or []]
    if data.get("success_matrix") is not None:
        success = np.asarray(data["success_matrix"], dtype=float)
    else:
        tasks, csv_steps, success = _read_matrix_csv(path.parent / MATRIX_CSV, tasks)
        if csv_steps.size and not data.get("eval_steps"):
            data["eval_steps"] = csv_steps.tolist()
    if success.size and success.ndim != 2:
        raise ValueError(f"{path}: 'success_matrix' must be a 2-D list, got {success.ndim}-D")
    if success.ndim != 2:
        success = success.reshape(0, 0)
    steps = np.asarray(data.get("eval_steps") or [], dtype=float)
    if success.size:
        if not tasks:
            tasks = [f"task_{k}" for k in range(success.shape[1])]
        if len(tasks) != success.shape[1]:
            raise ValueError(
                f"{path}: 'tasks' has {len(tasks)} names but 'success_matrix' has "
                f"{success.shape[1]} columns"
            )
        if steps.size == 0:
            steps = np.arange(1, success.shape[0] + 1, dtype=float)
        if steps.shape[0] != success.shape[0]:
            raise ValueError(
                f"{path}: 'eval_steps' has {steps.shape[0]} entries but 'success_matrix' has "
                f"{success.shape[0]} rows"
            )

    metrics: dict[str, float] = {}
    nested = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
    for source in (nested, data):
        for key, value in source.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[key] = float(value)
    if "average_forgetting" not in metrics and "forgetting" in metrics:
        metrics["average_forgetting"] = metrics["forgetting"]
    if "average_performance" not in metrics and success.size:
        metrics["average_performance"] = float(success[-1].mean())
    metrics["success_minus_forgetting"] = success_minus_forgetting(metrics)

    setting, base = _setting(overrides, strength_name)
    return RunRecord(
        path=path.parent,
        method=str(method),
        seed=seed,
        setting=setting,
        base_setting=base,
        strength=None if math.isnan(strength) else strength,
        strength_name=strength_name,
        metrics=metrics,
        tasks=tasks,
        eval_steps=steps,
        success=success,
        overrides=overrides,
    )


def find_metrics_files(roots: Iterable[str | Path]) -> list[Path]:
    """All ``metrics.json`` under the given directories (or the files themselves), sorted."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(p for p in root.rglob(METRICS_FILE) if p.is_file())
        else:
            raise FileNotFoundError(f"no such file or directory: {root}")
    return sorted(set(found))


def _missing_reason(job: Path) -> str:
    """Why a job directory has no metrics.json, from the notes tune.py leaves (pruned.txt,
    error.txt); else 'failed or unfinished'."""
    for name, what in (("pruned.txt", "pruned"), ("error.txt", "failed")):
        note = job / name
        if note.is_file():
            lines = [ln for ln in note.read_text().splitlines() if ln.strip()]
            return f"{what}: {lines[-1].strip()}" if lines else what
    return "failed or unfinished"


def load_runs(roots: Iterable[str | Path]) -> LoadResult:
    """Read every run under ``roots``; unreadable files are skipped and listed, not fatal.

    A study that was interrupted or had a failing run still gets a report of what finished.
    """
    roots = list(roots)
    runs: list[RunRecord] = []
    skipped: list[tuple[Path, str]] = []
    for path in find_metrics_files(roots):
        try:
            runs.append(load_run(path))
        except ValueError as e:
            skipped.append((path, str(e)))
    common: list[str] = []
    if runs:
        common = sorted(set.intersection(*(set(_setting_items(r.overrides)) for r in runs)))
        for r in runs:
            r.setting, r.base_setting = _setting(r.overrides, r.strength_name, common)
    have = {r.path.resolve() for r in runs} | {p.parent.resolve() for p, _ in skipped}
    missing = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for hydra_dir in sorted(root.rglob(".hydra")):
            job = hydra_dir.parent
            if job.resolve() not in have and not (job / METRICS_FILE).exists():
                missing.append((job, _missing_reason(job)))
    return LoadResult(runs=runs, skipped=skipped, missing=missing, common=common)


# ---------------------------------------------------------------------------------------------
# Statistics


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.9,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``values`` over axis 0 and a percentile-bootstrap interval of that mean.

    Args:
        values: shape (n,) or (n, T): n independent runs (seeds), optionally a curve each.
        confidence: interval mass in (0, 1), e.g. 0.9 for a 90% interval.
        n_boot: number of resamples.
        seed: resampling seed, so that reports are reproducible.

    Returns:
        (mean, low, high), floats for 1-D input, arrays of shape (T,) for 2-D input. NaNs in a
        1-D input are dropped; an empty input gives NaNs. With one value the interval is that
        value.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    x = np.asarray(values, dtype=float)
    if x.ndim == 1:
        x = x[~np.isnan(x)]
    n = x.shape[0]
    if n == 0:
        nan = math.nan if x.ndim == 1 else np.full(x.shape[1:], np.nan)
        return nan, nan, nan  # type: ignore[return-value]
    mean = x.mean(axis=0)
    if n == 1:
        lo = hi = mean
    else:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_boot, n))
        boot = x[idx].mean(axis=1)
        alpha = (1.0 - confidence) / 2.0
        lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    if x.ndim == 1:
        return float(mean), float(lo), float(hi)
    return mean, np.asarray(lo), np.asarray(hi)


def _group_key(run: RunRecord) -> tuple[str, str]:
    return run.method, run.setting


def group_runs(runs: Iterable[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    """Runs grouped by (method, setting), in order of first appearance."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in runs:
        groups.setdefault(_group_key(r), []).append(r)
    return groups


def summarize(
    runs: Sequence[RunRecord],
    metrics: Sequence[str] = tuple(DEFAULT_METRICS),
    confidence: float = 0.9,
    n_boot: int = 2000,
):
    """One row per (method, setting): seeds, and per metric mean, ``<m>_lo`` and ``<m>_hi``.

    Returns a pandas DataFrame sorted by method, then strength (ascending; groups without one
    last), then the first metric (descending).
    """
    import pandas as pd

    rows = []
    for (method, setting), group in group_runs(runs).items():
        strengths = {r.strength for r in group if r.strength is not None}
        row: dict[str, Any] = {
            "method": method,
            "setting": setting,
            "n_runs": len(group),
            "seeds": " ".join(str(s) for s in sorted(r.seed for r in group if r.seed is not None)),
            "strength": strengths.pop() if len(strengths) == 1 else math.nan,
        }
        for m in metrics:
            vals = [r.metrics.get(m, math.nan) for r in group]
            mean, lo, hi = bootstrap_ci(vals, confidence, n_boot)
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = mean, lo, hi
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df) and metrics:
        # Within a method: by strength (a sweep reads in order), then best first.
        df = df.sort_values(
            ["method", "strength", metrics[0]],
            ascending=[True, True, False],
            kind="stable",
            na_position="last",
        )
    return df.reset_index(drop=True)


def runs_table(runs: Sequence[RunRecord]):
    """One row per run: path, method, setting, seed, strength and every scalar metric."""
    import pandas as pd

    rows = []
    for r in runs:
        row: dict[str, Any] = {
            "path": str(r.path),
            "method": r.method,
            "setting": r.setting,
            "seed": r.seed,
            "strength": r.strength,
        }
        row.update(r.metrics)
        rows.append(row)
    return pd.DataFrame(rows)


def mean_curves(
    group: Sequence[RunRecord], confidence: float = 0.9, n_boot: int = 1000
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per task: (steps, mean, lo, hi) of success over the runs of one group.

    Runs are put on the evaluation grid of the run with the most evaluations (linear
    interpolation), since vectorised envs can shift evaluation times by a few steps.
    """
    with_matrix = [r for r in group if r.success.size]
    if not with_matrix:
        return {}
    grid = max(with_matrix, key=lambda r: len(r.eval_steps)).eval_steps
    tasks: list[str] = []
    for r in with_matrix:
        tasks.extend(t for t in r.tasks if t not in tasks)
    out = {}
    for task in tasks:
        curves = [
            np.interp(grid, r.eval_steps, r.success[:, r.tasks.index(task)])
            for r in with_matrix
            if task in r.tasks
        ]
        mean, lo, hi = bootstrap_ci(np.stack(curves), confidence, n_boot)
        out[task] = (grid, mean, lo, hi)
    return out


@dataclass
class SensitivityLine:
    """Final performance against strength for one (method, base setting)."""

    method: str
    base_setting: str
    strength_name: str
    strengths: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_runs: np.ndarray
    pooled: bool = False
    """True when runs of different settings were pooled (e.g. a tuning study, where every
    trial has its own learning rate): points, not a curve."""

    def near_best_range(self, tol: float) -> tuple[float, float, float]:
        """(low, high, decades): the contiguous strength range around the best mean whose mean
        stays within ``tol`` (absolute) of the best. ``decades`` = log10(high / low), NaN when
        low <= 0."""
        best = int(np.nanargmax(self.mean))
        ok = self.mean >= self.mean[best] - tol
        i = j = best
        while i > 0 and ok[i - 1]:
            i -= 1
        while j < len(ok) - 1 and ok[j + 1]:
            j += 1
        low, high = float(self.strengths[i]), float(self.strengths[j])
        decades = math.log10(high / low) if low > 0 else math.nan
        return low, high, decades


def sensitivity(
    runs: Sequence[RunRecord],
    metric: str = "average_performance",
    confidence: float = 0.9,
    n_boot: int = 2000,
) -> list[SensitivityLine]:
    """Lines of ``metric`` against strength, one per (method, base setting, strength name),
    for runs that have a strength; lines with fewer than two distinct strengths are dropped.

    When no line has two strengths but a method has runs at several (a tuning study, where the
    other sampled values differ too), its runs are pooled into one line marked ``pooled``.
    """
    lines = _sensitivity_lines(runs, metric, confidence, n_boot, pool=False)
    return lines or _sensitivity_lines(runs, metric, confidence, n_boot, pool=True)


def _sensitivity_lines(
    runs: Sequence[RunRecord], metric: str, confidence: float, n_boot: int, pool: bool
) -> list[SensitivityLine]:
    buckets: dict[tuple[str, str, str], dict[float, list[float]]] = {}
    for r in runs:
        if r.strength is None:
            continue
        key = (r.method, "" if pool else r.base_setting, r.strength_name or "strength")
        buckets.setdefault(key, {}).setdefault(r.strength, []).append(
            r.metrics.get(metric, math.nan)
        )
    lines = []
    for (method, base, name), by_strength in buckets.items():
        if len(by_strength) < 2:
            continue
        xs = np.array(sorted(by_strength))
        stats = np.array([bootstrap_ci(by_strength[x], confidence, n_boot) for x in xs])
        lines.append(
            SensitivityLine(
                method=method,
                base_setting=base,
                strength_name=name,
                strengths=xs,
                mean=stats[:, 0],
                lo=stats[:, 1],
                hi=stats[:, 2],
                n_runs=np.array([len(by_strength[x]) for x in xs]),
                pooled=pool,
            )
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(method: str, setting: str) -> str:
    return f"{method} [{setting}]" if setting else method


def plot_methods(summary, path: Path, metrics: Sequence[str], names: dict[str, str]) -> Path:
    """Bars of each metric per (method, setting), with the bootstrap intervals as error bars."""
    plt = _pyplot()
    shown = [m for m in metrics if m in summary and summary[m].notna().any()]
    fig, axes = plt.subplots(
        1, max(1, len(shown)), figsize=(4.2 * max(1, len(shown)), 3.6), squeeze=False
    )
    labels = [_label(m, s) for m, s in zip(summary["method"], summary["setting"], strict=True)]
    x = np.arange(len(labels))
    method_colors = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys(summary["method"]))}
    colors = [method_colors[m] for m in summary["method"]]
    for ax, m in zip(axes[0], shown, strict=False):
        mean = summary[m].to_numpy(float)
        err = np.vstack(
            [mean - summary[f"{m}_lo"].to_numpy(float), summary[f"{m}_hi"].to_numpy(float) - mean]
        )
        ax.bar(x, mean, yerr=np.nan_to_num(err), color=colors, capsize=3)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(names.get(m, m))
        ax.axhline(0.0, color="k", lw=0.5)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(
    groups: dict[tuple[str, str], list[RunRecord]], path: Path, confidence: float
) -> Path | None:
    """Success per task against env steps: one panel per task, one line per group."""
    per_group = {k: mean_curves(g, confidence) for k, g in groups.items()}
    tasks: list[str] = []
    for curves in per_group.values():
        tasks.extend(t for t in curves if t not in tasks)
    if not tasks:
        return None
    plt = _pyplot()
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False, sharey=True
    )
    for ax, task in zip(axes.flat, tasks, strict=False):
        for i, ((method, setting), curves) in enumerate(per_group.items()):
            if task not in curves:
                continue
            steps, mean, lo, hi = curves[task]
            color = f"C{i % 10}"
            ax.plot(steps, mean, color=color, label=_label(method, setting))
            ax.fill_between(steps, lo, hi, color=color, alpha=0.2, lw=0)
        ax.set_title(f"task {task}")
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("success")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08 + 0.03 * (len(labels) // 4), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sensitivity(lines: Sequence[SensitivityLine], path: Path, metric_name: str) -> Path:
    """Final performance against strength, with intervals; log x-axis when strengths span
    at least a decade."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    all_x = np.concatenate([ln.strengths for ln in lines])
    for i, ln in enumerate(lines):
        color = f"C{i % 10}"
        label = _label(f"{ln.method} ({ln.strength_name})", ln.base_setting)
        if ln.pooled:
            ax.plot(ln.strengths, ln.mean, "o", color=color, label=f"{label}, all settings")
            continue
        ax.plot(ln.strengths, ln.mean, "o-", color=color, label=label)
        ax.fill_between(ln.strengths, ln.lo, ln.hi, color=color, alpha=0.2, lw=0)
    if np.all(all_x > 0) and all_x.max() / all_x.min() >= 10:
        ax.set_xscale("log")
    names = sorted({ln.strength_name for ln in lines})
    ax.set_xlabel(f"strength ({', '.join(names)})")
    ax.set_ylabel(metric_name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Markdown


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _cell(mean: float, lo: float, hi: float) -> str:
    if math.isnan(mean):
        return "n/a"
    if lo == hi:
        return _fmt(mean)
    return f"{_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]"


def markdown_table(summary, metrics: Sequence[str], names: dict[str, str]) -> str:
    """The summary as a Markdown table: 'mean [lo, hi]' per metric."""
    header = ["method", "setting", "runs", *[names.get(m, m) for m in metrics]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        cells = [
            str(row["method"]),
            f"`{row['setting']}`" if row["setting"] else "",
            str(row["n_runs"]),
            *[_cell(row[m], row[f"{m}_lo"], row[f"{m}_hi"]) for m in metrics],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class Report:
    """What :func:`write_report` produced."""

    out_dir: Path
    markdown: Path
    summary_csv: Path
    runs_csv: Path
    plots: dict[str, Path]
    summary: Any
    n_runs: int
    skipped: list[tuple[Path, str]]
    missing: list[tuple[Path, str]]


def write_report(
    roots: Sequence[str | Path],
    out_dir: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.9,
    n_boot: int = 2000,
    tol: float = 0.05,
    title: str = "Study report",
) -> Report:
    """Read all runs under ``roots`` and write the tables, plots and ``report.md``.

    Args:
        roots: directories (or metrics.json files) to read.
        out_dir: where to write; default ``<roots[0]>/report``.
        metrics: metric keys for the table; default final average success, forgetting and
            plasticity (when the runs have them), plus ``forward_transfer`` when any run has it.
        confidence: mass of the bootstrap intervals.
        n_boot: bootstrap resamples.
        tol: absolute tolerance for the near-best strength range.
        title: heading of the Markdown.

    Raises:
        FileNotFoundError: a root does not exist.
        ValueError: no readable metrics.json was found; the message names the roots.
    """
    roots = [Path(r) for r in roots]
    if not roots:
        raise ValueError("no directory given")
    loaded = load_runs(roots)
    runs = loaded.runs
    if not runs:
        detail = "".join(f"\n  skipped {p}: {why}" for p, why in loaded.skipped)
        raise ValueError(f"no readable {METRICS_FILE} under {', '.join(map(str, roots))}{detail}")
    out = Path(out_dir) if out_dir is not None else roots[0] / "report"
    out.mkdir(parents=True, exist_ok=True)

    names = dict(METRIC_NAMES)
    if metrics is None:
        metrics = [
            m
            for m in [*DEFAULT_METRICS, "forward_transfer"]
            if m == "average_performance"
            or any(not math.isnan(r.metrics.get(m, math.nan)) for r in runs)
        ]
    metrics = list(metrics)
    summary = summarize(runs, metrics, confidence, n_boot)
    summary_csv = out / "summary.csv"
    summary.to_csv(summary_csv, index=False)
    runs_csv = out / "runs.csv"
    runs_table(runs).to_csv(runs_csv, index=False)

    plots: dict[str, Path] = {}
    plots["methods"] = plot_methods(summary, out / "methods.png", metrics, names)
    groups = group_runs(runs)
    curves = plot_curves(groups, out / "curves.png", confidence)
    if curves is not None:
        plots["curves"] = curves
    lines = sensitivity(runs, "average_performance", confidence, n_boot)
    if lines:
        plots["sensitivity"] = plot_sensitivity(
            lines, out / "sensitivity.png", names["average_performance"]
        )

    pct = round(confidence * 100)
    md = [
        f"# {title}",
        "",
        f"{len(runs)} runs in {len(groups)} groups (method x setting), read from "
        + ", ".join(f"`{r}`" for r in roots)
        + f". Cells: mean over seeds [{pct}% percentile-bootstrap interval of the mean, "
        f"{n_boot} resamples]. Final avg success: mean over tasks of the success at the end; "
        "forgetting: mean over tasks of (success at the end of the task's own training window "
        "- final success); plasticity: mean of the success at the end of each own window.",
        "",
        *(
            ["Overrides common to all runs: " + " ".join(f"`{o}`" for o in loaded.common), ""]
            if loaded.common
            else []
        ),
        markdown_table(summary, metrics, names),
        "",
        f"![method comparison]({plots['methods'].name})",
    ]
    if "curves" in plots:
        md += ["", "## Success per task", "", f"![curves per task]({plots['curves'].name})"]
    if lines:
        md += [
            "",
            "## Sensitivity to strength",
            "",
            f"Near-best range: contiguous strengths whose mean final average success is within "
            f"{tol} of the line's best.",
            "",
            "| method | setting | strengths | best | near-best range | decades |",
            "|---|---|---|---|---|---|",
        ]
        for ln in lines:
            low, high, dec = ln.near_best_range(tol)
            best = int(np.nanargmax(ln.mean))
            where = (
                "all settings pooled" if ln.pooled else ln.base_setting and f"`{ln.base_setting}`"
            )
            md.append(
                f"| {ln.method} ({ln.strength_name}) | {where} | {len(ln.strengths)} | "
                f"{_fmt(ln.mean[best])} at {ln.strengths[best]:g} | {low:g} - {high:g} | "
                f"{_fmt(dec)} |"
            )
        md += ["", f"![sensitivity]({plots['sensitivity'].name})"]
    if loaded.skipped or loaded.missing:
        md += ["", "## Not included", ""]
        md += [f"- `{p}`: {why}" for p, why in loaded.skipped]
        md += [f"- `{p}`: no {METRICS_FILE} ({why})" for p, why in loaded.missing]
    markdown = out / "report.md"
    markdown.write_text("\n".join(md) + "\n")
    return Report(
        out_dir=out,
        markdown=markdown,
        summary_csv=summary_csv,
        runs_csv=runs_csv,
        plots=plots,
        summary=summary,
        n_runs=len(runs),
        skipped=loaded.skipped,
        missing=loaded.missing,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m continual.report",
        description="Aggregate the metrics.json of a multirun or tuning study into a table "
        "(mean and bootstrap interval over seeds per method and setting), plots and Markdown.",
    )
    parser.add_argument("dirs", nargs="+", help="study directories (searched recursively)")
    parser.add_argument("--out", default=None, help="output directory (default: <dir>/report)")
    parser.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric keys of metrics.json for the table "
        f"(default: {','.join(DEFAULT_METRICS)})",
    )
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--tol", type=float, default=0.05, help="near-best tolerance")
    parser.add_argument("--title", default="Study report")
    args = parser.parse_args(argv)
    try:
        report = write_report(
            args.dirs,
            out_dir=args.out,
            metrics=args.metrics.split(",") if args.metrics else None,
            confidence=args.confidence,
            n_boot=args.n_boot,
            tol=args.tol,
            title=args.title,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path, why in report.skipped:
        print(f"warning: skipped {path}: {why}", file=sys.stderr)
    for path, why in report.missing:
        print(f"warning: {path} has no {METRICS_FILE} ({why})", file=sys.stderr)
    print(report.markdown.read_text())
    print(
        f"wrote {report.markdown} ({report.n_runs} runs; plots: "
        f"{', '.join(p.name for p in report.plots.values())})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
