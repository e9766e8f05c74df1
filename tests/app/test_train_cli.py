"""End-to-end runs of train.py as a subprocess: outputs, TensorBoard, determinism, resume after
SIGKILL, bad input, the non-finite guard, and the recurrent agent on the POMDP stream."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from nan_injection import inject_at
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_runs import REPO, RUN_OUTPUTS, TINY, assert_ok, run_train, train_cmd


def _tb(run_dir: Path) -> EventAccumulator:
    (log_dir,) = (run_dir / "tb").iterdir()
    ea = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return ea


def _payload(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_tiny_run_writes_every_output_and_prints_table(tiny_run) -> None:
    run_dir, proc = tiny_run
    for name in RUN_OUTPUTS:
        assert (run_dir / name).is_file(), name
    assert "continual metrics after 8,192 env steps" in proc.stdout
    assert "average" in proc.stdout
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["run"]["method"] == "si_keep" and m["run"]["stream"] == "quick"
    # The default SI keeps Ω, θ*, its path integral ω and θ before each step: four float32
    # buffers per policy and value parameter it holds.
    state = _payload(run_dir / "continual_state.pt")
    held = sum(t.numel() * 4 for t in state["regulariser"]["tensors"]["anchor"].values())
    assert m["run"]["state_bytes"] == 4 * held > 0
    assert m["task_names"] == ["north", "southwest", "southeast"]
    assert m["eval_steps"] == [0, 4096, 8192]
    assert np.asarray(m["success_matrix"]).shape == (3, 3)
    assert 0.0 <= m["average_performance"] <= 1.0
    header = (run_dir / "success_matrix.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["step", "success/north"]
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.total_steps == 8192 and cfg.run_dir == str(run_dir.resolve())


def test_tensorboard_has_all_scalar_families(tiny_run) -> None:
    run_dir, _ = tiny_run
    ea = _tb(run_dir)
    scalars = set(ea.Tags()["scalars"])
    for tag in (
        "eval/task_0/success",
        "eval/task_2/return",
        "eval/avg_success",
        "eval/task_0/success_stochastic",
        "stream/weight_0",
        "stream/weight_2",
        "metrics/average_performance",
    ):
        assert tag in scalars, tag
    for prefix in ("continual/", "rollout/", "train/", "stream/"):
        assert any(t.startswith(prefix) for t in scalars), prefix
    assert [e.step for e in ea.Scalars("eval/avg_success")] == [0, 4096, 8192]
    assert "eval/success_matrix" in ea.Tags()["images"]
    assert "eval/curves" in ea.Tags()["images"]
    # The hparams tab (config and final metrics).
    assert "_hparams_/session_start_info" in ea.PluginTagToContent("hparams")


def test_same_seed_gives_same_metrics(tiny_run, tmp_path: Path) -> None:
    run_dir, _ = tiny_run
    proc = run_train(tmp_path / "again", *TINY)
    assert_ok(proc)
    a = json.loads((run_dir / "metrics.json").read_text())
    b = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert a == b


def test_resume_after_sigkill_continues_exactly(tiny_run, tmp_path: Path) -> None:
    """Kill the tiny run after its mid-way checkpoint, resume it, and get the uninterrupted
    run's metrics.json bit for bit (model, optimizer, continual state, stream position, RNG and
    evaluation history all restored)."""
    run_dir = tmp_path / "run"
    total = 8192
    proc = subprocess.Popen(
        train_cmd(run_dir, *TINY),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    ckpt = run_dir / "checkpoint.pt"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            # os.replace makes the file appear complete or not at all
            if ckpt.exists() and _payload(ckpt)["num_timesteps"] > 0:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "run ended before it could be killed"
    saved = _payload(ckpt)
    assert 0 < saved["num_timesteps"] < total
    assert not (run_dir / "metrics.json").exists()

    # The restore path of train.py, in-process: restored state equals what was saved.
    import train
    from envs import make_vec_env

    cfg = OmegaConf.merge(
        OmegaConf.structured(train.Config), OmegaConf.load(run_dir / "config.yaml")
    )
    spec, _ = train.stream_spec(cfg)
    nav = make_vec_env(
        spec, n_envs=cfg.n_envs, seed=cfg.seed, world=OmegaConf.to_container(cfg.stream.world)
    )
    nav.set_stream_state(saved["stream"])
    assert nav.t == saved["num_timesteps"]
    _assert_equal_state(nav.get_stream_state(), saved["stream"])
    cont = train.continual_callback(cfg)
    cont.load_state_dict(saved["continual"])
    _assert_equal_state(cont.state_dict(), saved["continual"])

    resumed = run_train(tmp_path / "hydra_resume", f"resume={run_dir}")
    assert_ok(resumed)
    assert f"resuming {run_dir.resolve()} at env step {saved['num_timesteps']:,}" in resumed.stdout
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["run"]["num_timesteps"] == total
    assert m["eval_steps"][: len(saved["eval"]["eval_steps"])] == saved["eval"]["eval_steps"]
    reference = json.loads((tiny_run[0] / "metrics.json").read_text())
    assert m == reference
    for name in ("model.zip", "curves.png", "success_matrix.csv", "continual_state.pt"):
        assert (run_dir / name).is_file()
    # Resuming a finished run only rewrites its outputs.
    again = run_train(tmp_path / "hydra_again", f"resume={run_dir}")
    assert_ok(again)
    assert json.loads((run_dir / "metrics.json").read_text()) == reference


def _assert_equal_state(a, b) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_equal_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_equal_state(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["no_such_key=1"], "no_such_key"),
        (["agent.no_such_field=3"], "no_such_field"),
        (["n_envs=many"], "n_envs"),
        (["n_envs=0"], "n_envs=0 must be an integer in [1, inf)"),
        (["continual=no_such_method"], "continual/no_such_method"),
        (["continual.c=-1"], "continual (si_keep): c: must be finite and >= 0"),
        (["continual.keep_top=1.5"], "keep_top: must be None (keep all) or a fraction in (0, 1]"),
        (["continual.xi=lots"], "continual.xi"),
        (["continual.adaptive_target=0.2", "continual.adaptive_signal=loss"], "adaptive_signal"),
        (["continual.regulariser=sii"], "unknown method 'sii'"),
        (["continual=l2", "continual.xi=0.1"], "['xi']: not options of regulariser 'l2'"),
        (["resume=/nonexistent/run"], "not a run directory"),
    ],
)
def test_bad_input_fails_with_a_clear_message(overrides, expected, tmp_path: Path) -> None:
    proc = run_train(tmp_path / "run", *overrides)
    assert proc.returncode != 0
    assert expected in proc.stdout + proc.stderr


def test_corrupt_checkpoints_are_reported(tiny_run, tmp_path: Path) -> None:
    src, _ = tiny_run
    run_dir = tmp_path / "copy"
    shutil.copytree(src, run_dir)
    # Newest checkpoint corrupt: the previous one is used, with a warning.
    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    proc = run_train(tmp_path / "h1", f"resume={run_dir}")
    assert_ok(proc)
    assert "warning" in proc.stdout and "checkpoint.prev.pt" in proc.stdout
    # Both corrupt: a clear error naming the files.
    (run_dir / "checkpoint.pt").write_bytes(b"garbage")
    (run_dir / "checkpoint.prev.pt").write_bytes(b"garbage")
    proc = run_train(tmp_path / "h2", f"resume={run_dir}")
    assert proc.returncode != 0
    assert "no usable checkpoint" in proc.stderr and "checkpoint.prev.pt" in proc.stderr
    # A fresh run refuses to overwrite an existing run directory.
    proc = run_train(tmp_path / "h3", *TINY, f"run_dir={src}")
    assert proc.returncode != 0 and "already holds a run" in proc.stderr


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_train(
        run_dir,
        "total_steps=8192",
        "checkpoint_freq=2048",
        "eval.eval_freq=8192",
        "eval.n_eval_episodes=2",
        "eval.n_envs=2",
        "progress_bar=false",
        inject_at(4096),
    )
    assert proc.returncode != 0
    assert "non-finite values" in proc.stderr
    assert "last good checkpoint" in proc.stderr
    payload = _payload(run_dir / "checkpoint.pt")
    assert payload["num_timesteps"] <= 4096
    import io

    from stable_baselines3 import PPO

    model = PPO.load(io.BytesIO(payload["model_zip"]), device="cpu")
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())
    assert not (run_dir / "metrics.json").exists()


def test_recurrent_ppo_on_pomdp_stream(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_train(
        run_dir,
        "agent=recurrent_ppo",
        "stream=pomdp",
        "total_steps=2048",
        "eval.eval_freq=2048",
        "eval.n_eval_episodes=2",
        "eval.n_envs=2",
        "checkpoint_freq=2048",
        "progress_bar=false",
    )
    assert_ok(proc)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["run"]["algo"] == "recurrent_ppo" and m["run"]["stream"] == "pomdp"
    assert m["eval_steps"] == [0, 2048]
    assert OmegaConf.load(run_dir / "config.yaml").stream.world.cue_steps == 5
