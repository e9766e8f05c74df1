"""train.py on a stream of third-party envs (stream=cartpole_family): every usual output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_runs import RUN_OUTPUTS, SMALL_AGENT_AND_EVAL, assert_ok, run_train

TINY_CARTPOLE = [
    "stream=cartpole_family",
    "stream.schedule.0.steps=1024",
    "stream.schedule.1.steps=1024",
    "stream.blur=512",
    *SMALL_AGENT_AND_EVAL,
    "checkpoint_freq=1024",
]


def test_cartpole_family_writes_every_output_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_train(run_dir, *TINY_CARTPOLE, "continual=si_boundary")
    assert_ok(proc)
    for name in RUN_OUTPUTS:
        assert (run_dir / name).is_file(), name
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["run"]["stream"] == "cartpole_family" and m["run"]["method"] == "si_boundary"
    assert m["task_names"] == ["cartpole", "cartpole_swapped"]
    assert m["stream"]["boundaries"] == [1024] and m["stream"]["blur"] == 512
    assert m["eval_steps"] == [0, 1024, 2048]
    assert np.asarray(m["success_matrix"]).shape == (3, 2)
    assert m["run"]["consolidations"] >= 1  # the oracle boundary trigger read the ground truth
    (log_dir,) = (run_dir / "tb").iterdir()
    ea = EventAccumulator(str(log_dir))
    ea.Reload()
    scalars = set(ea.Tags()["scalars"])
    for tag in ("eval/task_1/success", "stream/weight_1", "rollout/ep_rew_mean"):
        assert tag in scalars, tag
    # A finished run resumes from its checkpoint (stream state included) and rewrites outputs.
    again = run_train(tmp_path / "unused", f"resume={run_dir}")
    assert_ok(again)
    assert "already reached" in again.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_cartpole_family_interferes_and_is_jointly_solvable(tmp_path: Path) -> None:
    """The benchmark's premise (docs/user-envs.md#a-third-party-continual-benchmark), seed 0:
    fine-tuning on the swapped task forgets the first; one policy learns both when trained on
    their mixture. About 2 x 2 minutes."""
    common = ["stream=cartpole_family", "continual=finetune", "progress_bar=false"]
    seq = run_train(tmp_path / "seq", *common, timeout=900)
    joint = run_train(tmp_path / "joint", *common, "stream.joint=true", timeout=900)
    assert_ok(seq)
    assert_ok(joint)
    a = json.loads((tmp_path / "seq" / "metrics.json").read_text())["per_task"]["cartpole"]
    assert a["plasticity"] >= 0.9 and a["final"] <= 0.3
    m = json.loads((tmp_path / "joint" / "metrics.json").read_text())
    assert m["average_performance"] >= 0.9
