"""The same multirun sent through ``hydra/launcher=ray`` to a local Ray instance.

Needs the ``ray`` extra (``pip install -c constraints.txt -e '.[ray]'``); skipped without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip(
    "ray",
    reason="ray is not installed (optional extra: pip install -c constraints.txt -e '.[ray]')",
)
pytest.importorskip(
    "hydra_plugins.hydra_ray_launcher",
    reason="hydra-ray-launcher is not installed (optional extra: pip install -e '.[ray]')",
)

from tiny_runs import TINY_STREAM, describe, run


def test_ray_launcher_runs_the_multirun(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    proc = run(
        [
            "train.py",
            "-m",
            "hydra/launcher=ray",
            # a local instance the size of this machine, started and stopped by the launcher
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            f"hydra.sweep.dir={sweep}",
            "continual=finetune,si_plateau",
            "seed=0",
            *TINY_STREAM,
        ],
        timeout=400,
    )
    assert proc.returncode == 0, describe(proc)
    assert "Ray Launcher is launching 2 jobs" in proc.stdout + proc.stderr
    found = sorted(sweep.glob("*/metrics.json"))
    assert [p.parent.name for p in found] == ["0", "1"]
    methods = {json.loads(p.read_text())["run"]["method"] for p in found}
    assert methods == {"finetune", "si_plateau"}
    for p in found:
        m = json.loads(p.read_text())
        assert m["run"]["num_timesteps"] == 2048
        assert (p.parent / "success_matrix.csv").is_file() and (p.parent / "model.zip").is_file()

    proc = run(["-m", "studies.report", str(sweep)], timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert "| finetune |" in proc.stdout and "| si_plateau |" in proc.stdout
