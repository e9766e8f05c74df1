"""Study report: aggregate the ``metrics.json`` of many runs into one table, plots and Markdown.

Works on any directory tree that holds run directories with a ``metrics.json`` each: a Hydra
multirun (``multirun/<date>/<time>/<job>/``), a tuning study written by
``python -m studies.tune``, or a folder of single runs. It reads the run records
(:mod:`agents.record`), and, for runs recorded by older versions, Hydra's ``.hydra/*.yaml``
next to them; it knows nothing about the environments or the agents.

Usage::

    python -m studies.report multirun/2026-01-01/12-00-00            # writes <dir>/report/
    python -m studies.report runs/study_a runs/study_b --out docs/results
    python -m studies.report runs/strength_* --near-best 0.9   # width within 90% of the best

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
  Reads the run's ``config.yaml`` (its trigger) and its TensorBoard files (``tb/``).

Modules: :mod:`~studies.report.records` (reading runs), :mod:`~studies.report.stats`
(intervals, near-best ranges, heatmaps), :mod:`~studies.report.detector` (trigger events
against the stream truth), :mod:`~studies.report.plots`, :mod:`~studies.report.markdown`
(:func:`write_report`) and the command line in ``__main__``. The fields read from
``metrics.json`` are listed in :data:`SCHEMA_FIELDS`.
"""

from studies.report.detector import (
    DETECTOR_COLUMNS,
    DetectorResult,
    DetectorScore,
    StreamTruth,
    config_stream_truth,
    detector_quality,
    score_detector,
    stream_truth,
    unsolved_at_switches,
)
from studies.report.markdown import (
    Report,
    detector_markdown,
    heatmap_markdown,
    markdown_table,
    write_report,
)
from studies.report.plots import plot_group_curves, plot_heatmaps, plot_methods, plot_sensitivity
from studies.report.records import (
    COUNTER_TAGS,
    EVENT_FIELDS,
    EVENT_TAGS,
    MATRIX_CSV,
    METRICS_FILE,
    SCHEMA_FIELDS,
    LoadResult,
    RunEvents,
    RunRecord,
    find_metrics_files,
    load_run,
    load_runs,
    read_events,
    read_run_scalars,
    run_config,
    success_minus_forgetting,
)
from studies.report.stats import (
    DEFAULT_METRICS,
    METRIC_NAMES,
    Heatmap,
    NearBestRule,
    SensitivityLine,
    bootstrap_ci,
    group_runs,
    heatmaps,
    mean_curves,
    near_best_range,
    runs_table,
    sensitivity,
    summarize_groups,
)

__all__ = [
    "COUNTER_TAGS",
    "DEFAULT_METRICS",
    "DETECTOR_COLUMNS",
    "EVENT_FIELDS",
    "EVENT_TAGS",
    "MATRIX_CSV",
    "METRICS_FILE",
    "METRIC_NAMES",
    "SCHEMA_FIELDS",
    "DetectorResult",
    "DetectorScore",
    "Heatmap",
    "LoadResult",
    "NearBestRule",
    "Report",
    "RunEvents",
    "RunRecord",
    "SensitivityLine",
    "StreamTruth",
    "bootstrap_ci",
    "config_stream_truth",
    "detector_markdown",
    "detector_quality",
    "find_metrics_files",
    "group_runs",
    "heatmap_markdown",
    "heatmaps",
    "load_run",
    "load_runs",
    "markdown_table",
    "mean_curves",
    "near_best_range",
    "plot_group_curves",
    "plot_heatmaps",
    "plot_methods",
    "plot_sensitivity",
    "read_events",
    "read_run_scalars",
    "run_config",
    "runs_table",
    "score_detector",
    "sensitivity",
    "stream_truth",
    "success_minus_forgetting",
    "summarize_groups",
    "unsolved_at_switches",
    "write_report",
]
