"""Detector quality: when task-free triggers fired (shifts, consolidations) against the
stream's true task switches, which the run's record holds (``stream`` in ``metrics.json``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from continual.metrics import RELEARN_THRESHOLD
from studies.report.records import RunEvents, RunRecord, as_float, read_events, run_config


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
    unsolved: np.ndarray | None = None
    """Per switch: whether the incoming task was unsolved when its window opened (success
    below the relearn threshold); ``None`` when unknown."""

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

    @property
    def detected_unsolved(self) -> float:
        """Fraction detected of the switches to a task not yet solved (NaN without any, or
        when unknown): a switch to a task the agent already solves drops no return, and
        needs no exploration reset."""
        if self.unsolved is None or not self.unsolved.any():
            return math.nan
        return float(np.mean(~np.isnan(self.shift_lags[self.unsolved])))


def _truth(switches: np.ndarray, blur: float, end: float) -> StreamTruth:
    """The switches before ``end``, each with the length of the phase it starts (cut at
    ``end``)."""
    boundaries = switches[switches < end]
    nxt = np.append(boundaries[1:], end)
    return StreamTruth(
        boundaries=boundaries,
        phase_lengths=np.minimum(nxt, end) - boundaries,
        blur=blur,
        end=float(end),
    )


def stream_truth(stream: Mapping[str, Any], end: float | None = None) -> StreamTruth:
    """The true switches of a run's stream, from the ``stream`` block of its record
    (:class:`agents.record.StreamInfo`).

    :param stream: the block: ``boundaries`` (env steps), ``blur``, ``joint``, ``windows``.
    :param end: env steps the run trained for; default the end of the last training window.
        Switches at or after ``end`` are dropped. A joint stream has no switch, so every shift
        on it is false.
    :raises ValueError: the block is unreadable.
    """
    try:
        switches = np.array([float(b) for b in stream["boundaries"]], dtype=float)
        blur = float(stream.get("blur") or 0.0)
        if end is None:
            end = max(float(e) for _, e in stream["windows"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"stream: unreadable record block ({e!r})") from e
    return _truth(switches, blur, end)


def config_stream_truth(config: dict[str, Any], end: float | None = None) -> StreamTruth:
    """The true switches of the stream in a run's resolved config, for runs whose record has
    no ``stream`` block (recorded before it existed).

    Consecutive phases of the same task are one phase (no switch between them), as in
    :meth:`envs.StreamSpec.boundaries`.

    :param config: the run's config (``stream.schedule`` as ``{task, steps}`` entries or
        ``[task, steps]`` pairs, ``stream.blur``, optional ``stream.joint``, ``total_steps``).
    :param end: env steps the run trained for; default ``total_steps``, else the schedule's
        sum. Switches at or after ``end`` are dropped. A joint stream has none.
    :raises ValueError: its schedule is unreadable.
    """
    stream = config.get("stream") or {}
    phases = _phases(stream)
    total = sum(d for _, d in phases)
    if end is None:
        end = as_float(config.get("total_steps"))
        end = total if math.isnan(end) else end
    if stream.get("joint"):
        return _truth(np.array([]), 0.0, end)
    starts = np.cumsum([0.0] + [d for _, d in phases])[:-1]
    return _truth(starts[1:], float(stream.get("blur") or 0.0), end)


def _phases(stream: Mapping[str, Any]) -> list[tuple[Any, float]]:
    """The config's schedule as (task, steps), consecutive phases of one task merged."""
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
    return phases


def unsolved_at_switches(
    run: RunRecord,
    config: Mapping[str, Any],
    truth: StreamTruth,
    threshold: float = RELEARN_THRESHOLD,
) -> np.ndarray | None:
    """Per switch of ``truth``: whether the task it brings was unsolved when the switch's
    window opened, i.e. its success at the last evaluation at or before b − blur/2 was below
    ``threshold`` (the relearn threshold; no evaluation yet counts as unsolved). ``None`` when
    the run has no success matrix or its tasks are not the schedule's (navigation task names).
    """
    if not run.success.size or not truth.boundaries.size:
        return None
    try:
        incoming = [str(task) for task, _ in _phases(config.get("stream") or {})[1:]]
    except ValueError:
        return None
    if len(incoming) < len(truth.boundaries) or not set(incoming) <= set(run.tasks):
        return None
    column = {task: k for k, task in enumerate(run.tasks)}
    out = []
    for b, task in zip(truth.boundaries, incoming, strict=False):
        before = np.flatnonzero(run.eval_steps <= b - truth.blur / 2)
        success = run.success[before[-1], column[task]] if before.size else 0.0
        out.append(bool(success < threshold))
    return np.array(out, dtype=bool)


def score_detector(
    events: RunEvents, truth: StreamTruth, unsolved: np.ndarray | None = None
) -> DetectorScore:
    """Score one run's shift and consolidation events against the true switches.

    For switch k at boundary b (phase length L after it, blur w), the window is
    [b - w/2, b - w/2 + L): its first shift is the switch's detection and gives the shift lag
    (minus b), none means missed; its first consolidation gives the consolidation lag. Every
    other shift is false (a repeat within a window, or one outside every window). Events at or
    after ``truth.end`` are ignored. ``unsolved`` (from :func:`unsolved_at_switches`) marks
    the switches to a task not yet solved.
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
        unsolved=unsolved,
    )


#: Per-run quantities of the detector table, with their display names.
DETECTOR_COLUMNS: dict[str, str] = {
    "detected": "switches detected",
    "shift_lag": "shift lag (steps)",
    "consolidation_lag": "consolidation lag (steps)",
    "consolidated": "switches consolidated",
    "false_shifts": "false shifts",
    "consolidations_per_phase": "consolidations / phase",
    "detected_unsolved": "switches to an unsolved task detected",
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


def _nan_median(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else math.nan


def detector_quality(
    runs: Sequence[RunRecord], triggers: Iterable[str] = ("plateau",)
) -> DetectorResult:
    """Lag, hit rate, false shifts and consolidations of task-free triggers, per setting.

    Scores every run whose config (``config.yaml``) names one of ``triggers`` as
    ``continual.trigger`` with :func:`score_detector`, against the switches of its stream up
    to the env steps it trained for (:func:`stream_truth` of its record; records without the
    ``stream`` block: :func:`config_stream_truth` of its config), with the events of
    :func:`read_events`. Runs without a config are not candidates; candidates that
    cannot be scored (no events) are listed in ``skipped``. A run on a joint stream is scored
    for its false shifts alone: it has no switch to detect.

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
        try:
            truth = (
                stream_truth(r.stream, r.num_timesteps)
                if r.stream is not None
                else config_stream_truth(cfg, r.num_timesteps)
            )
            events = read_events(r.path)
        except ValueError as e:
            skipped.append((r.path, str(e)))
            continue
        score = score_detector(events, truth, unsolved_at_switches(r, cfg, truth))
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
                "detected_unsolved": score.detected_unsolved,
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
