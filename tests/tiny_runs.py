"""Tiny training runs for the end-to-end tests, and running the project's commands
(``train.py``, ``python -m studies.tune``, ``python -m studies.report``) as real subprocesses.

The override sets live here only, so every end-to-end test trains the same small runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A run of the default stream small enough for tests: 2 PPO updates of 16 x 128 per eval,
# 4 episodes per task, and a checkpoint at every evaluation (the resume tests need one).
TINY = [
    "total_steps=8192",
    "eval.eval_freq=4096",
    "eval.n_eval_episodes=4",
    "eval.n_envs=4",
    "checkpoint_freq=4096",
    "progress_bar=false",
]

# What every finished run writes into its run directory.
RUN_OUTPUTS = (
    "metrics.json",
    "success_matrix.csv",
    "curves.png",
    "matrix.png",
    "model.zip",
    "continual_state.pt",
    "config.yaml",
    "checkpoint.pt",
)

# A small agent (4 envs, 64-step rollouts, 32-32 nets) and a few evaluations of 2 episodes
# every 1024 steps.
SMALL_AGENT_AND_EVAL = [
    "n_envs=4",
    "agent.n_steps=64",
    "agent.batch_size=64",
    "agent.n_epochs=2",
    "agent.pi_layers=[32,32]",
    "agent.vf_layers=[32,32]",
    "eval.eval_freq=1024",
    "eval.n_eval_episodes=2",
    "eval.n_envs=2",
    "progress_bar=false",
]

# Two tasks of 1024 env steps each with a hard switch, 3 evaluations (0, 1024, 2048): about
# 10 s per run, and a report still gets a curve per task and a forgetting value. For studies
# of many runs (multiruns, tuning).
TINY_STREAM = [
    "stream.schedule=[{task:north,steps:1024},{task:southwest,steps:1024}]",
    "stream.blur=0",
    "stream.drift=[]",
    *SMALL_AGENT_AND_EVAL,
    "eval.stochastic=false",
    "checkpoint_freq=100000",
]


def env() -> dict[str, str]:
    """The subprocess environment: one thread per process, short Hydra errors."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HYDRA_FULL_ERROR": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": str(REPO),
    }


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` in the repo; on timeout the whole process group is killed, so no
    launcher worker (joblib, Ray) outlives the test."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"timed out after {timeout} s: {args}\n{out[-3000:]}\n{err[-3000:]}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-4000:]}"
    )


def train_cmd(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "train.py", f"hydra.run.dir={run_dir}", *overrides]


def run_train(run_dir: Path, *overrides: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run train.py to completion; returns the finished process (stdout/stderr as text)."""
    return subprocess.run(
        train_cmd(run_dir, *overrides),
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"train.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
