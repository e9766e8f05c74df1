"""``python -m continual.report`` forwards to the study kit, and the library never imports it."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from report_runs import write_run

REPO = Path(__file__).resolve().parents[2]
LIBRARY = ("continual", "envs", "agents")


def python_m(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_continual_report_runs_the_study_kit_report(tmp_path: Path) -> None:
    for seed in (0, 1):
        write_run(tmp_path / "runs" / str(seed), "si_plateau", seed, 0.5 + 0.1 * seed)
    proc = python_m(
        "continual.report", str(tmp_path / "runs"), "--out", str(tmp_path / "o"), cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert "| si_plateau |  | 2 | 0.550 [" in proc.stdout
    assert (tmp_path / "o" / "report.md").is_file()
    # errors and their exit status come through
    proc = python_m("continual.report", str(tmp_path / "nope"), cwd=REPO)
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr


def test_continual_report_without_the_study_kit_says_so(tmp_path: Path) -> None:
    """An installed library has no studies/: the alias names where the report lives."""
    shutil.copytree(REPO / "continual", tmp_path / "continual")
    proc = python_m("continual.report", "runs", cwd=tmp_path)
    assert proc.returncode == 2
    assert "study kit (studies.report)" in proc.stderr and "Traceback" not in proc.stderr


def test_the_library_never_imports_the_study_kit() -> None:
    for package in LIBRARY:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                bad = [n for n in names if n == "studies" or n.startswith("studies.")]
                assert not bad, f"{path.relative_to(REPO)} imports {bad}"
