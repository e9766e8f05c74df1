"""The report itself: Markdown tables and :func:`write_report`, which reads a study and writes
``report.md``, the CSV tables and the figures."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from continual.metrics import RELEARN_THRESHOLD
from studies.report.detector import DETECTOR_COLUMNS, DetectorResult, detector_quality
from studies.report.labels import fmt_axis, fmt_value, group_label
from studies.report.plots import (
    plot_detector,
    plot_group_curves,
    plot_heatmaps,
    plot_methods,
    plot_sensitivity,
)
from studies.report.records import METRICS_FILE, load_runs
from studies.report.stats import (
    DEFAULT_METRICS,
    METRIC_NAMES,
    Heatmap,
    NearBestRule,
    group_runs,
    heatmaps,
    near_best_range,
    runs_table,
    sensitivity,
    summarize_groups,
)


def _cell(mean: float, lo: float, hi: float) -> str:
    if math.isnan(mean):
        return "n/a"
    if lo == hi:
        return fmt_value(mean)
    return f"{fmt_value(mean)} [{fmt_value(lo)}, {fmt_value(hi)}]"


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
    header = [f"{m.axis_key} \\ {m.strength_name}", *[fmt_axis(float(s)) for s in m.strengths]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, v in enumerate(m.axis_values):
        cells = []
        for j in range(len(m.strengths)):
            if m.n_runs[i, j] == 0:
                cells.append("-")
                continue
            text = f"{fmt_value(m.mean[i, j])} ({m.n_runs[i, j]})"
            cells.append(f"**{text}**" if m.mean[i, j] == best else text)
        lines.append("| " + " | ".join([fmt_axis(v), *cells]) + " |")
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
    streams: Iterable[str] | None = None,
) -> Report:
    """Read all runs under ``roots`` and write the tables, plots and ``report.md``.

    :param roots: directories (or metrics.json files) to read.
    :param out_dir: where to write; default ``<roots[0]>/report``.
    :param metrics: metric keys for the table; default final average success, forgetting and
        plasticity, plus the median relearn cost and ``forward_transfer`` when any run has them.
    :param confidence: mass of the bootstrap intervals.
    :param n_boot: bootstrap resamples.
    :param tol: absolute near-best rule: strengths whose mean is within ``tol`` (units of the
        metric) of the best; used unless ``near_best`` is given.
    :param title: heading of the Markdown.
    :param near_best: relative near-best rule instead: strengths whose mean is at least
        ``near_best`` x the best, in (0, 1] (the study's width uses 0.9).
    :param detector_triggers: ``continual.trigger`` values whose runs get the detector table
        (``detector.csv``); empty: none.
    :param streams: report only the runs on these streams (by name); ``None``: every run.

    :raises FileNotFoundError: a root does not exist.
    :raises ValueError: no readable metrics.json was found (the message names the roots), or
        an invalid near-best rule.
    """
    rule = NearBestRule(frac=near_best) if near_best is not None else NearBestRule(tol=tol)
    roots = [Path(r) for r in roots]
    if not roots:
        raise ValueError("no directory given")
    loaded = load_runs(roots, streams)
    runs = loaded.runs
    if not runs:
        detail = "".join(f"\n  skipped {p}: {why}" for p, why in loaded.skipped)
        on = "" if streams is None else f" on streams {sorted(streams)}"
        raise ValueError(
            f"no readable {METRICS_FILE}{on} under {', '.join(map(str, roots))}{detail}"
        )
    out = Path(out_dir) if out_dir is not None else roots[0] / "report"
    out.mkdir(parents=True, exist_ok=True)

    names = dict(METRIC_NAMES)
    if metrics is None:
        metrics = [
            m
            for m in [
                *DEFAULT_METRICS,
                "median_relearn_cost",
                "median_revisit_cost",
                "forward_transfer",
            ]
            if m == "average_performance"
            or any(not math.isnan(r.metrics.get(m, math.nan)) for r in runs)
        ]
    metrics = list(metrics)
    summary = summarize_groups(runs, metrics, confidence, n_boot)
    summary_csv = out / "summary.csv"
    summary.to_csv(summary_csv, index=False)
    runs_csv = out / "runs.csv"
    runs_table(runs).to_csv(runs_csv, index=False)

    plots: dict[str, Path] = {}
    plots["methods"] = plot_methods(summary, out / "methods.png", metrics, names)
    groups = group_runs(runs)
    curves = plot_group_curves(groups, out / "curves.png", confidence)
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
                best_cell = f"{fmt_value(ln.mean[best])} at {ln.strengths[best]:g}"
            else:
                best_cell = "n/a"
            if math.isnan(low):
                span = "n/a (best <= 0)" if rule.relative and best_cell != "n/a" else "n/a"
            else:
                span = f"{low:g} - {high:g}"
            md.append(
                f"| {ln.method} ({ln.strength_name}) | {where} | {len(ln.strengths)} | "
                f"{best_cell} | {span} | {fmt_value(dec)} |"
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
                f"**{group_label(m.method, m.setting)}**: {m.axis_key} x {m.strength_name}",
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
            "*False shifts* (per run): every shift that is not the first in a switch's window "
            "(on a joint stream, which has no switch: every shift). *Switches to an unsolved "
            f"task*: the switches whose incoming task had success below {RELEARN_THRESHOLD} "
            "at the last "
            "evaluation before its window opened (a switch to a task already solved drops no "
            "return and needs no exploration reset). Lags are per "
            "run the median over its switches; cells: median over runs [min, max]. Lags in "
            "env steps.",
            "",
        ]
        if len(detector.table):
            plots["detector"] = plot_detector(detector.table, out / "detector.png")
            md += [
                detector_markdown(detector.table),
                "",
                f"![detector against its targets]({plots['detector'].name})",
            ]
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
