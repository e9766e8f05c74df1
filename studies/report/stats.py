"""Statistics over a study's runs: grouping by (method, setting), percentile-bootstrap
intervals over seeds, mean curves, near-best strength ranges and strength x setting heatmaps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studies.report.records import (
    RunRecord,
    config_or_none,
    flatten,
    override_key,
    parse_value,
    setting_items,
)

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
    "median_relearn_cost": "relearn cost (median)",
    "median_revisit_cost": "revisit cost (median)",
}

#: Metrics summarised over seeds by their median rather than their mean: a run's relearn cost
#: is infinite when its median task was never learned, and a mean would be infinite too.
MEDIAN_METRICS: frozenset[str] = frozenset({"median_relearn_cost", "median_revisit_cost"})


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.9,
    n_boot: int = 2000,
    seed: int = 0,
    statistic: str = "mean",
) -> tuple[float, float, float]:
    """A statistic of ``values`` over axis 0 and a percentile-bootstrap interval of it.

    :param values: shape (n,) or (n, T): n independent runs (seeds), optionally a curve each.
    :param confidence: interval mass in (0, 1), e.g. 0.9 for a 90% interval.
    :param n_boot: number of resamples.
    :param seed: resampling seed, so that reports are reproducible.
    :param statistic: ``"mean"`` or ``"median"`` (1-D only; infinite values allowed: the
        interval ends are resampled medians, never interpolated).

    :return: (statistic, low, high), floats for 1-D input, arrays of shape (T,) for 2-D input.
        NaNs in a 1-D input are dropped; an empty input gives NaNs. With one value the interval
        is that value.
    """
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
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
    if statistic == "median":
        if x.ndim != 1:
            raise ValueError("statistic='median' takes 1-D values")
        mid = float(np.median(x))
        if n == 1:
            return mid, mid, mid
        rng = np.random.default_rng(seed)
        boot = np.median(x[rng.integers(0, n, size=(n_boot, n))], axis=1)
        alpha = (1.0 - confidence) / 2.0
        lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], method="inverted_cdf")
        return mid, float(lo), float(hi)
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


def summarize_groups(
    runs: Sequence[RunRecord],
    metrics: Sequence[str] = tuple(DEFAULT_METRICS),
    confidence: float = 0.9,
    n_boot: int = 2000,
):
    """One row per (method, setting): seeds, and per metric the mean over seeds (the median
    for :data:`MEDIAN_METRICS`), ``<m>_lo`` and ``<m>_hi``.

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
            statistic = "median" if m in MEDIAN_METRICS else "mean"
            mean, lo, hi = bootstrap_ci(vals, confidence, n_boot, statistic=statistic)
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

    :param strengths: strength values, any order (sorted here), shape (n,).
    :param mean: mean metric per strength, shape (n,); a NaN mean fails the rule, so it ends the
        range.
    :param rule: absolute or relative near-best rule.

    :return: (low, high, decades), with ``decades = log10(high / low)``: the *width* in decades of
        strength. A single point gives (x, x, 0). NaN for all three when no mean is finite or
        the rule is undefined (relative rule with best <= 0); ``decades`` is NaN when
        low <= 0.

    :raises ValueError: ``strengths`` and ``mean`` differ in length.
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
    for key, value in flatten(cfg).items():
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
        if len({parse_value(it.get(k)) for it in items}) > 1
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
    key_sets = [set(flatten(cfg)) for _, _, cfg in runs if cfg is not None]
    partial = set.union(*key_sets) - set.intersection(*key_sets) if key_sets else set()
    cells: dict[Any, dict[tuple[float | str, float], list[RunRecord]]] = {}
    labels: dict[Any, set[str]] = {}
    for r, it, cfg in runs:
        flat = None if cfg is None else flatten(cfg)
        if axis in it:
            value = parse_value(it[axis])
        elif flat is not None and axis in flat:
            value = parse_value(flat[axis])
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

    :return: The maps, by method, then axis and setting. Cell means ignore NaN metrics.
    """
    all_items = [set(setting_items(r.overrides)) for r in runs]
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
                    override_key(o): o.split("=", 1)[1] if "=" in o else ""
                    for o in setting_items(r.overrides)
                    if o not in common
                },
                config_or_none(r.path),
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
