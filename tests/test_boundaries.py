"""The architecture's import rules: the import-linter contracts of pyproject.toml hold, and
they catch a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("envs", "continual", "agents", "configs", "studies")


def lint_imports(tree: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    only = [arg for c in contracts for arg in ("--contract", c)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *only],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_code(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("train.py", "tune.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_contracts_hold() -> None:
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("continual/metrics.py", "import envs", "library-independent"),
        ("continual/sb3/detector.py", "import studies.report", "library-independent"),
        ("envs/core.py", "import continual", "envs-independent"),
        ("envs/core.py", "import train", "envs-independent"),
        ("continual/regularisers/__init__.py", "import stable_baselines3", "plain-pytorch"),
        ("agents/factory.py", "import configs.schema", "agents-below-app"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract) -> None:
    tree = copy_of_the_code(tmp_path)
    assert lint_imports(tree, contract).returncode == 0  # the copy itself keeps it
    target = tree / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    proc = lint_imports(tree, contract)
    assert proc.returncode != 0 and "1 broken" in proc.stdout, proc.stdout
