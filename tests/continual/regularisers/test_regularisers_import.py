"""The regularisers are plain PyTorch: importing them never imports stable-baselines3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _imports_sb3(code: str) -> bool:
    check = f"{code}\nimport sys\nprint('stable_baselines3' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1] == "True"


def test_the_regulariser_package_does_not_import_stable_baselines3():
    # The ``continual`` package object is made by hand, so only continual/regularisers (and
    # what it imports) runs, whatever continual/__init__.py imports.
    code = (
        "import sys, types\n"
        "pkg = types.ModuleType('continual'); pkg.__path__ = ['continual']\n"
        "sys.modules['continual'] = pkg\n"
        "import continual.regularisers, continual.regularisers.reference\n"
        "import continual.experimental\n"
        "from continual.regularisers import SI, L2, OnlineEWC, MAS, QuadraticRegulariser"
    )
    assert not _imports_sb3(code)


def test_import_continual_regularisers_does_not_import_stable_baselines3():
    assert not _imports_sb3("import continual.regularisers")


def test_the_plain_pytorch_api_does_not_import_stable_baselines3():
    assert not _imports_sb3("from continual import SI, L2, OnlineEWC, MAS, PlateauTrigger")
