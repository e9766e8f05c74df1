"""Running ``train.py`` as a real subprocess, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A run small enough for tests: 2 PPO updates of 16 x 128 per eval, 4 episodes per task.
TINY = [
    "total_steps=8192",
    "eval.eval_freq=4096",
    "eval.n_eval_episodes=4",
    "eval.n_envs=4",
    "checkpoint_freq=4096",
    "progress_bar=false",
]


def train_cmd(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "train.py", f"hydra.run.dir={run_dir}", *overrides]


def run_train(run_dir: Path, *overrides: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run train.py to completion; returns the finished process (stdout/stderr as text)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        train_cmd(run_dir, *overrides),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"train.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
