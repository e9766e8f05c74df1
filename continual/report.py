"""Study report: aggregate the ``metrics.json`` of many runs into one table, plots and Markdown.

Works on any directory tree that holds run directories with a ``metrics.json`` each: a Hydra
multirun (``multirun/<date>/<time>/<job>/``), a tuning study written by ``tune.py``, or a folder
of single runs. It reads only those JSON files (and, as a fallback, Hydra's ``.hydra/*.yaml``
next to them), so it knows nothing about the environments or the agents.

Usage::

    python -m continual.report multirun/2026-01-01/12-00-00            # writes <dir>/report/
    python -m continual.report runs/study_a runs/study_b --out docs/results
    python -m continual.report runs/strength_* --near-best 0.9   # width within 90% of the best

Outputs (in ``--out``, default ``<first dir>/report``):

- ``report.md``: the summary table and the plots, ready to paste into a README;
- ``summary.csv``: one row per (method, setting): number of seeds, and for each metric the mean
  over seeds and a percentile-bootstrap interval of that mean (90% by default);
- ``runs.csv``: one row per run;
- ``methods.png``: method comparison bars with the intervals;
- ``curves.png``: success per task against env steps, mean over seeds with its interval band;
- ``sensitivity.png``: final average success against the strength (c or the adaptive target),
  when the runs have one; report.md gives each line's near-best range and its width in decades
  (absolute rule ``--tol``, or relative ``--near-best FRAC``: mean >= FRAC x the best);
- ``heatmap.png``: mean final average success over (second swept key, strength), e.g.
  learning rate x c, when one method's runs cross the two (:func:`heatmaps`);
- ``detector.csv``: detector quality of task-free triggers (``--detector-triggers``, default
  ``plateau``) against the stream's true switches, per setting (:func:`detector_quality`).
  Reads the run's ``config.yaml`` and its TensorBoard files (``tb/``).

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
    "run.num_timesteps": "env steps trained (detector table: switches after it are dropped)",
    "run.consolidation_steps": "optional list of env steps of the consolidations (detector "
    "table; without it they are read from the TensorBoard files)",
    "run.shift_steps": "optional list of env steps of the detected shifts (likewise)",
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


@dataclass(frozen=True)
class NearBestRule:
    """Which strengths count as near the best: give exactly one of

    - ``tol``: absolute, a mean within ``tol`` (units of the metric) of the best mean;
    - ``frac``: relative, a mean of at least ``frac`` x the best mean, in (0, 1] (the study's
      width uses 0.9). Undefined when the best mean is <= 0.
    """

    tol: float | None = None
    frac: float | None = None

    def __post_init__(self) -> None:
        if (self.tol is None) == (self.frac is None):
            raise ValueError(
                "near-best rule: give exactly one of tol (absolute) or frac (relative), "
                f"got tol={self.tol}, frac={self.frac}"
            )
        if self.tol is not None and not self.tol >= 0:
            raise ValueError(f"near-best tol must be >= 0, got {self.tol}")
        if self.frac is not None and not 0 < self.frac <= 1:
            raise ValueError(f"near-best fraction must be in (0, 1], got {self.frac}")

    @property
    def relative(self) -> bool:
        return self.frac is not None

    def threshold(self, best: float) -> float:
        """Lowest mean that counts as near-best; NaN when ``best`` is NaN, or <= 0 under the
        relative rule (a fraction of a non-positive best means nothing)."""
        if math.isnan(best):
            return math.nan
        if self.frac is None:
            return best - float(self.tol or 0.0)
        return self.frac * best if best > 0 else math.nan

    def describe(self) -> str:
        """The rule in words, for table captions: '>= 0.9 x the best mean' or 'within 0.05 of
        the best mean'."""
        if self.frac is None:
            return f"within {self.tol:g} of the best mean (absolute rule, `--tol {self.tol:g}`)"
        return f">= {self.frac:g} x the best mean (relative rule, `--near-best {self.frac:g}`)"


def near_best_range(
    strengths: Sequence[float] | np.ndarray,
    mean: Sequence[float] | np.ndarray,
    rule: NearBestRule,
) -> tuple[float, float, float]:
    """The contiguous range of strengths around the best mean whose means pass ``rule``.

    Args:
        strengths: strength values, any order (sorted here), shape (n,).
        mean: mean metric per strength, shape (n,); a NaN mean fails the rule, so it ends the
            range.
        rule: absolute or relative near-best rule.

    Returns:
        (low, high, decades), with ``decades = log10(high / low)``: the *width* in decades of
        strength. A single point gives (x, x, 0). NaN for all three when no mean is finite or
        the rule is undefined (relative rule with best <= 0); ``decades`` is NaN when
        low <= 0.

    Raises:
        ValueError: ``strengths`` and ``mean`` differ in length.
    """
    x = np.asarray(strengths, dtype=float)
    y = np.asarray(mean, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"near_best_range: strengths {x.shape} and mean {y.shape} must be 1-D of one length"
        )
    nan3 = (math.nan, math.nan, math.nan)
    if not np.isfinite(y).any():
        return nan3
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    best = int(np.nanargmax(y))
    threshold = rule.threshold(float(y[best]))
    if math.isnan(threshold):
        return nan3
    with np.errstate(invalid="ignore"):
        ok = y >= threshold  # NaN compares False
    ok[best] = True
    i = j = best
    while i > 0 and ok[i - 1]:
        i -= 1
    while j < len(ok) - 1 and ok[j + 1]:
        j += 1
    low, high = float(x[i]), float(x[j])
    decades = math.log10(high / low) if low > 0 else math.nan
    return low, high, decades


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

    def near_best_range(
        self, tol: float | None = None, *, frac: float | None = None
    ) -> tuple[float, float, float]:
        """(low, high, decades) of the contiguous strength range around the best mean that
        stays within ``tol`` (absolute, in units of the metric) of the best, or, with ``frac``,
        at or above ``frac`` x the best (relative). See :func:`near_best_range`."""
        return near_best_range(self.strengths, self.mean, NearBestRule(tol=tol, frac=frac))


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
# Run configs (config.yaml next to metrics.json)

#: Config entries that do not change what a run learns: ignored when deciding whether runs
#: from different sweeps share a setting (the heatmap's cells).
_BOOKKEEPING_KEYS = (
    "seed",
    "run_dir",
    "resume",
    "progress_bar",
    "checkpoint_freq",
    "eval.figure_every",
    "agent.verbose",
    "agent.device",
    "agent.torch_threads",
)
_BOOKKEEPING_PREFIXES = ("debug.",)

#: Override keys that choose a launch preset, not a value: never a heatmap axis.
_PRESET_KEYS = ("sweep",)


def run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's resolved config: ``config.yaml`` (written by train.py), else Hydra's
    ``.hydra/config.yaml``; None when neither exists.

    Raises:
        ValueError: the file exists but is not a YAML mapping; the message names it.
    """
    run_dir = Path(run_dir)
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            try:
                cfg = _read_yaml(path)
            except Exception as e:  # omegaconf raises several types for bad YAML
                raise ValueError(f"{path}: cannot read config ({e})") from e
            if not isinstance(cfg, dict):
                raise ValueError(f"{path}: expected a mapping, got {type(cfg).__name__}")
            return cfg
    return None


def _config_or_none(run_dir: Path) -> dict[str, Any] | None:
    """:func:`run_config`, with an unreadable file treated as absent."""
    try:
        return run_config(run_dir)
    except ValueError:
        return None


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys; lists stay values (as JSON text, so hashable)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    key = prefix[:-1]
    return {key: json.dumps(node, sort_keys=True) if isinstance(node, list) else node}


def _parse_value(text: Any) -> float | str:
    """An override or config value as a float when it is a number, else as text."""
    if isinstance(text, bool) or text is None:
        return str(text)
    try:
        return float(text)
    except (TypeError, ValueError):
        return str(text)


def _fmt_axis(v: float | str) -> str:
    """Tick label of a swept value: 3e-4 rather than 0.0003, 10 rather than 10.0."""
    if isinstance(v, str):
        return v
    if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4):
        mantissa, exp = f"{v:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exp)}"
    return f"{v:g}"


# ---------------------------------------------------------------------------------------------
# Heatmap: a second swept key against the strength


@dataclass
class Heatmap:
    """Mean of a metric over a grid of (value of ``axis_key``, strength), for one method and
    one setting of everything else. Rows: ``axis_values``; columns: ``strengths``."""

    method: str
    setting: str
    """The other overrides of the map's runs (several, separated by '; ', when runs of
    different sweeps share one resolved config)."""
    strength_name: str
    axis_key: str
    strengths: np.ndarray
    axis_values: list[float | str]
    mean: np.ndarray
    """Shape (n_rows, n_cols); NaN where no run."""
    n_runs: np.ndarray
    """Shape (n_rows, n_cols): runs (seeds) with a finite value per cell."""


def _fingerprint(cfg: dict[str, Any], drop: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The resolved config minus bookkeeping and the ``drop`` keys (and their sub-keys)."""
    dropped = (*_BOOKKEEPING_KEYS, *drop)
    items = []
    for key, value in _flatten(cfg).items():
        if key in dropped or key.startswith(_BOOKKEEPING_PREFIXES):
            continue
        if any(key.startswith(f"{d}.") for d in dropped):
            continue
        items.append((key, repr(value)))
    return tuple(sorted(items))


def _axis_candidates(items: Sequence[dict[str, str]], skip: set[str]) -> list[str]:
    """Override keys with at least two values among the runs; ``agent.learning_rate`` first."""
    keys: set[str] = set()
    for it in items:
        keys.update(it)
    varying = [
        k
        for k in keys - skip - set(_PRESET_KEYS)
        if len({_parse_value(it.get(k)) for it in items}) > 1
    ]
    return sorted(varying, key=lambda k: (k != "agent.learning_rate", k))


def _sort_values(values: Iterable[float | str]) -> list[float | str]:
    """Numbers ascending, then text."""
    uniq = set(values)
    nums = sorted(v for v in uniq if isinstance(v, float))
    return [*nums, *sorted(str(v) for v in uniq if not isinstance(v, float))]


def _crossed_maps(
    method: str,
    sname: str,
    axis: str,
    runs: Sequence[tuple[RunRecord, dict[str, str], dict[str, Any] | None]],
    use_configs: bool,
    metric: str,
) -> list[tuple[Heatmap, list[RunRecord]]]:
    """The crossed maps of ``axis`` x strength among ``runs`` (run, its setting overrides as
    key -> value, its config), each with the runs it holds."""
    strength_keys = {k for _, it, _ in runs for k in it if k.rsplit(".", 1)[-1] == sname}
    # Keys that only some configs have (a field added to the schema after some of the runs)
    # cannot tell settings apart by their config values; where a run overrides one, the
    # override still does (older runs had the field's default).
    key_sets = [set(_flatten(cfg)) for _, _, cfg in runs if cfg is not None]
    partial = set.union(*key_sets) - set.intersection(*key_sets) if key_sets else set()
    cells: dict[Any, dict[tuple[float | str, float], list[RunRecord]]] = {}
    labels: dict[Any, set[str]] = {}
    for r, it, cfg in runs:
        flat = None if cfg is None else _flatten(cfg)
        if axis in it:
            value = _parse_value(it[axis])
        elif flat is not None and axis in flat:
            value = _parse_value(flat[axis])
        else:
            value = "default"
        rest = sorted(f"{k}={v}" for k, v in it.items() if k not in strength_keys | {axis})
        key: Any = (
            (
                _fingerprint(cfg or {}, [axis, f"continual.{sname}", *partial]),
                tuple(sorted((k, v) for k, v in it.items() if k in partial and k != axis)),
            )
            if use_configs
            else tuple(rest)
        )
        strength = math.nan if r.strength is None else float(r.strength)
        cells.setdefault(key, {}).setdefault((value, strength), []).append(r)
        labels.setdefault(key, set()).add(" ".join(rest))
    out = []
    for key, cell in cells.items():
        per_value: dict[float | str, set[float]] = {}
        for v, s in cell:
            per_value.setdefault(v, set()).add(s)
        if sum(len(s) >= 2 for s in per_value.values()) < 2:
            continue
        rows = _sort_values(per_value)
        cols = sorted({s for _, s in cell})
        mean = np.full((len(rows), len(cols)), np.nan)
        count = np.zeros((len(rows), len(cols)), dtype=int)
        for (v, s), members in cell.items():
            finite = [x for x in (m.metrics.get(metric, math.nan) for m in members) if x == x]
            i, j = rows.index(v), cols.index(s)
            count[i, j] = len(finite)
            if finite:
                mean[i, j] = float(np.mean(finite))
        heatmap = Heatmap(
            method=method,
            setting="; ".join(sorted(labels[key])),
            strength_name=sname,
            axis_key=axis,
            strengths=np.array(cols),
            axis_values=rows,
            mean=mean,
            n_runs=count,
        )
        out.append((heatmap, [m for members in cell.values() for m in members]))
    return out


def heatmaps(runs: Sequence[RunRecord], metric: str = "average_performance") -> list[Heatmap]:
    """Grids of ``metric`` over (second swept key, strength), one per method and setting.

    For each method whose runs have a strength, every other override key that takes several
    values is a candidate axis, ``agent.learning_rate`` first, then by name (launch presets
    such as ``sweep=`` never). Runs share a map when everything else is the same: their
    resolved configs (``config.yaml``) agree apart from the axis, the strength, the seed and
    bookkeeping, or, when a run has no config, their other overrides agree. A run that does
    not override the axis key gets its value from its config (e.g. a strength sweep at the
    default learning rate), else the value ``default``. A map is kept when it is crossed: at
    least two axis values were each run at two or more strengths. Each run lands in at most
    one map: the first axis that puts it into a crossed map (so a lr x c x n_envs grid gives
    lr x c maps, one per n_envs).

    Returns:
        The maps, by method, then axis and setting. Cell means ignore NaN metrics.
    """
    all_items = [set(_setting_items(r.overrides)) for r in runs]
    common = set.intersection(*all_items) if all_items else set()
    families: dict[tuple[str, str], list[RunRecord]] = {}
    for r in runs:
        if r.strength is not None:
            families.setdefault((r.method, r.strength_name or "strength"), []).append(r)

    maps: list[Heatmap] = []
    for (method, sname), group in sorted(families.items()):
        entries = [
            (
                r,
                {
                    _override_key(o): o.split("=", 1)[1] if "=" in o else ""
                    for o in _setting_items(r.overrides)
                    if o not in common
                },
                _config_or_none(r.path),
            )
            for r in group
        ]
        use_configs = all(cfg is not None for _, _, cfg in entries)
        strength_keys = {k for _, it, _ in entries for k in it if k.rsplit(".", 1)[-1] == sname}
        left = entries
        for axis in _axis_candidates([it for _, it, _ in entries], strength_keys):
            found = _crossed_maps(method, sname, axis, left, use_configs, metric)
            used = {id(r) for _, members in found for r in members}
            maps.extend(sorted((m for m, _ in found), key=lambda m: m.setting))
            left = [e for e in left if id(e[0]) not in used]
    return maps


# ---------------------------------------------------------------------------------------------
# Detector quality: task-free trigger events against the stream's true switches

#: TensorBoard scalars logged once per rollout by ContinualCallback, 1 at an event.
EVENT_TAGS: dict[str, str] = {
    "settled": "continual/event_settled",
    "shift": "continual/event_shift",
}
#: Cumulative counters logged next to them; their increments are the events too (fallback).
COUNTER_TAGS: dict[str, str] = {
    "settled": "continual/consolidations",
    "shift": "continual/shifts",
}
#: Optional ``run`` fields of metrics.json with the event steps; read before TensorBoard.
EVENT_FIELDS: dict[str, str] = {
    "settled": "consolidation_steps",
    "shift": "shift_steps",
}


@dataclass
class RunEvents:
    """When a run consolidated (``settled``) and detected a shift, in env steps (ascending)."""

    settled: np.ndarray
    shift: np.ndarray
    source: str
    """Where they were read: ``metrics.json``, or ``tensorboard`` (event or counter scalars)."""


@dataclass
class StreamTruth:
    """The true task switches of a run's stream, in env steps."""

    boundaries: np.ndarray
    """Switch steps: the schedule's phase ends, i.e. the middle of each blur window."""
    phase_lengths: np.ndarray
    """Length of the phase that starts at each boundary (cut at ``end``)."""
    blur: float
    """Width of the transition window centred on each boundary."""
    end: float
    """Env steps the run trained for."""

    @property
    def n_phases(self) -> int:
        return len(self.boundaries) + 1


@dataclass
class DetectorScore:
    """One run's events against the truth. Lags in env steps, NaN where there was none."""

    shift_lags: np.ndarray
    """Per switch: first shift at or after (boundary - blur/2) and within one phase, minus
    the boundary; NaN = missed. Negative when detected in the first half of the blur."""
    consolidation_lags: np.ndarray
    """Per switch: first consolidation in the same window, minus the boundary."""
    false_shifts: int
    """Shifts not within [boundary - blur/2, boundary + phase length/2] of any boundary."""
    n_consolidations: int
    n_phases: int

    @property
    def detected(self) -> float:
        """Fraction of switches detected (NaN without switches)."""
        return float(np.mean(~np.isnan(self.shift_lags))) if self.shift_lags.size else math.nan

    @property
    def consolidated(self) -> float:
        """Fraction of switches followed by a consolidation within one phase."""
        lags = self.consolidation_lags
        return float(np.mean(~np.isnan(lags))) if lags.size else math.nan

    @property
    def consolidations_per_phase(self) -> float:
        return self.n_consolidations / self.n_phases


def _event_files(run_dir: Path) -> list[Path]:
    """TensorBoard event files under the run, oldest first (by the time in their names)."""

    def created(p: Path) -> tuple[int, str]:
        parts = p.name.split(".")
        stamp = parts[3] if len(parts) > 3 and parts[3].isdigit() else "0"
        return int(stamp), str(p)

    return sorted(run_dir.rglob("events.out.tfevents.*"), key=created)


def _read_scalars(files: Sequence[Path], tags: Iterable[str]) -> dict[str, dict[int, float]]:
    """tag -> {step: value} over ``files`` in order. A later file (a resumed run) replaces
    the earlier files' values from its own first step of that tag on, since those were logged
    after the checkpoint it resumed from."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = list(tags)
    out: dict[str, dict[int, float]] = {t: {} for t in tags}
    for path in files:
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        have = set(acc.Tags().get("scalars", []))
        for tag in tags:
            if tag not in have:
                continue
            events = acc.Scalars(tag)
            if not events:
                continue
            first = min(e.step for e in events)
            kept = {s: v for s, v in out[tag].items() if s < first}
            kept.update({int(e.step): float(e.value) for e in events})
            out[tag] = kept
    return out


def read_run_scalars(run_dir: str | Path, tags: Iterable[str]) -> dict[str, dict[int, float]]:
    """tag -> {env step: value} from the TensorBoard files under ``run_dir`` (a resumed run's
    later file replaces the values it logged again); an absent tag maps to ``{}``."""
    return _read_scalars(_event_files(Path(run_dir)), tags)


def read_events(run_dir: str | Path) -> RunEvents:
    """The run's consolidation and shift steps.

    From the ``run.consolidation_steps`` and ``run.shift_steps`` lists of ``metrics.json``
    when present; else from the TensorBoard event files under the run (``tb/``): the steps
    where ``continual/event_settled`` / ``continual/event_shift`` are > 0, or, in logs
    without those, where the counters ``continual/consolidations`` / ``continual/shifts``
    increase.

    Raises:
        ValueError: neither source has the events; the message names the run.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / METRICS_FILE
    if metrics_path.is_file():
        try:
            run = (json.loads(metrics_path.read_text()) or {}).get("run") or {}
        except (OSError, json.JSONDecodeError, AttributeError):
            run = {}
        if isinstance(run, dict) and all(
            isinstance(run.get(f), list) for f in EVENT_FIELDS.values()
        ):
            return RunEvents(
                settled=np.sort(np.asarray(run[EVENT_FIELDS["settled"]], dtype=float)),
                shift=np.sort(np.asarray(run[EVENT_FIELDS["shift"]], dtype=float)),
                source="metrics.json",
            )
    files = _event_files(run_dir)
    if not files:
        raise ValueError(f"{run_dir}: no event steps in {METRICS_FILE} and no TensorBoard files")
    scalars = _read_scalars(files, [*EVENT_TAGS.values(), *COUNTER_TAGS.values()])
    steps: dict[str, np.ndarray] = {}
    for kind in ("settled", "shift"):
        events = scalars[EVENT_TAGS[kind]]
        counter = scalars[COUNTER_TAGS[kind]]
        if events:
            steps[kind] = np.array(sorted(s for s, v in events.items() if v > 0), dtype=float)
        elif counter:
            xs = sorted(counter)
            values = np.array([counter[s] for s in xs])
            rises = np.flatnonzero(np.diff(np.concatenate([[0.0], values])) > 0)
            steps[kind] = np.array(xs, dtype=float)[rises]
        else:
            raise ValueError(
                f"{run_dir}: the TensorBoard files have neither {EVENT_TAGS[kind]} nor "
                f"{COUNTER_TAGS[kind]}"
            )
    return RunEvents(settled=steps["settled"], shift=steps["shift"], source="tensorboard")


def stream_truth(config: dict[str, Any], end: float | None = None) -> StreamTruth:
    """The true switches of the stream in a run's resolved config.

    Args:
        config: the run's config (``stream.schedule`` as ``{task, steps}`` entries or
            ``[task, steps]`` pairs, ``stream.blur``, optional ``stream.joint``,
            ``total_steps``).
        end: env steps the run trained for; default ``total_steps``, else the schedule's sum.
            Switches at or after ``end`` are dropped.

    Consecutive phases of the same task are one phase (no switch between them).

    Raises:
        ValueError: the stream is joint (no switches) or its schedule is unreadable.
    """
    stream = config.get("stream") or {}
    if stream.get("joint"):
        raise ValueError("joint stream: no task switches to detect")
    phases: list[tuple[Any, float]] = []
    try:
        for entry in stream.get("schedule") or []:
            task, steps = (
                (entry["task"], entry["steps"]) if isinstance(entry, dict) else tuple(entry)
            )
            if phases and phases[-1][0] == task:
                phases[-1] = (task, phases[-1][1] + float(steps))
            else:
                phases.append((task, float(steps)))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"stream.schedule: unreadable entry ({e})") from e
    if not phases:
        raise ValueError("stream.schedule: missing or empty")
    total = sum(d for _, d in phases)
    if end is None:
        end = _as_float(config.get("total_steps"))
        end = total if math.isnan(end) else end
    starts = np.cumsum([0.0] + [d for _, d in phases])[:-1]
    boundaries = starts[1:][starts[1:] < end]
    nxt = np.append(boundaries[1:], end)
    return StreamTruth(
        boundaries=boundaries,
        phase_lengths=np.minimum(nxt, end) - boundaries,
        blur=float(stream.get("blur") or 0.0),
        end=float(end),
    )


def score_detector(events: RunEvents, truth: StreamTruth) -> DetectorScore:
    """Score one run's shift and consolidation events against the true switches.

    For switch k at boundary b (phase length L after it, blur w), the window is
    [b - w/2, b - w/2 + L): its first shift is the switch's detection and gives the shift lag
    (minus b), none means missed; its first consolidation gives the consolidation lag. Every
    other shift is false (a repeat within a window, or one outside every window). Events at or
    after ``truth.end`` are ignored.
    """
    half = truth.blur / 2
    shifts = events.shift[events.shift < truth.end]
    settled = events.settled[events.settled < truth.end]

    def first_in(steps: np.ndarray, lo: float, hi: float) -> float:
        inside = steps[(steps >= lo) & (steps < hi)]
        return float(inside[0]) if inside.size else math.nan

    shift_lags, cons_lags = [], []
    detections = 0
    for b, length in zip(truth.boundaries, truth.phase_lengths, strict=True):
        lo, hi = b - half, b - half + length
        first = first_in(shifts, lo, hi)
        detections += not math.isnan(first)
        shift_lags.append(first - b)
        cons_lags.append(first_in(settled, lo, hi) - b)
    return DetectorScore(
        shift_lags=np.array(shift_lags, dtype=float),
        consolidation_lags=np.array(cons_lags, dtype=float),
        false_shifts=int(shifts.size - detections),
        n_consolidations=int(settled.size),
        n_phases=truth.n_phases,
    )


#: Per-run quantities of the detector table, with their display names.
DETECTOR_COLUMNS: dict[str, str] = {
    "detected": "switches detected",
    "shift_lag": "shift lag (steps)",
    "consolidation_lag": "consolidation lag (steps)",
    "consolidated": "switches consolidated",
    "false_shifts": "false shifts",
    "consolidations_per_phase": "consolidations / phase",
}


@dataclass
class DetectorResult:
    """What :func:`detector_quality` found."""

    table: Any
    """pandas DataFrame, one row per (method, setting): ``n_runs``, ``blur``, ``switches``
    (per run) and ``<q>_median``, ``<q>_min``, ``<q>_max`` over runs for each q in
    :data:`DETECTOR_COLUMNS`."""
    per_run: Any
    """pandas DataFrame, one row per scored run: its values of :data:`DETECTOR_COLUMNS`
    (lags: median over the run's switches) and its event steps."""
    skipped: list[tuple[Path, str]]
    """Runs with a matching trigger that could not be scored, and why."""


def _run_block(run_dir: Path) -> dict[str, Any]:
    try:
        run = json.loads((run_dir / METRICS_FILE).read_text()).get("run")
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    return run if isinstance(run, dict) else {}


def _nan_median(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else math.nan


def detector_quality(
    runs: Sequence[RunRecord], triggers: Iterable[str] = ("plateau",)
) -> DetectorResult:
    """Lag, hit rate, false shifts and consolidations of task-free triggers, per setting.

    Scores every run whose config (``config.yaml``) names one of ``triggers`` as
    ``continual.trigger`` with :func:`score_detector`, against the switches of its own
    config's stream (:func:`stream_truth`, up to the env steps it trained for), with the
    events of :func:`read_events`. Runs without a config are not candidates; candidates that
    cannot be scored (no events, a joint stream) are listed in ``skipped``.

    Per run the lags are the median over its switches that had the event. The table gives,
    per (method, setting), the median and range (min, max) over runs of each quantity, so a
    sweep over ``stream.blur`` gives one row per blur.
    """
    import pandas as pd

    wanted = set(triggers)
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[Path, str]] = []
    for r in runs:
        try:
            cfg = run_config(r.path)
        except ValueError as e:
            skipped.append((r.path, str(e)))
            continue
        if cfg is None:
            continue
        trigger = str((cfg.get("continual") or {}).get("trigger"))
        if trigger not in wanted:
            continue
        end = _as_float(_run_block(r.path).get("num_timesteps"))
        try:
            truth = stream_truth(cfg, None if math.isnan(end) else end)
            events = read_events(r.path)
        except ValueError as e:
            skipped.append((r.path, str(e)))
            continue
        score = score_detector(events, truth)
        rows.append(
            {
                "path": str(r.path),
                "method": r.method,
                "setting": r.setting,
                "seed": r.seed,
                "trigger": trigger,
                "blur": truth.blur,
                "switches": len(truth.boundaries),
                "detected": score.detected,
                "shift_lag": _nan_median(score.shift_lags),
                "consolidation_lag": _nan_median(score.consolidation_lags),
                "consolidated": score.consolidated,
                "false_shifts": float(score.false_shifts),
                "consolidations_per_phase": score.consolidations_per_phase,
                "source": events.source,
                "shift_steps": " ".join(f"{s:.0f}" for s in events.shift),
                "settled_steps": " ".join(f"{s:.0f}" for s in events.settled),
            }
        )
    per_run = pd.DataFrame(rows)
    table_rows: list[dict[str, Any]] = []
    if rows:
        for (method, setting, trigger), g in per_run.groupby(
            ["method", "setting", "trigger"], sort=False
        ):
            blurs = sorted(set(g["blur"]))
            switches = sorted(set(g["switches"]))
            row: dict[str, Any] = {
                "method": method,
                "setting": setting,
                "trigger": trigger,
                "n_runs": len(g),
                "blur": blurs[0] if len(blurs) == 1 else " ".join(f"{b:g}" for b in blurs),
                "switches": switches[0] if len(switches) == 1 else float(np.median(switches)),
            }
            for q in DETECTOR_COLUMNS:
                vals = g[q].to_numpy(float)
                finite = vals[~np.isnan(vals)]
                row[f"{q}_median"] = float(np.median(finite)) if finite.size else math.nan
                row[f"{q}_min"] = float(finite.min()) if finite.size else math.nan
                row[f"{q}_max"] = float(finite.max()) if finite.size else math.nan
            table_rows.append(row)
    table = pd.DataFrame(table_rows)
    if len(table):
        table["_blur"] = pd.to_numeric(table["blur"], errors="coerce")
        table = table.sort_values(["method", "_blur", "setting"], kind="stable").drop(
            columns="_blur"
        )
    return DetectorResult(table=table.reset_index(drop=True), per_run=per_run, skipped=skipped)


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
    # The legend goes below the axes (one row per line), so many lines never cover the data.
    fig, ax = plt.subplots(figsize=(7.0, 3.8 + 0.22 * len(lines)))
    all_x = np.concatenate([ln.strengths for ln in lines])
    for i, ln in enumerate(lines):
        color, style = f"C{i % 10}", ("-", "--", ":")[i // 10 % 3]
        label = _label(f"{ln.method} ({ln.strength_name})", ln.base_setting)
        if ln.pooled:
            ax.plot(ln.strengths, ln.mean, "o", color=color, label=f"{label}, all settings")
            continue
        ax.plot(ln.strengths, ln.mean, "o", ls=style, color=color, label=label)
        ax.fill_between(ln.strengths, ln.lo, ln.hi, color=color, alpha=0.12, lw=0)
    if np.all(all_x > 0) and all_x.max() / all_x.min() >= 10:
        ax.set_xscale("log")
    names = sorted({ln.strength_name for ln in lines})
    ax.set_xlabel(f"strength ({', '.join(names)})")
    ax.set_ylabel(metric_name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _axis_title(name: str, values: Sequence[float | str]) -> str:
    """Axis title; says 'log-spaced' when the values are positive and span a decade or more
    (the cells are equally spaced, so the axis is then a log axis)."""
    nums = [v for v in values if isinstance(v, float)]
    if len(nums) == len(values) and nums and min(nums) > 0 and max(nums) / min(nums) >= 10:
        return f"{name} (log-spaced)"
    return name


def plot_heatmaps(maps: Sequence[Heatmap], path: Path, metric_name: str) -> Path:
    """One panel per map: the cell means in colour, annotated with the mean and the number of
    runs (seeds); empty cells are blank."""
    plt = _pyplot()
    ncols = min(2, len(maps))
    nrows = math.ceil(len(maps) / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(
            max(4.5, 0.9 * max(len(m.strengths) for m in maps) + 2.2) * ncols,
            (0.6 * max(len(m.axis_values) for m in maps) + 2.2) * nrows,
        ),
        squeeze=False,
    )
    fig.subplots_adjust(hspace=0.45)  # room for a panel's x label above the next one's title
    finite = np.concatenate([m.mean[np.isfinite(m.mean)] for m in maps])
    unit = finite.size > 0 and finite.min() >= 0 and finite.max() <= 1
    vmin, vmax = (0.0, 1.0) if unit or not finite.size else (finite.min(), finite.max())
    image = None
    for ax, m in zip(axes.flat, maps, strict=False):
        image = ax.imshow(
            np.ma.masked_invalid(m.mean),
            origin="lower",
            cmap="viridis",
            vmin=vmin,
            vmax=vmax,
            aspect="auto",
        )
        for i in range(m.mean.shape[0]):
            for j in range(m.mean.shape[1]):
                if m.n_runs[i, j] == 0:
                    continue
                v = m.mean[i, j]
                dark = not math.isnan(v) and (v - vmin) < 0.6 * (vmax - vmin or 1.0)
                ax.text(
                    j,
                    i,
                    f"{_fmt(v)}\nn={m.n_runs[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
        ax.set_xticks(range(len(m.strengths)), [_fmt_axis(float(s)) for s in m.strengths])
        ax.set_yticks(range(len(m.axis_values)), [_fmt_axis(v) for v in m.axis_values])
        ax.set_xlabel(_axis_title(f"strength {m.strength_name}", [float(s) for s in m.strengths]))
        ax.set_ylabel(_axis_title(m.axis_key, m.axis_values))
        ax.set_title(_label(m.method, m.setting), fontsize=9)
    for ax in list(axes.flat)[len(maps) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label=metric_name, shrink=0.9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
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


def heatmap_markdown(m: Heatmap) -> str:
    """One map as a Markdown table: rows are the axis values, columns the strengths, cells
    'mean (runs)'; the best cell in bold, empty cells '-'."""
    best = np.nanmax(m.mean) if np.isfinite(m.mean).any() else math.nan
    header = [f"{m.axis_key} \\ {m.strength_name}", *[_fmt_axis(float(s)) for s in m.strengths]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, v in enumerate(m.axis_values):
        cells = []
        for j in range(len(m.strengths)):
            if m.n_runs[i, j] == 0:
                cells.append("-")
                continue
            text = f"{_fmt(m.mean[i, j])} ({m.n_runs[i, j]})"
            cells.append(f"**{text}**" if m.mean[i, j] == best else text)
        lines.append("| " + " | ".join([_fmt_axis(v), *cells]) + " |")
    return "\n".join(lines)


def _range_cell(row: Any, q: str, fmt: str = "{:.2f}") -> str:
    med, lo, hi = row[f"{q}_median"], row[f"{q}_min"], row[f"{q}_max"]
    if math.isnan(med):
        return "n/a"
    if lo == hi:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def detector_markdown(table: Any) -> str:
    """The :func:`detector_quality` table in Markdown: 'median [min, max]' over runs."""
    header = ["method", "setting", "runs", "blur", "switches / run", *DETECTOR_COLUMNS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        blur = row["blur"]
        cells = [
            f"{row['method']} ({row['trigger']})",
            f"`{row['setting']}`" if row["setting"] else "",
            str(row["n_runs"]),
            f"{blur:g}" if isinstance(blur, float | int) else str(blur),
            f"{row['switches']:g}",
            *[
                _range_cell(
                    row,
                    q,
                    "{:.0f}" if q.endswith("lag") else "{:g}" if q == "false_shifts" else "{:.2f}",
                )
                for q in DETECTOR_COLUMNS
            ],
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
    heatmaps: list[Heatmap] = field(default_factory=list)
    detector: DetectorResult | None = None
    """None when no run has a trigger of ``detector_triggers``."""
    near_best: NearBestRule = field(default_factory=lambda: NearBestRule(tol=0.05))


def write_report(
    roots: Sequence[str | Path],
    out_dir: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.9,
    n_boot: int = 2000,
    tol: float = 0.05,
    title: str = "Study report",
    near_best: float | None = None,
    detector_triggers: Iterable[str] = ("plateau",),
) -> Report:
    """Read all runs under ``roots`` and write the tables, plots and ``report.md``.

    Args:
        roots: directories (or metrics.json files) to read.
        out_dir: where to write; default ``<roots[0]>/report``.
        metrics: metric keys for the table; default final average success, forgetting and
            plasticity (when the runs have them), plus ``forward_transfer`` when any run has it.
        confidence: mass of the bootstrap intervals.
        n_boot: bootstrap resamples.
        tol: absolute near-best rule: strengths whose mean is within ``tol`` (units of the
            metric) of the best; used unless ``near_best`` is given.
        title: heading of the Markdown.
        near_best: relative near-best rule instead: strengths whose mean is at least
            ``near_best`` x the best, in (0, 1] (the study's width uses 0.9).
        detector_triggers: ``continual.trigger`` values whose runs get the detector table
            (``detector.csv``); empty: none.

    Raises:
        FileNotFoundError: a root does not exist.
        ValueError: no readable metrics.json was found (the message names the roots), or
            an invalid near-best rule.
    """
    rule = NearBestRule(frac=near_best) if near_best is not None else NearBestRule(tol=tol)
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
    maps = heatmaps(runs, "average_performance")
    if maps:
        plots["heatmap"] = plot_heatmaps(maps, out / "heatmap.png", names["average_performance"])
    triggers = list(detector_triggers)
    detector = detector_quality(runs, triggers) if triggers else None
    if detector is not None and not len(detector.table) and not detector.skipped:
        detector = None
    if detector is not None:
        detector.table.to_csv(out / "detector.csv", index=False)

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
            "Near-best range: the contiguous strengths around the line's best whose mean final "
            f"average success is {rule.describe()}; width: log10(high / low), in decades of "
            "strength.",
            "",
            "| method | setting | strengths | best | near-best range | width (decades) |",
            "|---|---|---|---|---|---|",
        ]
        for ln in lines:
            low, high, dec = near_best_range(ln.strengths, ln.mean, rule)
            where = (
                "all settings pooled" if ln.pooled else ln.base_setting and f"`{ln.base_setting}`"
            )
            if np.isfinite(ln.mean).any():
                best = int(np.nanargmax(ln.mean))
                best_cell = f"{_fmt(ln.mean[best])} at {ln.strengths[best]:g}"
            else:
                best_cell = "n/a"
            if math.isnan(low):
                span = "n/a (best <= 0)" if rule.relative and best_cell != "n/a" else "n/a"
            else:
                span = f"{low:g} - {high:g}"
            md.append(
                f"| {ln.method} ({ln.strength_name}) | {where} | {len(ln.strengths)} | "
                f"{best_cell} | {span} | {_fmt(dec)} |"
            )
        md += ["", f"![sensitivity]({plots['sensitivity'].name})"]
    if maps:
        md += [
            "",
            "## Strength x second swept setting",
            "",
            "Mean final average success per cell over its runs (seeds), number of runs in "
            "brackets, best cell in bold; runs share a map only when everything else is the "
            "same.",
        ]
        for m in maps:
            md += [
                "",
                f"**{_label(m.method, m.setting)}**: {m.axis_key} x {m.strength_name}",
                "",
                heatmap_markdown(m),
            ]
        md += ["", f"![heatmap]({plots['heatmap'].name})"]
    if detector is not None:
        md += [
            "",
            "## Detector quality",
            "",
            f"Runs with trigger {', '.join(f'`{t}`' for t in triggers)}, scored against the "
            "true switches of their stream (the schedule's phase ends, i.e. the middle of each "
            "blur window, b). Per switch, the window is [b - blur/2, b - blur/2 + phase "
            "length): *shift lag* = first detected shift in it - b (missed: none; negative: "
            "detected within the blur), *consolidation lag* = first consolidation in it - b. "
            "*False shifts* (per run): every shift that is not the first in a switch's window. "
            "Lags are per "
            "run the median over its switches; cells: median over runs [min, max]. Lags in "
            "env steps.",
            "",
        ]
        if len(detector.table):
            md.append(detector_markdown(detector.table))
        else:
            md.append("No run could be scored.")
        md += [f"- not scored: `{p}`: {why}" for p, why in detector.skipped]
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
        heatmaps=maps,
        detector=detector,
        near_best=rule,
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
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument(
        "--tol",
        type=float,
        default=None,
        help="absolute near-best rule: strengths whose mean final average success is within "
        "TOL of the best (default: 0.05)",
    )
    rule.add_argument(
        "--near-best",
        type=float,
        default=None,
        metavar="FRAC",
        help="relative near-best rule instead: strengths whose mean is >= FRAC x the best, "
        "FRAC in (0, 1]; the study's width uses 0.9",
    )
    parser.add_argument(
        "--detector-triggers",
        default="plateau",
        help="comma-separated continual.trigger values whose runs get the detector table "
        "(default: plateau; e.g. plateau,boundary adds the oracle as a reference; '' for none)",
    )
    parser.add_argument("--title", default="Study report")
    args = parser.parse_args(argv)
    try:
        report = write_report(
            args.dirs,
            out_dir=args.out,
            metrics=args.metrics.split(",") if args.metrics else None,
            confidence=args.confidence,
            n_boot=args.n_boot,
            tol=0.05 if args.tol is None else args.tol,
            title=args.title,
            near_best=args.near_best,
            detector_triggers=[t for t in args.detector_triggers.split(",") if t.strip()],
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
