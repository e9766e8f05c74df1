"""Running ``train.py -m``, ``tune.py`` and ``python -m continual.report`` as real subprocesses
for the sweep tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Two tasks of 1024 env steps each with a hard switch, small nets, 3 evaluations (0, 1024, 2048)
# of 2 episodes per task: about 10 s per run, and the report still gets a curve per task and a
# forgetting value.
TINY = [
    "stream.schedule=[{task:north,steps:1024},{task:southwest,steps:1024}]",
    "stream.blur=0",
    "stream.drift=[]",
    "n_envs=4",
    "agent.n_steps=64",
    "agent.batch_size=64",
    "agent.n_epochs=2",
    "agent.pi_layers=[32,32]",
    "agent.vf_layers=[32,32]",
    "eval.eval_freq=1024",
    "eval.n_eval_episodes=2",
    "eval.n_envs=2",
    "eval.stochastic=false",
    "progress_bar=false",
    "checkpoint_freq=100000",
]


def env() -> dict[str, str]:
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
