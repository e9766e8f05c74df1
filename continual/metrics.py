"""Continual-learning metrics on success matrices (Continual World definitions).

All functions are pure and work on numpy arrays:

- ``S``: success matrix, shape ``(n_evals, n_tasks)``; ``S[i, k]`` is the success rate in
  [0, 1] of task ``k`` at the ``i``-th evaluation.
- ``eval_steps``: shape ``(n_evals,)``, strictly increasing env-step times of the evaluations.
- ``windows``: shape ``(n_tasks, 2)``, ``[start, end)`` env-step interval in which task ``k``
  was trained (its "own window"). For a task seen in several phases, pass its last window.

Definitions (Wolczyk et al. 2021, "Continual World"):

- average performance: mean over tasks of the final success, ``S[-1].mean()``.
- plasticity of task k: success at the end of k's own window.
- forgetting of task k: plasticity minus final success. Defined only for tasks whose window
  ends before the last evaluation (some later training happened); others are NaN.
- AUC of task k over an interval: time-normalised area under its success curve, in [0, 1].
- forward transfer of task k: ``(AUC_k - AUC_ref_k) / (1 - AUC_ref_k)``, both AUCs over k's
  own window, the reference from a single-task run trained from scratch on k alone.

Plasticity as a cost (:func:`relearn`): the env steps task k needs, from the start of its own
window, to first reach a success threshold, divided by the steps it needs from scratch. A cost
of 1 means a task is learned in sequence as fast as from scratch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "RELEARN_THRESHOLD",
    "auc",
    "average_forgetting",
    "average_performance",
    "forgetting",
    "forward_transfer",
    "plasticity",
    "relearn",
    "steps_to_threshold",
    "summarize",
    "window_end_index",
]


#: The success at which a task counts as learned, for the relearn cost.
RELEARN_THRESHOLD = 0.8


def _check(S: np.ndarray, eval_steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    S = np.asarray(S, dtype=float)
    eval_steps = np.asarray(eval_steps, dtype=float)
    if S.ndim != 2 or S.shape[0] == 0:
        raise ValueError(f"S must have shape (n_evals >= 1, n_tasks), got {S.shape}")
    if eval_steps.shape != (S.shape[0],):
        raise ValueError(
            f"eval_steps must have shape ({S.shape[0]},) to match S, got {eval_steps.shape}"
        )
    if np.any(np.diff(eval_steps) <= 0):
        raise ValueError("eval_steps must be strictly increasing")
    return S, eval_steps


def _windows(windows: Any, n_tasks: int) -> np.ndarray:
    w = np.asarray(windows, dtype=float)
    if w.shape != (n_tasks, 2):
        raise ValueError(f"windows must have shape ({n_tasks}, 2), got {w.shape}")
    if np.any(w[:, 1] < w[:, 0]):
        raise ValueError("windows: every end must be >= its start")
    return w


def average_performance(S: np.ndarray) -> float:
    """Mean over tasks of the final success, ``S[-1].mean()``. ``S``: (n_evals, n_tasks)."""
    S = np.asarray(S, dtype=float)
    if S.ndim != 2 or S.shape[0] == 0:
        raise ValueError(f"S must have shape (n_evals >= 1, n_tasks), got {S.shape}")
    return float(S[-1].mean())


def window_end_index(eval_steps: np.ndarray, end: float) -> int:
    """Index of the evaluation that represents "the end of a window ending at ``end``".

    The last evaluation at or before ``end``; the first evaluation if all are later.
    ``eval_steps``: (n_evals,).
    """
    eval_steps = np.asarray(eval_steps, dtype=float)
    i = int(np.searchsorted(eval_steps, end, side="right")) - 1
    return max(i, 0)


def plasticity(S: np.ndarray, eval_steps: np.ndarray, windows: Any) -> np.ndarray:
    """Success of each task at the end of its own window.

    Shapes: ``S`` (n_evals, n_tasks), ``eval_steps`` (n_evals,), ``windows`` (n_tasks, 2).
    Returns (n_tasks,).
    """
    S, eval_steps = _check(S, eval_steps)
    w = _windows(windows, S.shape[1])
    return np.array([S[window_end_index(eval_steps, w[k, 1]), k] for k in range(S.shape[1])])


def forgetting(S: np.ndarray, eval_steps: np.ndarray, windows: Any) -> np.ndarray:
    """Per-task forgetting: success at the end of the task's own window minus final success.

    NaN for tasks whose window's end evaluation is the last evaluation (nothing was trained
    after them, e.g. the last task, or every task of a joint run).
    Shapes: ``S`` (n_evals, n_tasks), ``eval_steps`` (n_evals,), ``windows`` (n_tasks, 2).
    Returns (n_tasks,).
    """
    S, eval_steps = _check(S, eval_steps)
    w = _windows(windows, S.shape[1])
    last = S.shape[0] - 1
    out = np.full(S.shape[1], np.nan)
    for k in range(S.shape[1]):
        i = window_end_index(eval_steps, w[k, 1])
        if i < last and w[k, 1] < eval_steps[-1]:
            out[k] = S[i, k] - S[-1, k]
    return out


def average_forgetting(S: np.ndarray, eval_steps: np.ndarray, windows: Any) -> float:
    """Mean of :func:`forgetting` over the tasks where it is defined; NaN if none is."""
    f = forgetting(S, eval_steps, windows)
    return float(np.mean(f[~np.isnan(f)])) if np.any(~np.isnan(f)) else float("nan")


def auc(
    S: np.ndarray,
    eval_steps: np.ndarray,
    start: float | np.ndarray | None = None,
    end: float | np.ndarray | None = None,
) -> np.ndarray:
    """Time-normalised area under each task's success curve over ``[start, end]``, in [0, 1].

    The curve is linear between evaluations (trapezoid rule) and constant before the first and
    after the last one. ``start``/``end`` are scalars or per-task arrays (n_tasks,); default:
    the first and last evaluation times. A zero-length interval gives the success at that time.
    Shapes: ``S`` (n_evals, n_tasks), ``eval_steps`` (n_evals,). Returns (n_tasks,).
    """
    S, eval_steps = _check(S, eval_steps)
    n_tasks = S.shape[1]
    lo = np.broadcast_to(eval_steps[0] if start is None else np.asarray(start, float), (n_tasks,))
    hi = np.broadcast_to(eval_steps[-1] if end is None else np.asarray(end, float), (n_tasks,))
    out = np.empty(n_tasks)
    for k in range(n_tasks):
        a, b = float(lo[k]), float(hi[k])
        if b < a:
            raise ValueError(f"auc: end {b} < start {a} for task {k}")
        if b == a:
            out[k] = np.interp(a, eval_steps, S[:, k])
            continue
        inner = (eval_steps > a) & (eval_steps < b)
        xs = np.concatenate([[a], eval_steps[inner], [b]])
        ys = np.interp(xs, eval_steps, S[:, k])
        out[k] = float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0) / (b - a)
    return out


def forward_transfer(auc_task: np.ndarray, auc_reference: np.ndarray) -> np.ndarray:
    """Continual World forward transfer ``(AUC - AUC_ref) / (1 - AUC_ref)`` per task.

    Both arrays (n_tasks,), AUCs over each task's own window; NaN where the reference is
    NaN or already 1 (no room to improve on it).
    """
    a = np.asarray(auc_task, dtype=float)
    r = np.asarray(auc_reference, dtype=float)
    if a.shape != r.shape:
        raise ValueError(f"auc_task {a.shape} and auc_reference {r.shape} must match")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r < 1.0, (a - r) / (1.0 - r), np.nan)


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and np.isnan(x):
        return None
    return x


def summarize(
    S: np.ndarray,
    eval_steps: np.ndarray,
    windows: Any,
    task_names: Sequence[str],
    reference_auc: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """All metrics as a JSON-ready dict (NaN becomes ``None``).

    Keys: ``average_performance``, ``average_forgetting``, ``average_plasticity``,
    ``average_auc``, ``forward_transfer`` (mean; only with ``reference_auc``), and ``per_task``:
    ``{name: {final, plasticity, forgetting, auc, auc_own_window, forward_transfer}}``.
    ``reference_auc`` maps task names to the reference AUC over the task's own window (the
    ``auc_own_window`` of a single-task run).
    """
    S, eval_steps = _check(S, eval_steps)
    names = list(task_names)
    if len(names) != S.shape[1]:
        raise ValueError(f"task_names has {len(names)} entries, S has {S.shape[1]} tasks")
    w = _windows(windows, S.shape[1])
    plast = plasticity(S, eval_steps, w)
    forg = forgetting(S, eval_steps, w)
    auc_all = auc(S, eval_steps)
    auc_own = auc(S, eval_steps, w[:, 0], w[:, 1])
    if reference_auc is not None:
        ref = np.array([float(reference_auc.get(n, np.nan)) for n in names])
        ft = forward_transfer(auc_own, ref)
    else:
        ft = np.full(len(names), np.nan)
    per_task = {
        n: {
            "final": float(S[-1, k]),
            "plasticity": float(plast[k]),
            "forgetting": _nan_to_none(float(forg[k])),
            "auc": float(auc_all[k]),
            "auc_own_window": float(auc_own[k]),
            "forward_transfer": _nan_to_none(float(ft[k])),
        }
        for k, n in enumerate(names)
    }
    ft_ok = ft[~np.isnan(ft)]
    return {
        "average_performance": average_performance(S),
        "average_forgetting": _nan_to_none(average_forgetting(S, eval_steps, w)),
        "average_plasticity": float(plast.mean()),
        "average_auc": float(auc_all.mean()),
        "forward_transfer": float(ft_ok.mean()) if ft_ok.size else None,
        "per_task": per_task,
    }


def steps_to_threshold(
    S: np.ndarray, eval_steps: np.ndarray, windows: Any, threshold: float = RELEARN_THRESHOLD
) -> np.ndarray:
    """Env steps from the start of each task's own window to the first evaluation in that
    window (its end included) where its success reaches ``threshold``; NaN if none does.

    The resolution is the evaluation interval. Shapes: ``S`` (n_evals, n_tasks),
    ``eval_steps`` (n_evals,), ``windows`` (n_tasks, 2). Returns (n_tasks,).
    """
    S, eval_steps = _check(S, eval_steps)
    w = _windows(windows, S.shape[1])
    out = np.full(S.shape[1], np.nan)
    for k in range(S.shape[1]):
        inside = (eval_steps >= w[k, 0]) & (eval_steps <= w[k, 1]) & (S[:, k] >= threshold)
        if np.any(inside):
            out[k] = eval_steps[np.argmax(inside)] - w[k, 0]
    return out


def relearn(
    S: np.ndarray,
    eval_steps: np.ndarray,
    windows: Any,
    task_names: Sequence[str],
    threshold: float = RELEARN_THRESHOLD,
    scratch_steps: Mapping[str, float] | None = None,
    visits: Sequence[tuple[str, float, float]] | None = None,
) -> dict[str, Any]:
    """The relearn cost of each task: :func:`steps_to_threshold` in the window of its first
    visit, divided by the steps from scratch, as a JSON-ready dict; and the cost of each revisit.

    The steps from scratch come from ``scratch_steps`` (task name -> steps, e.g. the
    ``steps_to_threshold`` of single-task runs); without it, from the first visit of the stream,
    which starts from scratch, for every task. A task that never reaches the threshold in its
    first visit has no cost and is listed in ``unlearned``; the median over the tasks after the
    first counts it as infinitely costly (``None`` when the median falls on one). A revisit
    costs the steps from its start to the threshold over the same steps from scratch: 0 for a
    task that was kept, about 1 for one re-learned as if new.

    Keys: ``threshold``, ``scratch`` (``"reference"`` or the first task's name),
    ``steps_to_threshold`` and ``cost`` (per task name, first visits), ``cost_by_position``
    (tasks in the order of their first visits), ``unlearned``, ``median_cost``, ``revisits``
    (per later visit: ``task``, ``start``, ``steps_to_threshold``, ``cost``) and
    ``median_revisit_cost`` (``None`` without revisits or when its median is infinite).
    Shapes: ``S`` (n_evals, n_tasks), ``eval_steps`` (n_evals,), ``windows`` (n_tasks, 2): the
    tasks' windows, used as their only visits when ``visits`` is ``None``. ``visits``: the
    stream's single-task phases in order, ``(task name, start, end)``
    (:meth:`envs.StreamSpec.visits`).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    names = list(task_names)
    w = _windows(windows, len(names))
    if visits is None:
        visits = [
            (names[k], w[k, 0], w[k, 1])
            for k in sorted(range(len(names)), key=lambda k: (w[k, 0], k))
        ]
    unknown = sorted({t for t, _, _ in visits} - set(names))
    if unknown:
        raise ValueError(f"visits name tasks {unknown} that are not in task_names {names}")
    first: dict[str, tuple[float, float]] = {}
    later: list[tuple[str, float, float]] = []
    for task, a, b in visits:
        if task in first:
            later.append((task, float(a), float(b)))
        else:
            first[task] = (float(a), float(b))
    order = [names.index(t) for t in first]
    # A task no visit draws alone (a mixture phase) has an empty window: never "learned".
    w_first = np.array([first.get(n, (np.nan, np.nan)) for n in names], dtype=float)
    steps = np.full(len(names), np.nan)
    if order:
        steps[order] = steps_to_threshold(S[:, order], eval_steps, w_first[order], threshold)
    if scratch_steps is not None:
        scratch = np.array([float(scratch_steps.get(n, np.nan)) for n in names])
        source = "reference"
    else:
        scratch = np.full(len(names), steps[order[0]] if order else np.nan)
        source = names[order[0]] if order else ""
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(scratch > 0, steps / scratch, np.nan)
    after_first = [cost[k] if not np.isnan(steps[k]) else np.inf for k in order[1:]]
    median = float(np.median(after_first)) if after_first else np.nan
    revisits = []
    for task, a, b in later:
        k = names.index(task)
        got = float(steps_to_threshold(S[:, [k]], eval_steps, [(a, b)], threshold)[0])
        c = got / scratch[k] if scratch[k] > 0 else np.nan
        revisits.append((task, a, got, c))
    revisit_costs = [c if not np.isnan(got) else np.inf for _, _, got, c in revisits]
    median_revisit = float(np.median(revisit_costs)) if revisit_costs else np.nan
    return {
        "threshold": float(threshold),
        "scratch": source,
        "steps_to_threshold": {n: _nan_to_none(float(steps[k])) for k, n in enumerate(names)},
        "cost": {n: _nan_to_none(float(cost[k])) for k, n in enumerate(names)},
        "cost_by_position": [_nan_to_none(float(cost[k])) for k in order],
        "unlearned": [names[k] for k in order if np.isnan(steps[k])],
        "median_cost": None if not np.isfinite(median) else median,
        "revisits": [
            {
                "task": t,
                "start": int(a),
                "steps_to_threshold": _nan_to_none(got),
                "cost": _nan_to_none(float(c)),
            }
            for t, a, got, c in revisits
        ],
        "median_revisit_cost": None if not np.isfinite(median_revisit) else median_revisit,
    }
