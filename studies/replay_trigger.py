"""Replay recorded training signals through the plateau trigger with other thresholds.

The trigger is a plain object fed one value per PPO update, so its thresholds can be scored
offline: read each task-free run's logged signal (``continual/signal/<name>``), run it through
``PlateauTrigger`` with the signal's current defaults (``PLATEAU_DEFAULTS``) and the run's own
``trigger_kwargs``, overridden by each variant of the grid, and score the events against
the stream's true switches exactly as ``studies.report`` scores the real ones.

A replay is exact up to the first event that differs from the run's own: after it the real
agent would have consolidated or reset exploration at another time, and its signal would
differ. So it ranks thresholds by what they would have detected on the same training, not by
the learning result; confirm a change with real runs.

    python -m studies.replay_trigger runs/study_methods runs/holdout \\
        --grid rel_floor=0.15,0.2,0.25,0.35
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.record import RecordError, read_record
from continual.sb3.signals import PLATEAU_DEFAULTS
from continual.triggers import PlateauTrigger
from studies.report import (
    RunEvents,
    StreamTruth,
    config_stream_truth,
    read_run_scalars,
    run_config,
    score_detector,
    stream_truth,
)


def task_free_runs(roots: Sequence[str]) -> list[tuple[Path, dict[str, Any]]]:
    """Run directories under ``roots`` whose config uses the plateau trigger, with their
    configs (on a joint stream every shift is false)."""
    found = []
    for root in roots:
        for config_file in sorted(Path(root).rglob("config.yaml")):
            run_dir = config_file.parent
            if run_dir.name == ".hydra":
                continue
            config = run_config(run_dir) or {}
            if (config.get("continual") or {}).get("trigger") == "plateau":
                found.append((run_dir, config))
    return found


def run_truth(run_dir: Path, config: dict[str, Any], end: float) -> StreamTruth:
    """The run's true switches before ``end``: from its record's stream block, or, for runs
    recorded without it, from the stream of its config."""
    try:
        stream = read_record(run_dir).get("stream")
    except RecordError:
        stream = None
    if isinstance(stream, dict):
        return stream_truth(stream, end)
    return config_stream_truth(config, end)


def replay(signal: Mapping[int, float], settings: Mapping[str, Any]) -> RunEvents:
    """The events ``PlateauTrigger(**settings)`` gives on ``signal`` ({step: value})."""
    trigger = PlateauTrigger(**settings)
    settled, shift = [], []
    for step in sorted(signal):
        event = trigger.update(signal[step], step)
        if event.settled:
            settled.append(step)
        if event.shift:
            shift.append(step)
    return RunEvents(np.array(settled, float), np.array(shift, float), source="replay")


def parse_grid(items: Sequence[str]) -> list[dict[str, float]]:
    """``["k=a,b", "m=c"]`` -> every combination, as trigger keyword arguments."""
    axes = []
    for item in items:
        key, _, values = item.partition("=")
        if not key or not values:
            raise SystemExit(f"--grid {item!r}: expected key=value[,value...]")
        axes.append([(key, float(v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", help="run directories or folders of runs")
    parser.add_argument("--grid", nargs="*", default=[], help="key=v1,v2 trigger settings")
    args = parser.parse_args(argv)
    variants = parse_grid(args.grid)
    runs = task_free_runs(args.roots)
    if not runs:
        raise SystemExit("no task-free runs (continual.trigger=plateau) under " + str(args.roots))

    totals = [{"switches": 0, "detected": 0, "false": 0, "settled": 0} for _ in variants]
    skipped = 0
    for run_dir, config in runs:
        continual = config["continual"]
        name = continual.get("signal", "negative_return")
        tag = f"continual/signal/{name}"
        signal = read_run_scalars(run_dir, [tag])[tag]
        signal = {s: v for s, v in signal.items() if math.isfinite(v)}
        if not signal:
            skipped += 1
            continue
        truth = run_truth(run_dir, config, end=max(signal) + 1)
        own = {**PLATEAU_DEFAULTS.get(name, {}), **(continual.get("trigger_kwargs") or {})}
        for total, variant in zip(totals, variants, strict=True):
            score = score_detector(replay(signal, {**own, **variant}), truth)
            total["switches"] += score.shift_lags.size
            total["detected"] += int(np.sum(~np.isnan(score.shift_lags)))
            total["false"] += score.false_shifts
            total["settled"] += score.n_consolidations

    print(f"{len(runs) - skipped} task-free runs replayed ({skipped} without the signal)")
    print("| trigger settings | switches detected | false shifts | consolidations |")
    print("|---|---|---|---|")
    for total, variant in zip(totals, variants, strict=True):
        label = ", ".join(f"{k}={v:g}" for k, v in variant.items()) or "the current defaults"
        share = total["detected"] / total["switches"] if total["switches"] else math.nan
        print(
            f"| {label} | {total['detected']} / {total['switches']} ({share:.0%}) "
            f"| {total['false']} | {total['settled']} |"
        )


if __name__ == "__main__":
    main()
