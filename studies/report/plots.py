"""The report's figures: method bars, success curves per task, strength sensitivity and
heatmaps (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from studies.report.labels import fmt_axis, fmt_value, group_label
from studies.report.records import RunRecord
from studies.report.stats import Heatmap, SensitivityLine, mean_curves


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_methods(summary, path: Path, metrics: Sequence[str], names: dict[str, str]) -> Path:
    """Bars of each metric per (method, setting), with the bootstrap intervals as error bars."""
    plt = _pyplot()
    shown = [m for m in metrics if m in summary and summary[m].notna().any()]
    fig, axes = plt.subplots(
        1, max(1, len(shown)), figsize=(4.2 * max(1, len(shown)), 3.6), squeeze=False
    )
    labels = [group_label(m, s) for m, s in zip(summary["method"], summary["setting"], strict=True)]
    x = np.arange(len(labels))
    method_colors = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys(summary["method"]))}
    colors = [method_colors[m] for m in summary["method"]]
    for ax, m in zip(axes[0], shown, strict=False):
        mean = summary[m].to_numpy(float)
        lo, hi = summary[f"{m}_lo"].to_numpy(float), summary[f"{m}_hi"].to_numpy(float)
        # An infinite value (a relearn cost whose task was never learned) has no bar, and an
        # infinite interval end no whisker.
        with np.errstate(invalid="ignore"):
            err = np.vstack([mean - lo, hi - mean])
        err[~np.isfinite(err)] = 0.0
        ax.bar(x, np.where(np.isfinite(mean), mean, np.nan), yerr=err, color=colors, capsize=3)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(names.get(m, m))
        ax.axhline(0.0, color="k", lw=0.5)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_group_curves(
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
            ax.plot(steps, mean, color=color, label=group_label(method, setting))
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
        label = group_label(f"{ln.method} ({ln.strength_name})", ln.base_setting)
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
                    f"{fmt_value(v)}\nn={m.n_runs[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
        ax.set_xticks(range(len(m.strengths)), [fmt_axis(float(s)) for s in m.strengths])
        ax.set_yticks(range(len(m.axis_values)), [fmt_axis(v) for v in m.axis_values])
        ax.set_xlabel(_axis_title(f"strength {m.strength_name}", [float(s) for s in m.strengths]))
        ax.set_ylabel(_axis_title(m.axis_key, m.axis_values))
        ax.set_title(group_label(m.method, m.setting), fontsize=9)
    for ax in list(axes.flat)[len(maps) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label=metric_name, shrink=0.9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


#: The detector's targets: the share of switches detected and the share consolidated before
#: the next switch (docs/study/detector.md).
DETECTOR_TARGET = 0.9


def plot_detector(table, path: Path, target: float = DETECTOR_TARGET) -> Path:
    """Per (method, setting, blur) of the detector table: the share of switches detected (of
    all, and of those to a task not yet solved) and consolidated (median over runs, whiskers
    min to max) against the target line, and the false shifts per run."""
    plt = _pyplot()
    labels = [
        f"{group_label(m, s)}\nblur {fmt_axis(float(b))}"
        for m, s, b in zip(table["method"], table["setting"], table["blur"], strict=True)
    ]
    x = np.arange(len(labels))
    fig, axes = plt.subplots(
        1,
        2,
        figsize=(max(8.0, 2.0 * len(labels) + 4.0), 4.0),
        gridspec_kw={"width_ratios": [2, 1]},
    )
    width = 0.27
    for offset, (key, name) in zip(
        (-width, 0.0, width),
        (
            ("detected", "switches detected"),
            ("detected_unsolved", "to an unsolved task, detected"),
            ("consolidated", "switches consolidated"),
        ),
        strict=True,
    ):
        mid = table[f"{key}_median"].to_numpy(float)
        err = np.vstack(
            [mid - table[f"{key}_min"].to_numpy(float), table[f"{key}_max"].to_numpy(float) - mid]
        )
        axes[0].bar(x + offset, mid, width, yerr=np.nan_to_num(err), capsize=3, label=name)
    axes[0].axhline(target, color="k", ls="--", lw=1, label=f"target {target:.0%}")
    axes[0].set_ylim(0, 1.4)
    axes[0].set_yticks(np.linspace(0, 1, 6))
    axes[0].set_title("share of the true switches")
    axes[0].legend(fontsize=7, loc="upper left", ncol=2, frameon=False)
    false = table["false_shifts_median"].to_numpy(float)
    err = np.vstack(
        [
            false - table["false_shifts_min"].to_numpy(float),
            table["false_shifts_max"].to_numpy(float) - false,
        ]
    )
    axes[1].bar(x, false, yerr=np.nan_to_num(err), capsize=3, color="C3")
    axes[1].set_ylim(0, max(1.0, float(np.nanmax(table["false_shifts_max"].to_numpy(float)))) * 1.1)
    axes[1].set_title("false shifts per run (target 0)")
    for ax in axes:
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
