"""studies.replay_trigger on a logged return trace: thresholds are scored offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from torch.utils.tensorboard import SummaryWriter

from continual.sb3.signals import PLATEAU_DEFAULTS
from continual.triggers import PlateauTrigger
from studies import replay_trigger

PHASE = 49152
ROLLOUT = 2048


def returns(rng: np.random.Generator) -> np.ndarray:
    """Per rollout over two 24-rollout phases: learned from 0 to 1, then the switch drops the
    return to 0.7 (30% of the range seen), and the second task is learned back to 1."""
    first = np.concatenate([np.linspace(0.0, 1.0, 10), np.ones(14)])
    second = np.concatenate([np.full(6, 0.7), np.linspace(0.7, 1.0, 6), np.ones(12)])
    return np.concatenate([first, second]) + 0.002 * rng.standard_normal(48)


def write_run(run_dir: Path, values: np.ndarray, recorded: bool = False) -> None:
    """A plateau run over two phases. ``recorded``: the switch is in the run record's stream
    block, and the config's schedule (which older runs are read from) has none."""
    schedule = [{"task": "north", "steps": PHASE}, {"task": "south", "steps": PHASE}]
    config = {
        "stream": {
            "name": "two",
            "schedule": [{"task": "north", "steps": 2 * PHASE}] if recorded else schedule,
            "blur": 0,
            "joint": False,
        },
        "continual": {"name": "si_plateau", "trigger": "plateau", "signal": "negative_return"},
    }
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    if recorded:
        stream = {
            "tasks": ["north", "south"],
            "windows": [[0, PHASE], [PHASE, 2 * PHASE]],
            "boundaries": [PHASE],
            "blur": 0,
            "joint": False,
        }
        (run_dir / "metrics.json").write_text(json.dumps({"stream": stream}))
    writer = SummaryWriter(str(run_dir / "tb" / "run_1"))
    for i, value in enumerate(values):
        writer.add_scalar("continual/signal/negative_return", -value, (i + 1) * ROLLOUT)
    writer.close()


def test_replay_matches_the_live_trigger():
    signal = {(i + 1) * ROLLOUT: -v for i, v in enumerate(returns(np.random.default_rng(0)))}
    settings = {**PLATEAU_DEFAULTS["negative_return"], "rel_floor": 0.2}
    live = PlateauTrigger(**settings)
    shifts = [s for s in sorted(signal) if live.update(signal[s], s).shift]
    assert replay_trigger.replay(signal, settings).shift.tolist() == shifts == [26 * ROLLOUT]


def test_a_30_percent_drop_is_a_shift_at_20_not_at_35(tmp_path, capsys):
    write_run(tmp_path / "runs" / "0", returns(np.random.default_rng(1)))
    replay_trigger.main([str(tmp_path / "runs"), "--grid", "rel_floor=0.2,0.35"])
    out = capsys.readouterr().out
    assert "1 task-free runs replayed" in out
    assert "| rel_floor=0.2 | 1 / 1 (100%) | 0 |" in out
    assert "| rel_floor=0.35 | 0 / 1 (0%) | 0 |" in out


def test_the_switches_come_from_the_run_record(tmp_path, capsys):
    write_run(tmp_path / "runs" / "0", returns(np.random.default_rng(1)), recorded=True)
    replay_trigger.main([str(tmp_path / "runs"), "--grid", "rel_floor=0.2"])
    assert "| rel_floor=0.2 | 1 / 1 (100%) | 0 |" in capsys.readouterr().out


def test_no_task_free_runs_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no task-free runs"):
        replay_trigger.main([str(tmp_path)])
