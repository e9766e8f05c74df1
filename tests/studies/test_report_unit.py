"""studies.report on synthetic run trees: grouping, intervals, plots, Markdown, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from report_runs import PNG_MAGIC, write_run

from studies import report as rep
from studies.report.__main__ import main as report_main


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """2 methods x 3 seeds, and a strength sweep of si over 3 values x 2 seeds."""
    root = tmp_path / "multirun"
    job = 0
    for seed, (a, f) in enumerate([(0.2, 0.8), (0.3, 0.7), (0.1, 0.9)]):
        write_run(root / str(job), "finetune", seed, a, ("n_envs=4",), forgetting=f)
        job += 1
    for seed, (a, f) in enumerate([(0.7, 0.1), (0.8, 0.0), (0.6, 0.2)]):
        write_run(root / str(job), "si_plateau", seed, a, ("n_envs=4",), forgetting=f)
        job += 1
    for c, base in [(0.01, 0.3), (0.1, 0.75), (1.0, 0.72), (10.0, 0.2)]:
        for seed in (0, 1):
            ovr = ("n_envs=4", f"continual.c={c}")
            write_run(root / str(job), "si", seed, base + 0.02 * seed, ovr, c, forgetting=0.1)
            job += 1
    return root


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible() -> None:
    vals = [0.1, 0.5, 0.9, 0.4]
    m, lo, hi = rep.bootstrap_ci(vals, 0.9, 2000)
    assert m == pytest.approx(np.mean(vals))
    assert min(vals) <= lo <= m <= hi <= max(vals)
    assert rep.bootstrap_ci(vals, 0.9, 2000) == (m, lo, hi)
    # a wider confidence gives a wider interval
    _, lo99, hi99 = rep.bootstrap_ci(vals, 0.99, 2000)
    assert lo99 <= lo and hi99 >= hi
    assert rep.bootstrap_ci([0.3], 0.9) == (0.3, 0.3, 0.3)
    assert all(math.isnan(x) for x in rep.bootstrap_ci([None, float("nan")], 0.9))  # type: ignore[list-item]
    mean, lo2, hi2 = rep.bootstrap_ci(np.array([[0.0, 1.0], [1.0, 1.0]]), 0.9)
    assert mean.tolist() == [0.5, 1.0] and hi2[1] == lo2[1] == 1.0
    with pytest.raises(ValueError, match="confidence"):
        rep.bootstrap_ci(vals, 1.5)


def test_bootstrap_median_takes_infinite_values_without_interpolating() -> None:
    assert rep.bootstrap_ci([1.0, 2.0, math.inf], 0.9, statistic="median")[0] == 2.0
    mid, lo, hi = rep.bootstrap_ci([1.0, math.inf, math.inf], 0.9, statistic="median")
    assert (mid, lo, hi) == (math.inf, 1.0, math.inf)
    with pytest.raises(ValueError, match="statistic"):
        rep.bootstrap_ci([1.0], 0.9, statistic="mode")


def relearn_block(median: float | None) -> dict:
    return {"median_relearn_cost": median, "relearn": {"median_cost": median}}


def test_a_run_whose_median_task_was_never_learned_counts_as_infinitely_costly(
    tmp_path: Path,
) -> None:
    for seed, median in enumerate([1.5, 2.0, None]):
        write_run(tmp_path / f"a{seed}", "si", seed, 0.9, record_extra=relearn_block(median))
    for seed in range(2):
        write_run(tmp_path / f"b{seed}", "ft", seed, 0.1, record_extra=relearn_block(None))
    write_run(tmp_path / "c0", "old", 0, 0.5)  # recorded before the relearn cost existed
    runs = rep.load_runs([tmp_path]).runs
    assert sorted(r.metrics.get("median_relearn_cost", -1.0) for r in runs) == [
        -1.0,
        1.5,
        2.0,
        math.inf,
        math.inf,
        math.inf,
    ]
    summary = rep.summarize_groups(runs, ["median_relearn_cost"]).set_index("method")
    # the median over the three seeds, the unlearned one included
    assert summary.loc["si", "median_relearn_cost"] == 2.0
    assert summary.loc["si", "median_relearn_cost_hi"] == math.inf
    assert summary.loc["ft", "median_relearn_cost"] == math.inf
    assert math.isnan(summary.loc["old", "median_relearn_cost"])
    out = rep.write_report([tmp_path], tmp_path / "report")
    table = (tmp_path / "report" / "report.md").read_text()
    assert "| si |  | 3 | 0.900 | 0.000 |" in table and "2.000 [1.500, ∞]" in table
    assert out.plots["methods"].read_bytes().startswith(PNG_MAGIC)


def test_success_minus_forgetting() -> None:
    assert rep.success_minus_forgetting(
        {"average_performance": 0.7, "average_forgetting": 0.2}
    ) == (pytest.approx(0.5))
    assert (
        rep.success_minus_forgetting({"average_performance": 0.7, "average_forgetting": None})
        == 0.7
    )
    assert rep.success_minus_forgetting(
        {"average_performance": 0.7, "forgetting": 0.1}
    ) == pytest.approx(0.6)
    assert math.isnan(rep.success_minus_forgetting({}))


def test_summary_groups_by_method_and_setting(study: Path) -> None:
    loaded = rep.load_runs([study])
    assert len(loaded.runs) == 14 and not loaded.skipped and not loaded.missing
    df = rep.summarize_groups(
        loaded.runs, ["average_performance", "average_forgetting", "success_minus_forgetting"]
    )
    ft = df[df.method == "finetune"].iloc[0]
    assert ft.n_runs == 3 and ft.seeds == "0 1 2" and ft.setting == ""
    assert ft.average_performance == pytest.approx(0.2)
    assert ft.average_forgetting == pytest.approx(0.8)
    assert ft.success_minus_forgetting == pytest.approx(-0.6)
    assert ft.average_performance_lo <= 0.2 <= ft.average_performance_hi
    # each strength is its own setting, seeds pooled
    si = df[df.method == "si"]
    assert sorted(si.setting) == sorted(f"continual.c={c}" for c in (0.01, 0.1, 1.0, 10.0))
    assert set(si.n_runs) == {2}
    # a strength sweep reads in order of strength
    assert si.strength.tolist() == [0.01, 0.1, 1.0, 10.0]
    assert si.iloc[1].average_performance == pytest.approx(0.76)


def test_a_bool_spelt_in_either_case_and_the_progress_bar_do_not_split_a_group(
    tmp_path: Path,
) -> None:
    # Hydra reads eval.stochastic=False and =false as the same value; one run typed each.
    write_run(tmp_path / "0", "si", 0, 0.5, ("eval.stochastic=False", "progress_bar=False"))
    write_run(tmp_path / "1", "si", 1, 0.7, ("eval.stochastic=false",))
    df = rep.summarize_groups(rep.load_runs([tmp_path]).runs, ["average_performance"])
    assert len(df) == 1 and df.iloc[0].n_runs == 2
    assert df.iloc[0].average_performance == pytest.approx(0.6)


def test_sensitivity_and_near_best_range(study: Path) -> None:
    lines = rep.sensitivity(rep.load_runs([study]).runs)
    assert len(lines) == 1
    ln = lines[0]
    assert ln.method == "si" and ln.strength_name == "c" and ln.base_setting == ""
    assert ln.strengths.tolist() == [0.01, 0.1, 1.0, 10.0]
    np.testing.assert_allclose(ln.mean, [0.31, 0.76, 0.73, 0.21])
    low, high, decades = ln.near_best_range(0.05)
    assert (low, high) == (0.1, 1.0) and decades == pytest.approx(1.0)
    assert ln.near_best_range(0.0)[:2] == (0.1, 0.1)


def test_write_report_table_plots_and_markdown(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = rep.write_report([study], out_dir=out, n_boot=500)
    assert r.n_runs == 14
    assert set(r.plots) == {"methods", "curves", "sensitivity"}
    for p in r.plots.values():
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 5000
    md = r.markdown.read_text()
    # plasticity is not in these files: no column for it
    assert "| method | setting | runs | final avg success | forgetting |\n" in md
    assert "| finetune |  | 3 | 0.200 [" in md
    assert "| si_plateau |  | 3 | 0.700 [" in md
    assert "`continual.c=0.1`" in md
    # an override shared by all runs separates nothing: said once, not in every row
    assert "Overrides common to all runs: `n_envs=4`" in md
    assert md.count("n_envs=4") == 1
    assert "## Sensitivity to strength" in md and "| si (c) |" in md
    for name in ("methods.png", "curves.png", "sensitivity.png"):
        assert f"({name})" in md
    # forward_transfer is null everywhere: not a column
    assert "forward transfer" not in md
    import pandas as pd

    summary = pd.read_csv(r.summary_csv)
    assert len(summary) == 2 + 4 and {"average_performance_lo", "average_forgetting_hi"} <= set(
        summary
    )
    runs = pd.read_csv(r.runs_csv)
    assert len(runs) == 14 and set(runs.method) == {"finetune", "si_plateau", "si"}


def test_mean_curves_align_runs_on_one_grid(tmp_path: Path) -> None:
    steps = [1000, 2000, 3000]
    a = write_run(tmp_path / "a", "m", 0, 1.0, matrix=[[0, 0], [1, 0], [1, 1]], eval_steps=steps)
    b = write_run(tmp_path / "b", "m", 1, 0.0, matrix=[[0, 0], [0, 0], [0, 0]], eval_steps=steps)
    curves = rep.mean_curves([rep.load_run(a), rep.load_run(b)])
    steps, mean, lo, hi = curves["A"]
    assert steps.tolist() == [1000, 2000, 3000]
    assert mean.tolist() == [0.0, 0.5, 0.5]
    assert (lo <= mean).all() and (mean <= hi).all()


def test_fallback_to_hydra_overrides(tmp_path: Path) -> None:
    d = write_run(tmp_path / "0", "ewc", 4, 0.5, ("stream=drift",), with_run_block=False)
    run = rep.load_run(d)
    assert (run.method, run.seed, run.setting) == ("ewc", 4, "stream=drift")


def test_nested_metrics_object(tmp_path: Path) -> None:
    d = tmp_path / "r"
    d.mkdir()
    (d / "metrics.json").write_text(
        json.dumps(
            {
                "run": {"method": "l2", "seed": 0},
                "metrics": {"average_performance": 0.4, "average_forgetting": 0.1},
            }
        )
    )
    run = rep.load_run(d)
    assert run.metrics["success_minus_forgetting"] == pytest.approx(0.3)


def test_matrix_from_csv_next_to_metrics(tmp_path: Path) -> None:
    """The evaluation callback writes the matrices to success_matrix.csv, not metrics.json."""
    d = tmp_path / "r"
    d.mkdir()
    (d / "metrics.json").write_text(
        json.dumps(
            {
                "run": {"method": "si", "seed": 1, "overrides": []},
                "average_performance": 0.5,
                "average_forgetting": None,
                "eval_steps": [0, 500, 1000],
                "task_names": ["B", "A"],
            }
        )
    )
    (d / "success_matrix.csv").write_text(
        "step,success/B,success/A,progress/B,progress/A\n"
        "0,0,0,0.1,0.1\n500,1,0,0.9,0.2\n1000,0.5,0.5,0.6,0.6\n"
    )
    run = rep.load_run(d)
    assert run.tasks == ["B", "A"]
    assert run.eval_steps.tolist() == [0, 500, 1000]
    assert run.success[:, 0].tolist() == [0, 1, 0.5]
    assert run.metrics["success_minus_forgetting"] == 0.5


def test_partial_and_broken_runs_are_listed_not_fatal(study: Path, tmp_path: Path) -> None:
    (study / "99").mkdir()
    (study / "99" / "metrics.json").write_text('{"average_perf')  # a half-written file
    (study / "100" / ".hydra").mkdir(parents=True)  # a failed job: no metrics.json
    bad = study / "101"
    bad.mkdir()
    (bad / "metrics.json").write_text(json.dumps({"tasks": ["A"], "success_matrix": [[0.1, 0.2]]}))
    r = rep.write_report([study], out_dir=tmp_path / "o", n_boot=200)
    assert r.n_runs == 14
    skipped = {p.parent.name: why for p, why in r.skipped}
    assert set(skipped) == {"99", "101"}
    assert "not valid JSON" in skipped["99"]
    assert "'tasks' has 1 names but 'success_matrix' has 2 columns" in skipped["101"]
    assert [(p.name, why) for p, why in r.missing] == [("100", "failed or unfinished")]
    md = r.markdown.read_text()
    assert "## Not included" in md and "no metrics.json (failed or unfinished)" in md


def test_cli(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_main([str(study), "--out", str(tmp_path / "cli"), "--n-boot", "100"]) == 0
    out = capsys.readouterr().out
    assert "| finetune |" in out and "wrote" in out
    assert (tmp_path / "cli" / "report.md").is_file()
    # default output dir is inside the study
    assert report_main([str(study), "--n-boot", "50", "--metrics", "average_performance"]) == 0
    md = (study / "report" / "report.md").read_text()
    assert "| method | setting | runs | final avg success |\n" in md


def test_cli_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_main([str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "no readable metrics.json under" in capsys.readouterr().err


def test_stream_filter_reports_one_stream_of_a_mixed_study(tmp_path: Path) -> None:
    """A grid over several streams in one sweep directory gets a report per stream."""
    root = tmp_path / "grid"
    for job, (stream, avg) in enumerate([("a", 0.9), ("a", 0.7), ("b", 0.1)]):
        extra = {"stream": stream}
        write_run(root / str(job), "si", job, avg, (f"stream={stream}",), run_extra=extra)
    r = rep.write_report([root], out_dir=tmp_path / "a", streams=["a"], n_boot=50)
    assert r.n_runs == 2
    assert "| si |  | 2 | 0.800" in r.markdown.read_text()  # stream=a is common: no setting
    with pytest.raises(ValueError, match=r"no readable metrics.json on streams \['c'\]"):
        rep.write_report([root], out_dir=tmp_path / "c", streams=["c"])
