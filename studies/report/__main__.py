"""The report's command line: ``python -m studies.report DIR [DIR ...] [options]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from studies.report.markdown import write_report
from studies.report.records import METRICS_FILE
from studies.report.stats import DEFAULT_METRICS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m studies.report",
        description="Aggregate the metrics.json of a multirun or tuning study into a table "
        "(mean and bootstrap interval over seeds per method and setting), plots and Markdown.",
    )
    parser.add_argument("dirs", nargs="+", help="study directories (searched recursively)")
    parser.add_argument("--out", default=None, help="output directory (default: <dir>/report)")
    parser.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric keys of metrics.json for the table "
        f"(default: {','.join(DEFAULT_METRICS)})",
    )
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--n-boot", type=int, default=2000)
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument(
        "--tol",
        type=float,
        default=None,
        help="absolute near-best rule: strengths whose mean final average success is within "
        "TOL of the best (default: 0.05)",
    )
    rule.add_argument(
        "--near-best",
        type=float,
        default=None,
        metavar="FRAC",
        help="relative near-best rule instead: strengths whose mean is >= FRAC x the best, "
        "FRAC in (0, 1]; the study's width uses 0.9",
    )
    parser.add_argument(
        "--detector-triggers",
        default="plateau",
        help="comma-separated continual.trigger values whose runs get the detector table "
        "(default: plateau; e.g. plateau,boundary adds the oracle as a reference; '' for none)",
    )
    parser.add_argument(
        "--stream",
        default=None,
        help="comma-separated stream names: report only the runs on these streams",
    )
    parser.add_argument("--title", default="Study report")
    args = parser.parse_args(argv)
    try:
        report = write_report(
            args.dirs,
            out_dir=args.out,
            metrics=args.metrics.split(",") if args.metrics else None,
            confidence=args.confidence,
            n_boot=args.n_boot,
            tol=0.05 if args.tol is None else args.tol,
            title=args.title,
            near_best=args.near_best,
            detector_triggers=[t for t in args.detector_triggers.split(",") if t.strip()],
            streams=None if args.stream is None else args.stream.split(","),
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path, why in report.skipped:
        print(f"warning: skipped {path}: {why}", file=sys.stderr)
    for path, why in report.missing:
        print(f"warning: {path} has no {METRICS_FILE} ({why})", file=sys.stderr)
    print(report.markdown.read_text())
    print(
        f"wrote {report.markdown} ({report.n_runs} runs; plots: "
        f"{', '.join(p.name for p in report.plots.values())})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
