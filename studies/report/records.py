"""Reading a study: find the run directories, read each run's record (``metrics.json``, through
:mod:`agents.record`), its resolved config and its TensorBoard scalars.

A run's *setting* is its Hydra overrides minus the seed and the method choice, so that seeds
pool and everything else that was swept separates.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.record import RECORD_FILE, RecordError, read_record, record_path

METRICS_FILE = RECORD_FILE
MATRIX_CSV = "success_matrix.csv"

#: Fields of ``metrics.json`` that the report reads (the record's layout is
#: :class:`agents.record.Record`; older and hand-written records may lack fields or use the
#: aliases below). Everything else is ignored.
SCHEMA_FIELDS: dict[str, str] = {
    "run.method": "name of the continual method (the `continual` config choice)",
    "run.seed": "integer seed",
    "run.stream": "name of the stream config (optional)",
    "run.strength": "c, or the adaptive target in adaptive mode; null when not applicable",
    "run.strength_name": '"c" | "adaptive_target" | null (agents.record.strength_name)',
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
    "stream": "the stream's switches and blur (agents.record.StreamInfo; detector table); "
    "runs recorded without it fall back to the stream of their config.yaml",
    "<any other top-level number>": "usable as a table metric (--metrics)",
}
"""Scalars may also sit in a nested ``"metrics"`` object (e.g. the output of
:func:`continual.metrics.summarize` stored under that key)."""


#: Overrides that never define a setting: the seed pools, the method has its own column, and
#: these only say where outputs go or how runs are launched.
_NON_SETTING_KEYS = (
    "seed",
    "continual",
    "hydra",
    "output_dir",
    "run_dir",
    "resume",
    "progress_bar",
)


def success_minus_forgetting(metrics: dict[str, Any]) -> float:
    """Final average success minus average forgetting.

    A missing ``forgetting`` counts as 0, so a single-task run scores its final success. NaN
    when ``average_performance`` is missing. Note that it ranks a run that never learns (0)
    above one that learns each task and forgets the earlier ones (negative); final average
    success alone already counts forgotten tasks as failures.
    """
    avg = as_float(metrics.get("average_performance"))
    forg = as_float(metrics.get("average_forgetting", metrics.get("forgetting")))
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
    num_timesteps: float | None = None
    """Env steps trained (``run.num_timesteps``); None when not recorded."""
    stream: dict[str, Any] | None = None
    """The record's ``stream`` block (:class:`agents.record.StreamInfo`); None in records
    written before it existed."""
    stream_name: str | None = None
    """The stream's name (``run.stream``), e.g. ``"standard"``."""


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


def as_float(x: Any) -> float:
    if x is None or isinstance(x, bool):
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def override_key(override: str) -> str:
    key = override.split("=", 1)[0]
    return key.lstrip("+~")


def read_yaml(path: Path) -> Any:
    # omegaconf is a hard dependency of the project and reads Hydra's own files faithfully.
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def _hydra_fallback(run_dir: Path) -> dict[str, Any]:
    """Method, seed, stream and overrides from Hydra's ``.hydra/`` files, where they exist."""
    out: dict[str, Any] = {}
    hydra_dir = run_dir / ".hydra"
    if (hydra_dir / "overrides.yaml").is_file():
        overrides = read_yaml(hydra_dir / "overrides.yaml") or []
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
        choices = (read_yaml(hydra_dir / "hydra.yaml") or {}).get("hydra", {})
        choices = (choices.get("runtime") or {}).get("choices") or {}
        out.setdefault("method", choices.get("continual"))
        out.setdefault("stream", choices.get("stream"))
    if "seed" not in out and (hydra_dir / "config.yaml").is_file():
        out["seed"] = (read_yaml(hydra_dir / "config.yaml") or {}).get("seed")
    return out


def _read_matrix_csv(path: Path, tasks: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(task names, steps, S) from the ``step,success/<task>,...`` columns of a matrix CSV;
    empty arrays when the file is absent."""
    if not path.is_file():
        return tasks, np.zeros(0), np.zeros((0, 0))
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


def setting_items(overrides: Sequence[str]) -> list[str]:
    """The overrides that can separate groups: not the seed, method, output or hydra ones."""
    kept = []
    for o in overrides:
        key = override_key(o)
        if key in _NON_SETTING_KEYS or key.startswith(("hydra.", "hydra/")):
            continue
        kept.append(_canonical(o.lstrip("+")))
    return sorted(kept)


def _canonical(override: str) -> str:
    """``key=False`` and ``key=false`` are the same config to Hydra, so they must group together."""
    key, sep, value = override.partition("=")
    if sep and value.lower() in ("true", "false"):
        return f"{key}={value.lower()}"
    return override


def _setting(
    overrides: Sequence[str], strength_name: str | None, drop: Iterable[str] = ()
) -> tuple[str, str]:
    """(setting, base_setting): overrides that separate groups, with/without the strength;
    ``drop``: overrides shared by every run of the study, which separate nothing."""
    dropped = set(drop)
    kept = [o for o in setting_items(overrides) if o not in dropped]
    setting = " ".join(kept)
    if strength_name:
        base = [o for o in kept if override_key(o).rsplit(".", 1)[-1] != strength_name]
    else:
        base = kept
    return setting, " ".join(base)


def load_run(path: str | Path) -> RunRecord:
    """Read one ``metrics.json`` (the file, or the run directory holding it).

    :raises ValueError: the file is missing, not valid JSON or not an object
        (:class:`agents.record.RecordError`), or has a malformed matrix; the message names
        the file.
    """
    path = record_path(path)
    data = read_record(path)
    run = data.get("run") or {}
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
    strength = as_float(run.get("strength"))

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
    relearn = data.get("relearn")
    if isinstance(relearn, dict):
        # A median that falls on a task never (re-)learned in its window is unbounded, and
        # leaving the run out would flatter its method.
        if "median_relearn_cost" not in metrics:
            metrics["median_relearn_cost"] = math.inf
        if relearn.get("revisits"):
            cost = relearn.get("median_revisit_cost")
            metrics["median_revisit_cost"] = math.inf if cost is None else float(cost)
    if "average_forgetting" not in metrics and "forgetting" in metrics:
        metrics["average_forgetting"] = metrics["forgetting"]
    if "average_performance" not in metrics and success.size:
        metrics["average_performance"] = float(success[-1].mean())
    metrics["success_minus_forgetting"] = success_minus_forgetting(metrics)

    stream = data.get("stream")
    trained = as_float(run.get("num_timesteps"))
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
        num_timesteps=None if math.isnan(trained) else trained,
        stream=stream if isinstance(stream, dict) else None,
        stream_name=None if run.get("stream") is None else str(run["stream"]),
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
    """Why a job directory has no metrics.json, from the notes studies.tune leaves (pruned.txt,
    error.txt); else 'failed or unfinished'."""
    for name, what in (("pruned.txt", "pruned"), ("error.txt", "failed")):
        note = job / name
        if note.is_file():
            lines = [ln for ln in note.read_text().splitlines() if ln.strip()]
            return f"{what}: {lines[-1].strip()}" if lines else what
    return "failed or unfinished"


def load_runs(roots: Iterable[str | Path], streams: Iterable[str] | None = None) -> LoadResult:
    """Read every run under ``roots``; unreadable files are skipped and listed, not fatal.

    A study that was interrupted or had a failing run still gets a report of what finished.

    :param streams: keep only the runs on these streams (by name; ``None``: every run).
    """
    roots = list(roots)
    wanted = None if streams is None else set(streams)
    runs: list[RunRecord] = []
    skipped: list[tuple[Path, str]] = []
    for path in find_metrics_files(roots):
        try:
            run = load_run(path)
        except ValueError as e:
            skipped.append((path, str(e)))
            continue
        if wanted is None or run.stream_name in wanted:
            runs.append(run)
    common: list[str] = []
    if runs:
        common = sorted(set.intersection(*(set(setting_items(r.overrides)) for r in runs)))
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


def run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's resolved config: ``config.yaml`` (written by train.py), else Hydra's
    ``.hydra/config.yaml``; None when neither exists.

    :raises ValueError: the file exists but is not a YAML mapping; the message names it.
    """
    run_dir = Path(run_dir)
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            try:
                cfg = read_yaml(path)
            except Exception as e:  # omegaconf raises several types for bad YAML
                raise ValueError(f"{path}: cannot read config ({e})") from e
            if not isinstance(cfg, dict):
                raise ValueError(f"{path}: expected a mapping, got {type(cfg).__name__}")
            return cfg
    return None


def config_or_none(run_dir: Path) -> dict[str, Any] | None:
    """:func:`run_config`, with an unreadable file treated as absent."""
    try:
        return run_config(run_dir)
    except ValueError:
        return None


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys; lists stay values (as JSON text, so hashable)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    key = prefix[:-1]
    return {key: json.dumps(node, sort_keys=True) if isinstance(node, list) else node}


def parse_value(text: Any) -> float | str:
    """An override or config value as a float when it is a number, else as text."""
    if isinstance(text, bool) or text is None:
        return str(text)
    try:
        return float(text)
    except (TypeError, ValueError):
        return str(text)


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

    :raises ValueError: neither source has the events; the message names the run.
    """
    run_dir = Path(run_dir)
    try:
        run = read_record(run_dir / METRICS_FILE).get("run") or {}
    except RecordError:
        run = {}
    if all(isinstance(run.get(f), list) for f in EVENT_FIELDS.values()):
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
