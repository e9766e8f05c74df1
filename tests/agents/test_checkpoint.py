"""Checkpoint files: the atomic write keeps the previous checkpoint, loading falls back to it,
and an unusable run directory gives a CheckpointError that names the files."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from agents.checkpoint import (
    CHECKPOINT,
    PREVIOUS,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)


class FakeModel:
    """What save_checkpoint reads from an SB3 model: ``save`` and ``num_timesteps``."""

    def __init__(self, num_timesteps: int) -> None:
        self.num_timesteps = num_timesteps

    def save(self, f: io.BytesIO) -> None:
        f.write(f"model@{self.num_timesteps}".encode())


def _save(run_dir: Path, step: int, **extras: Any) -> Path:
    return save_checkpoint(run_dir, FakeModel(step), extras)  # type: ignore[arg-type]


def _payload(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_save_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    assert _save(tmp_path, 100, tag="first") == tmp_path / CHECKPOINT
    assert not (tmp_path / PREVIOUS).exists()
    _save(tmp_path, 200, tag="second")
    assert _payload(tmp_path / CHECKPOINT)["tag"] == "second"
    assert _payload(tmp_path / PREVIOUS)["tag"] == "first"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    payload = load_checkpoint(tmp_path)
    assert payload["num_timesteps"] == 200 and payload["model_zip"] == b"model@200"


def test_a_failed_write_leaves_both_checkpoints_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(tmp_path, 100, tag="first")
    _save(tmp_path, 200, tag="second")
    before = {name: (tmp_path / name).read_bytes() for name in (CHECKPOINT, PREVIOUS)}

    def crash(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 300, tag="third")
    monkeypatch.undo()
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
    assert load_checkpoint(tmp_path)["tag"] == "second"


def test_a_corrupt_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path: Path) -> None:
    _save(tmp_path, 100, tag="first")
    _save(tmp_path, 200, tag="second")
    (tmp_path / CHECKPOINT).write_bytes(b"\x00torn write")
    warnings: list[str] = []
    payload = load_checkpoint(tmp_path, warn=warnings.append)
    assert payload["tag"] == "first" and payload["num_timesteps"] == 100
    assert len(warnings) == 1
    assert str(tmp_path / CHECKPOINT) in warnings[0] and str(tmp_path / PREVIOUS) in warnings[0]


def test_a_file_of_another_format_is_not_a_checkpoint(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / CHECKPOINT)
    with pytest.raises(CheckpointError, match="not a synaptic-rl checkpoint") as exc:
        load_checkpoint(tmp_path)
    assert str(tmp_path / CHECKPOINT) in str(exc.value)


def test_an_unreadable_run_dir_names_every_file(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT).write_bytes(b"garbage")
    (tmp_path / PREVIOUS).write_bytes(b"")
    with pytest.raises(CheckpointError, match="no usable checkpoint") as exc:
        load_checkpoint(tmp_path)
    msg = str(exc.value)
    assert str(tmp_path / CHECKPOINT) in msg and str(tmp_path / PREVIOUS) in msg


def test_a_missing_or_empty_run_dir_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such run directory") as exc:
        load_checkpoint(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(exc.value)
    with pytest.raises(CheckpointError, match=f"no {CHECKPOINT}"):
        load_checkpoint(tmp_path)
