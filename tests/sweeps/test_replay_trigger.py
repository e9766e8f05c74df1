"""benchmarks/replay_trigger.py on a logged return trace: thresholds are scored offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from torch.utils.tensorboard import SummaryWriter

from continual.callback import PLATEAU_DEFAULTS
from continual.triggers import PlateauTrigger

ROOT = Path(__file__).resolve().parents[2]
PHASE = 49152
ROLLOUT = 2048


def load_replay():
    spec = importlib.util.spec_from_file_location(
        "replay_trigger", ROOT / "benchmarks" / "replay_trigger.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def returns(rng: np.random.Generator) -> np.ndarray:
    """Per rollout over two 24-rollout phases: learned from 0 to 1, then the switch drops the
    return to 0.7 (30% of the range seen), and the second task is learned back to 1."""
    first = np.concatenate([np.linspace(0.0, 1.0, 10), np.ones(14)])
    second = np.concatenate([np.full(6, 0.7), np.linspace(0.7, 1.0, 6), np.ones(12)])
    return np.concatenate([first, second]) + 0.002 * rng.standard_normal(48)


def write_run(run_dir: Path, values: np.ndarray) -> None:
    config = {
        "stream": {
            "name": "two",
            "schedule": [{"task": "north", "steps": PHASE}, {"task": "south", "steps": PHASE}],
            "blur": 0,
            "joint": False,
        },
        "continual": {"name": "si_plateau", "trigger": "plateau", "signal": "negative_return"},
    }
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    writer = SummaryWriter(str(run_dir / "tb" / "run_1"))
    for i, value in enumerate(values):
        writer.add_scalar("continual/signal/negative_return", -value, (i + 1) * ROLLOUT)
    writer.close()


def test_replay_matches_the_live_trigger():
    replay = load_replay()
    signal = {(i + 1) * ROLLOUT: -v for i, v in enumerate(returns(np.random.default_rng(0)))}
    settings = {**PLATEAU_DEFAULTS["negative_return"], "rel_floor": 0.2}
    live = PlateauTrigger(**settings)
    shifts = [s for s in sorted(signal) if live.update(signal[s], s).shift]
    assert replay.replay(signal, settings).shift.tolist() == shifts == [26 * ROLLOUT]


def test_a_30_percent_drop_is_a_shift_at_20_not_at_35(tmp_path, capsys):
    write_run(tmp_path / "runs" / "0", returns(np.random.default_rng(1)))
    load_replay().main([str(tmp_path / "runs"), "--grid", "rel_floor=0.2,0.35"])
    out = capsys.readouterr().out
    assert "1 task-free runs replayed" in out
    assert "| rel_floor=0.2 | 1 / 1 (100%) | 0 |" in out
    assert "| rel_floor=0.35 | 0 / 1 (0%) | 0 |" in out


def test_no_task_free_runs_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no task-free runs"):
        load_replay().main([str(tmp_path)])
