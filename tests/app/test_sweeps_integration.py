"""Studies end to end with the real trainer: a joblib multirun and its report, bad sweep input
and failing runs, and a tuning study that is continued and shared.

Every run is tiny (2 tasks x 1024 env steps, see tiny_runs.TINY_STREAM).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from nan_injection import inject_at
from tiny_runs import TINY_STREAM, describe, run

from studies import report as rep
from studies.report.__main__ import main as report_main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def multirun(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return run(
        [
            "train.py",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep_dir}",
            *overrides,
            *TINY_STREAM,
        ]
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 methods x 2 seeds through the joblib launcher."""
    sweep = tmp_path_factory.mktemp("multirun")
    proc = multirun(sweep, "continual=finetune,si_plateau", "seed=0,1")
    assert proc.returncode == 0, describe(proc)
    return sweep


def test_joblib_multirun_writes_every_run(study: Path) -> None:
    jobs = sorted(p.parent.name for p in study.glob("*/metrics.json"))
    assert jobs == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        m = json.loads((study / job / "metrics.json").read_text())
        seen.add((m["run"]["method"], m["run"]["seed"]))
        assert m["run"]["num_timesteps"] == 2048
        assert m["task_names"] == ["north", "southwest"]
        assert m["stream"] == {
            "tasks": ["north", "southwest"],
            "windows": [[0, 1024], [1024, 2048]],
            "boundaries": [1024],
            "blur": 0,
            "joint": False,
        }
    assert seen == {(m, s) for m in ("finetune", "si_plateau") for s in (0, 1)}


def test_report_turns_the_multirun_into_table_and_plots(study: Path) -> None:
    out = study / "report"
    proc = run(["-m", "studies.report", str(study), "--out", str(out)], timeout=120)
    assert proc.returncode == 0, describe(proc)

    runs = {
        (m["run"]["method"], m["run"]["seed"]): m
        for m in (json.loads(p.read_text()) for p in study.glob("*/metrics.json"))
    }
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert sorted(summary.method) == ["finetune", "si_plateau"]
    for _, row in summary.iterrows():
        assert row.n_runs == 2 and row.seeds == "0 1" and row.setting == ""
        vals = [runs[(row.method, s)]["average_performance"] for s in (0, 1)]
        assert float(row.average_performance) == pytest.approx(np.mean(vals))
        lo, hi = float(row.average_performance_lo), float(row.average_performance_hi)
        assert min(vals) - 1e-9 <= lo <= float(row.average_performance) <= hi <= max(vals) + 1e-9
        plast = [runs[(row.method, s)]["average_plasticity"] for s in (0, 1)]
        assert float(row.average_plasticity) == pytest.approx(np.mean(plast))

    md = (out / "report.md").read_text()
    assert "| method | setting | runs | final avg success | forgetting | plasticity |" in md
    assert md.count("| finetune |") == 1 and md.count("| si_plateau |") == 1
    assert "Overrides common to all runs:" in md and "`n_envs=4`" in md
    for name in ("methods.png", "curves.png"):
        assert f"]({name})" in md
        assert (out / name).read_bytes()[:8] == PNG_MAGIC

    # the curve of a group is the mean over its seeds of each run's success matrix
    groups = rep.group_runs(rep.load_runs([study]).runs)
    for (method, _), group in groups.items():
        curves = rep.mean_curves(group)
        assert list(curves) == ["north", "southwest"]
        steps, mean, _, _ = curves["north"]
        assert steps.tolist() == [0, 1024, 2048]
        S = np.mean([r.success[:, 0] for r in group], axis=0)
        np.testing.assert_allclose(mean, S, err_msg=method)


def test_nonexistent_sweep_value_is_named_before_any_run(tmp_path: Path) -> None:
    proc = multirun(tmp_path, "continual=finetune,nonexistent", "seed=0")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Could not find 'continual/nonexistent'" in out
    assert "finetune" in out  # the available options are listed
    # Hydra checks every job of the sweep before launching any: nothing ran
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_failing_run_is_named_and_finished_runs_stay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inject = inject_at(600).replace("callbacks=[", "callbacks=[],[", 1)  # sweep: none, then NaN
    proc = multirun(tmp_path, "continual=finetune", inject)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Error executing job with overrides:" in out and "NaNInjection" in out
    assert "NonFiniteError" in out
    assert (tmp_path / "0" / "metrics.json").is_file()
    assert not (tmp_path / "1" / "metrics.json").exists()

    assert report_main([str(tmp_path), "--n-boot", "200"]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| finetune |  | 1 |" in md
    assert f"`{tmp_path / '1'}`: no metrics.json (failed or unfinished)" in md
    assert "has no metrics.json" in capsys.readouterr().err


def _journal(path: Path) -> optuna.storages.BaseStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def test_tuning_study_records_objective_and_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # in this process: the trainer is imported once for both invocations
    from studies import tune

    args = [
        "continual=si_plateau", *TINY_STREAM, "--study-name", "si", "--out", str(tmp_path),
        "--pruner", "median", "--pruner-startup-trials", "1", "--seed", "0",
    ]  # fmt: skip
    assert tune.main([*args, "--n-trials", "3"]) == 0
    out = capsys.readouterr().out
    assert "best overrides, ready to paste:\n  python train.py continual=si_plateau" in out
    assert "'stream.schedule=[{task:north,steps:1024},{task:southwest,steps:1024}]'" in out

    assert tune.main([*args, "--n-trials", "1"]) == 0
    assert "continuing from 3 trials" in capsys.readouterr().out

    study = optuna.load_study(study_name="si", storage=_journal(tmp_path / "study.journal"))
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert all(t.state in finished for t in trials)
    # eval/avg_success was reported at every evaluation that ran (0, 1024, 2048 env steps)
    for t in trials:
        steps = list(t.intermediate_values)
        assert steps[0] == 0
        assert steps == [0, 1024, 2048][: len(steps)]
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert len(steps) == 3
    for t in trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        m = json.loads((tmp_path / f"trial_{t.number:04d}" / "metrics.json").read_text())
        assert t.value == m["average_performance"]
        # the sampled values are what the run used
        assert m["run"]["strength"] == pytest.approx(t.params["continual.c"], rel=1e-5)
    summary = json.loads((tmp_path / "study.json").read_text())
    assert summary["best"]["number"] == study.best_trial.number
    assert summary["best"]["command"].startswith("python train.py continual=si_plateau")


@pytest.mark.slow
def test_two_processes_share_one_journal(tmp_path: Path) -> None:
    """With the real trainer (about 30 s); test_tune_unit checks the same on a fast app."""
    journal = tmp_path / "shared.journal"
    cmd = [
        sys.executable, "tune.py", "continual=si_plateau", *TINY_STREAM, "--study-name", "shared",
        "--storage", str(journal), "--out", str(tmp_path / "trials"), "--n-trials", "2",
        "--pruner", "none",
    ]  # fmt: skip
    from tiny_runs import REPO, env

    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = optuna.load_study(study_name="shared", storage=_journal(journal)).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len(list((tmp_path / "trials").glob("trial_*/metrics.json"))) == 4
