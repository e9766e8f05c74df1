"""Synthetic run folders for the report tests: what train.py leaves, without training."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(
    d: Path,
    method: str,
    seed: int,
    avg: float,
    overrides: Sequence[str] = (),
    strength: float | None = None,
    *,
    forgetting: float | None = 0.0,
    strength_name: str = "c",
    matrix: list[list[float]] | None = None,
    eval_steps: Sequence[int] | None = None,
    config: dict[str, Any] | None = None,
    run_extra: dict[str, Any] | None = None,
    stream: dict[str, Any] | None = None,
    with_run_block: bool = True,
    record_extra: dict[str, Any] | None = None,
) -> Path:
    """A finished run folder: metrics.json, .hydra/overrides.yaml and optionally config.yaml.

    :param overrides: the run's overrides besides ``continual=<method>`` and ``seed=<seed>``.
    :param strength: ``run.strength`` (name ``strength_name``); not added to the overrides.
    :param matrix: success matrix over tasks A, B; default two evaluations: nothing, then
        ``avg`` on both.
    :param eval_steps: env steps of the matrix rows; default 0, 100, 200, ...
    :param stream: the record's ``stream`` block; default none (a run recorded without it).
    :param with_run_block: False: a record without ``run`` (the report falls back to Hydra's
        files).
    :param record_extra: further top-level keys of the record, e.g. ``relearn``.
    """
    d.mkdir(parents=True, exist_ok=True)
    ovr = [f"continual={method}", f"seed={seed}", *overrides]
    matrix = matrix or [[0.0, 0.0], [avg, avg]]
    data: dict[str, Any] = {}
    if with_run_block:
        data["run"] = {
            "method": method,
            "seed": seed,
            "strength": strength,
            "strength_name": strength_name if strength is not None else None,
            "overrides": ovr,
            **(run_extra or {}),
        }
    data.update(
        {
            "task_names": ["A", "B"],
            "eval_steps": list(eval_steps or range(0, 100 * len(matrix), 100)),
            "success_matrix": matrix,
            "average_performance": avg,
            "average_forgetting": forgetting,
        }
    )
    if stream is not None:
        data["stream"] = stream
    data.update(record_extra or {})
    (d / "metrics.json").write_text(json.dumps(data))
    (d / ".hydra").mkdir(exist_ok=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(ovr))
    if config is not None:
        (d / "config.yaml").write_text(yaml.safe_dump(config))
    return d
