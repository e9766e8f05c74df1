"""The run record: ``metrics.json``, written once at the end of a run by ``train.py``.

This module owns the record's layout (:class:`Record`), the one rule that names a run's
strength (:func:`strength_name`), writing (:func:`write_record`, atomic) and reading
(:func:`read_record`). The study kit reads runs only through it.

Key order is part of the contract: :func:`build_record` lays the keys out in the order of
:class:`Record`, and keys are only ever added at the end, so records of one run written by
different versions compare byte for byte on the keys they share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from continual.io import atomic_write_bytes

if TYPE_CHECKING:
    from envs import StreamSpec

__all__ = [
    "RECORD_FILE",
    "STRENGTH_NAMES",
    "Record",
    "RecordError",
    "RelearnInfo",
    "RunInfo",
    "StreamInfo",
    "TaskMetrics",
    "build_record",
    "read_record",
    "record_path",
    "stream_info",
    "strength_name",
    "write_record",
]

RECORD_FILE = "metrics.json"

#: Config keys under ``continual`` that can be a run's strength.
STRENGTH_NAMES = ("c", "adaptive_target")


class RunInfo(TypedDict):
    """What ran: the ``run`` block."""

    method: str | None
    """Name of the continual method (the ``continual`` config choice)."""
    stream: str | None
    """Name of the stream config."""
    algo: str
    seed: int
    strength: float | None
    """The value of the config key :attr:`strength_name`; None without a regulariser."""
    strength_name: str | None
    """:func:`strength_name`: ``"c"``, ``"adaptive_target"`` or None."""
    overrides: list[str]
    """The run's Hydra task overrides, e.g. ``["continual=si_plateau", "seed=0"]``."""
    total_steps: int
    """Env steps the run was asked for."""
    num_timesteps: int
    """Env steps trained."""
    consolidations: int
    shifts: int
    state_bytes: int
    """Bytes of the regulariser's state at the end: its parameter-sized buffers and any
    reservoir (0 without a regulariser); constant in the number of consolidations."""


class TaskMetrics(TypedDict):
    """One task's entry of ``per_task`` (success rates in [0, 1], AUCs in the same units)."""

    final: float
    plasticity: float
    forgetting: float | None
    auc: float
    auc_own_window: float
    forward_transfer: float | None


class RevisitInfo(TypedDict):
    """One later visit of a task in the ``relearn`` block."""

    task: str
    start: int
    """Env step at which the visit starts."""
    steps_to_threshold: float | None
    """Env steps from its start to the threshold; ``None``: not reached in the visit."""
    cost: float | None
    """``steps_to_threshold`` over the steps from scratch: 0 for a task that was kept."""


class RelearnInfo(TypedDict):
    """The ``relearn`` block: plasticity as a cost (:func:`continual.metrics.relearn`)."""

    threshold: float
    """Success rate that counts as learned."""
    scratch: str
    """``"reference"`` (single-task runs) or the name of the task trained first."""
    steps_to_threshold: dict[str, float | None]
    """Env steps from the start of each task's own window to the threshold."""
    cost: dict[str, float | None]
    """``steps_to_threshold`` divided by the steps from scratch."""
    cost_by_position: list[float | None]
    unlearned: list[str]
    median_cost: float | None
    """Over the tasks after the first, an unlearned task counting as infinitely costly."""
    revisits: NotRequired[list[RevisitInfo]]
    """Every later visit of a task, in order; absent in records written before it was measured."""
    median_revisit_cost: NotRequired[float | None]
    """Median revisit cost, an unreached one counting as infinite; ``None`` without revisits."""


class StreamInfo(TypedDict):
    """The stream's ground truth: the ``stream`` block (env steps throughout)."""

    tasks: list[str]
    """Task names, in :attr:`envs.StreamSpec.task_names` order."""
    windows: list[list[int]]
    """Each task's training window ``[start, end)`` (:meth:`envs.StreamSpec.windows`)."""
    boundaries: list[int]
    """The task switches (:meth:`envs.StreamSpec.boundaries`); empty for a joint stream."""
    blur: int
    """Width of the transition window centred on each switch."""
    joint: bool
    """All tasks at once from the start (the multi-task upper reference)."""


class _RecordRequired(TypedDict):
    run: RunInfo
    success_matrix: list[list[float]]
    """``S[eval, task]``: success rates, rows at ``eval_steps``, columns in ``task_names``."""
    average_performance: float
    average_forgetting: float | None
    average_plasticity: float
    average_auc: float
    forward_transfer: float | None
    per_task: dict[str, TaskMetrics]
    final_success_stochastic: float | None
    final_progress: float | None
    final_progress_stochastic: float | None
    final_return: float | None


class Record(_RecordRequired, total=False):
    """The ``metrics.json`` record, keys in file order. The metrics are those of
    :func:`continual.metrics.summarize` and ``ContinualEvalCallback.compute_metrics``."""

    average_forgetting_stochastic: float | None
    """Only when stochastic evaluation ran."""
    n_evals: int
    eval_steps: list[int]
    task_names: list[str]
    median_relearn_cost: float | None
    """``relearn.median_cost``; absent in records written before it was measured."""
    relearn: RelearnInfo
    stream: StreamInfo
    """Absent in records written before the stream truth was recorded."""


class RecordError(ValueError):
    """A run's record is missing or unreadable."""


def strength_name(regulariser: str | None, adaptive_target: float | None) -> str | None:
    """The config key under ``continual`` that sets the run's strength.

    The adaptive mode's target when it is set (it then drives c), else c; None when there is no
    regulariser (fine-tuning), so such runs have no strength.

    :param regulariser: ``continual.regulariser`` (None: no penalty).
    :param adaptive_target: ``continual.adaptive_target`` (None: fixed c).
    :return: one of :data:`STRENGTH_NAMES`, or None.
    """
    if regulariser is None:
        return None
    return "adaptive_target" if adaptive_target is not None else "c"


def stream_info(spec: StreamSpec, joint: bool) -> StreamInfo:
    """The ``stream`` block of the stream a run trained on.

    :param spec: the stream the agent saw (for a joint run, its single mixture phase).
    :param joint: the stream config's ``joint`` flag.
    """
    return {
        "tasks": list(spec.task_names),
        "windows": [[int(s), int(e)] for s, e in spec.windows()],
        "boundaries": [int(b) for b in spec.boundaries()],
        "blur": int(spec.blur),
        "joint": bool(joint),
    }


def build_record(
    run: RunInfo,
    success_matrix: Sequence[Sequence[float]],
    metrics: Mapping[str, Any],
    stream: StreamInfo,
) -> Record:
    """The record in file order: ``run``, ``success_matrix``, the metrics in their own order,
    then ``stream``.

    :param run: the ``run`` block.
    :param success_matrix: shape (n_evals, n_tasks), success rates in [0, 1].
    :param metrics: the evaluator's metrics (``compute_metrics``), JSON-ready.
    :param stream: :func:`stream_info`.
    """
    record: dict[str, Any] = {"run": run, "success_matrix": [list(r) for r in success_matrix]}
    record.update(metrics)
    record["stream"] = stream
    return record  # type: ignore[return-value]


def record_path(path: str | os.PathLike[str]) -> Path:
    """The record file of a run: ``path`` itself, or ``path/metrics.json`` for a directory."""
    p = Path(path)
    return p / RECORD_FILE if p.is_dir() else p


def write_record(run_dir: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write ``record`` to ``run_dir/metrics.json`` atomically (a crash leaves the old file or
    the new one, never a torn one).

    :param run_dir: the run directory (created if missing).
    :param record: :func:`build_record`'s result; JSON-serialisable.
    :return: the file written.
    """
    path = Path(run_dir) / RECORD_FILE
    atomic_write_bytes(path, json.dumps(record, indent=2).encode())
    return path


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run's record.

    Records of older versions lack later keys (e.g. ``stream``); readers check with ``in``.

    :param path: the ``metrics.json`` file, or the run directory holding it.
    :return: the record as a dict (keys as in :class:`Record`).
    :raises RecordError: the file is missing, is not valid JSON, or is not a JSON object;
        the message names the file.
    """
    p = record_path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise RecordError(f"{p}: no run record (the run failed or has not finished)") from None
    except OSError as e:
        raise RecordError(f"{p}: cannot read the run record ({e})") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(f"{p}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise RecordError(f"{p}: expected a JSON object, got {type(data).__name__}")
    run = data.get("run")
    if run is not None and not isinstance(run, dict):
        raise RecordError(f"{p}: field 'run' must be an object, got {type(run).__name__}")
    return data
