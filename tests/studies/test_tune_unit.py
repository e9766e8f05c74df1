"""studies.tune's study mechanics on a fast training stand-in (tune_toy_app): search space, storage,
continuation, concurrent workers, pruning, failures and bad input.

The same flows with the real trainer are in tests/app/test_sweeps_integration.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from studies import report, tune

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APP = "tune_toy_app:run"
sys.path.insert(0, str(HERE))

optuna.logging.set_verbosity(optuna.logging.WARNING)
DONE = optuna.trial.TrialState.COMPLETE
PRUNED = optuna.trial.TrialState.PRUNED
FAIL = optuna.trial.TrialState.FAIL


@pytest.fixture(scope="module")
def app() -> tune.App:
    return tune.load_app(APP)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``python -m studies.tune --app tune_toy_app:run ARGS``, in this process (fast); returns
    (exit code, stdout, stderr)."""
    code = tune.main(["--app", APP, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_param() -> None:
    assert tune.parse_param("continual.c=log:0.01:10") == tune.Param("continual.c", "log", 0.01, 10)
    assert tune.parse_param("seed=choice:0,1").choices == ("0", "1")
    assert tune.parse_param("agent.n_epochs=int:3:10").kind == "int"
    for bad, msg in [
        ("continual.c", "expected KEY=log"),
        ("continual.c=gauss:0:1", "expected KEY=log"),
        ("continual.c=log:0:1", "log scale needs LOW > 0"),
        ("continual.c=float:2:1", "need LOW < HIGH"),
        ("continual.c=float:a:1", "two numbers"),
    ]:
        with pytest.raises(ValueError, match=msg):
            tune.parse_param(bad)
    assert tune.Param("continual.c", "log").override(0.0123456789) == "continual.c=0.0123457"


def test_default_space_follows_the_method(app: tune.App) -> None:
    keys = {
        method: [p.key for p in tune.default_space(tune.compose(app, [f"continual={method}"]))]
        for method in ("si", "si_adaptive", "finetune")
    }
    assert keys["si"] == ["continual.c", "continual.xi", "agent.learning_rate"]
    assert keys["si_adaptive"] == [
        "continual.adaptive_target",
        "continual.xi",
        "agent.learning_rate",
    ]
    assert keys["finetune"] == ["agent.learning_rate"]


def test_study_records_objective_and_continues(app: tune.App, tmp_path: Path) -> None:
    kw = dict(study_name="s", out_dir=tmp_path, app=app, seed=0, log=lambda _: None)
    r1 = tune.tune(["seed=3"], n_trials=3, **kw)
    trials = r1.study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2] and all(t.state == DONE for t in trials)
    for t in trials:
        c = float(t.params["continual.c"])
        # the objective is the final average success of the run's own metrics.json
        m = json.loads((tmp_path / f"trial_{t.number:04d}" / "metrics.json").read_text())
        assert t.value == m["average_performance"]
        assert f"continual.c={c:.6g}" in t.user_attrs["overrides"]
        assert t.user_attrs["overrides"][0] == "seed=3"
        assert (tmp_path / f"trial_{t.number:04d}" / ".hydra" / "overrides.yaml").is_file()
        assert list(t.intermediate_values) == [100, 200, 300, 400]
    assert (tmp_path / "study.journal").is_file()
    best = json.loads((tmp_path / "study.json").read_text())["best"]
    assert best["value"] == pytest.approx(max(t.value for t in trials))
    assert best["command"].startswith("python train.py seed=3 continual.c=")

    r2 = tune.tune(["seed=3"], n_trials=2, **kw)
    assert [t.number for t in r2.study.get_trials()] == [0, 1, 2, 3, 4]
    # the report reads a tuning study like a multirun; sampled settings come from .hydra/
    rep = report.write_report([tmp_path], n_boot=100)
    assert rep.n_runs == 5
    assert all("continual.c=" in s for s in rep.summary.setting)
    # every trial has its own c, xi and lr: the strength curve pools them as points
    assert "sensitivity" in rep.plots
    assert "| si (c) | all settings pooled | 5 |" in rep.markdown.read_text()


def test_objective_choice(app: tune.App, tmp_path: Path) -> None:
    kw = dict(out_dir=tmp_path, app=app, log=lambda _: None, params=["continual.c=log:0.1:10"])
    r = tune.tune([], n_trials=1, study_name="smf", objective="success_minus_forgetting", **kw)
    t = r.study.trials[0]
    assert t.value == pytest.approx(
        t.user_attrs["average_performance"] - t.user_attrs["average_forgetting"]
    )
    # a study keeps its objective: values of different objectives do not compare
    with pytest.raises(ValueError, match="maximises 'success_minus_forgetting'"):
        tune.tune([], n_trials=1, study_name="smf", **kw)
    # an objective the runs do not report fails each trial, naming what there is
    r = tune.tune([], n_trials=1, study_name="x", objective="average_nope", **kw)
    t = r.study.trials[0]
    assert t.state == FAIL
    assert "objective 'average_nope' is not a finite number" in t.user_attrs["error"]
    assert "'average_performance'" in t.user_attrs["error"]


def test_sqlite_url_storage(app: tune.App, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    kw = dict(study_name="q", storage=url, out_dir=tmp_path, app=app, log=lambda _: None)
    tune.tune([], n_trials=1, params=["continual.c=log:0.1:10"], **kw)
    r = tune.tune([], n_trials=1, params=["continual.c=log:0.1:10"], **kw)
    assert len(r.study.trials) == 2 and (tmp_path / "study.db").is_file()


def test_median_pruner_stops_a_worse_trial(app: tune.App, tmp_path: Path) -> None:
    kw = dict(
        study_name="p", out_dir=tmp_path, app=app, pruner_startup_trials=1, log=lambda _: None
    )
    tune.tune([], n_trials=1, params=["quality=float:0.99:1.0"], **kw)
    r = tune.tune([], n_trials=2, params=["quality=float:0.1:0.2"], **kw)
    states = [t.state for t in r.study.get_trials()]
    assert states == [DONE, PRUNED, PRUNED]
    # pruned at the first evaluation, so the run stopped early
    assert [t.last_step for t in r.study.get_trials()] == [400, 100, 100]
    assert not (tmp_path / "trial_0001" / "metrics.json").exists()
    # the report lists pruned and failed trials with the reason the tuner left
    missing = dict(report.load_runs([tmp_path]).missing)
    assert missing[tmp_path / "trial_0001"].startswith("pruned: trial 1 pruned at step 100")


def test_failing_trial_is_named_and_the_study_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    code, stdout, stderr = run_cli(
        capsys,
        "fail_above=1", "--param", "continual.c=log:0.01:100", "--n-trials", "6",
        "--sampler", "random", "--seed", "1", "--out", str(out), "--study-name", "f",
    )  # fmt: skip
    assert code == 0, stderr
    study = json.loads((out / "study.json").read_text())
    failed = [t for t in study["trials"] if t["state"] == "FAIL"]
    done = [t for t in study["trials"] if t["state"] == "COMPLETE"]
    assert failed and done
    for t in failed:
        assert f"trial {t['number']} failed: RuntimeError: loss became NaN" in stdout
        assert (out / f"trial_{t['number']:04d}" / "error.txt").is_file()
    missing = dict(report.load_runs([out]).missing)
    assert all(why.startswith("failed: RuntimeError: loss became NaN") for why in missing.values())
    assert len(missing) == len(failed)
    assert "best overrides, ready to paste:\n  python train.py fail_above=1 continual.c=" in (
        stdout
    )
    # finished trials stay and report
    assert report.write_report([out], n_boot=50).n_runs == len(done)


def test_all_trials_failing_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = run_cli(
        capsys,
        "fail_above=0", "--n-trials", "2", "--out", str(tmp_path), "--param",
        "continual.c=log:0.1:1",
    )  # fmt: skip
    assert code == 1
    assert "trial 0 failed: RuntimeError: loss became NaN" in stdout
    assert "no trial has completed" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["continual=nonexistent"], "Could not find 'continual/nonexistent'"),
        (["agent.lr=0.1"], "Could not override 'agent.lr'"),
        (["--param", "continual.zeta=log:0.1:1"], "search-space key 'continual.zeta' is not in"),
        (["continual.c=2", "--param", "continual.c=log:0.1:1"], "also searched"),
        (["--app", "tune_toy_app:nope"], "has no callable nope"),
    ],
)
def test_bad_input_fails_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, stderr = run_cli(capsys, *args, "--n-trials", "1", "--out", str(tmp_path))
    assert code == 2
    assert message in stderr
    assert not list(tmp_path.glob("trial_*"))


def test_two_processes_share_one_journal(tmp_path: Path) -> None:
    journal = tmp_path / "shared.journal"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    cmd = [
        sys.executable, str(ROOT / "tune.py"), "--app", APP, "sleep=0.1",
        "--n-trials", "3", "--study-name", "shared", "--storage", str(journal),
        "--out", str(tmp_path / "trials"),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    study = optuna.load_study(
        study_name="shared",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        ),
    )
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    # every trial finished (the pruner may stop some): none lost, none left running
    assert all(t.state in (DONE, PRUNED) for t in trials), [t.state for t in trials]
    dirs = sorted(p.name for p in (tmp_path / "trials").glob("trial_*"))
    assert dirs == [f"trial_{n:04d}" for n in range(6)]
    n_done = sum(t.state == DONE for t in trials)
    assert len(list((tmp_path / "trials").glob("trial_*/metrics.json"))) == n_done >= 4
