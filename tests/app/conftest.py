"""Fixtures for the train.py end-to-end tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tiny_runs import TINY, assert_ok, run_train


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One tiny default run shared by the tests that only read its outputs."""
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    proc = run_train(run_dir, *TINY)
    assert_ok(proc)
    return run_dir, proc
