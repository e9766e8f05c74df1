"""Atomic run checkpoints for SB3 models: one file holding everything a resume needs.

A checkpoint is a single ``torch.save`` file with the model's ``.zip`` bytes (parameters and
optimizer state), the number of env steps done, the global RNG states, and any picklable
extras the caller adds (continual-callback state, stream position, evaluation history).
Writing goes to a temporary file in the same directory, is fsynced, and then renamed over
``checkpoint.pt``; the previous checkpoint is kept as ``checkpoint.prev.pt``. A crash at any
moment therefore leaves at least one complete checkpoint.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from continual.io import atomic_write_bytes

__all__ = [
    "CHECKPOINT",
    "FORMAT",
    "PREVIOUS",
    "CheckpointCallback",
    "CheckpointError",
    "capture_rng",
    "load_checkpoint",
    "restore_model_state",
    "restore_rng",
    "save_checkpoint",
]

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
FORMAT = "synaptic-rl.checkpoint/1"


class CheckpointError(ValueError):
    """A run directory has no usable checkpoint."""


def capture_rng() -> dict[str, Any]:
    """The global random states that SB3 training draws from (python, numpy, torch)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore :func:`capture_rng`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    run_dir: str | os.PathLike[str], model: BaseAlgorithm, extras: Mapping[str, Any]
) -> Path:
    """Write ``run_dir/checkpoint.pt`` atomically, keeping the previous one as
    ``checkpoint.prev.pt``. ``extras``: picklable state stored alongside the model."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    model.save(buf)
    payload = {
        "format": FORMAT,
        "num_timesteps": int(model.num_timesteps),
        "model_zip": buf.getvalue(),
        "last_obs": getattr(model, "_last_obs", None),
        "last_episode_starts": getattr(model, "_last_episode_starts", None),
        "last_lstm_states": getattr(model, "_last_lstm_states", None),
        "rng": capture_rng(),
        **extras,
    }
    out = io.BytesIO()
    torch.save(payload, out)
    return atomic_write_bytes(run_dir / CHECKPOINT, out.getvalue(), previous=run_dir / PREVIOUS)


def _read(path: Path) -> dict[str, Any]:
    try:
        # Our own file: it holds numpy RNG states and arrays, which weights_only rejects.
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a synaptic-rl checkpoint (missing format {FORMAT})")
    for key in ("num_timesteps", "model_zip"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    return payload


def load_checkpoint(
    run_dir: str | os.PathLike[str], warn: Callable[[str], None] = print
) -> dict[str, Any]:
    """Load the newest readable checkpoint of ``run_dir`` (falling back to the previous one).

    :param run_dir: the run directory holding ``checkpoint.pt`` / ``checkpoint.prev.pt``.
    :param warn: called with a message when ``checkpoint.pt`` is unreadable and the previous
        checkpoint is used instead.
    :return: the checkpoint's payload (see :func:`save_checkpoint`).
    :raises CheckpointError: the directory does not exist, or holds no readable checkpoint; the
        message names the files and what is wrong with them.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"resume={run_dir}: no such run directory")
    errors: list[str] = []
    for name in (CHECKPOINT, PREVIOUS):
        p = run_dir / name
        if not p.is_file():
            continue
        try:
            payload = _read(p)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        if errors:
            warn(f"warning: {errors[-1]}; resuming from {p} instead")
        return payload
    if not errors:
        raise CheckpointError(f"resume={run_dir}: no {CHECKPOINT} (the run never checkpointed)")
    raise CheckpointError(f"resume={run_dir}: no usable checkpoint: " + "; ".join(errors))


def restore_model_state(model: BaseAlgorithm, payload: Mapping[str, Any]) -> None:
    """Put the saved rollout-continuation state back on a loaded model, so training continues
    from the saved observations instead of resetting the envs."""
    if payload.get("last_obs") is not None:
        model._last_obs = payload["last_obs"]  # type: ignore[attr-defined]
        model._last_episode_starts = payload["last_episode_starts"]  # type: ignore[attr-defined]
    if payload.get("last_lstm_states") is not None and hasattr(model, "_last_lstm_states"):
        model._last_lstm_states = payload["last_lstm_states"]


class CheckpointCallback(BaseCallback):
    """Checkpoint between PPO updates (at rollout start) every ``save_freq`` env steps.

    Rollout start is the one point where the model has just been updated and no half-collected
    rollout would be lost. The first rollout of a fresh run is checkpointed too, so any run that
    started can be resumed. ``extras`` is called at save time for the state to store with the
    model (e.g. ``{"continual": cb.state_dict(), "stream": env.get_stream_state()}``).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        save_freq: int,
        extras: Callable[[], Mapping[str, Any]],
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if save_freq < 1:
            raise ValueError(f"checkpoint_freq={save_freq} must be in [1, inf)")
        self.run_dir = Path(run_dir)
        self.save_freq = int(save_freq)
        self.extras = extras
        self._next: int | None = None
        self.last_saved_step: int | None = None

    def _on_training_start(self) -> None:
        n = self.num_timesteps
        self._next = 0 if n == 0 else (n // self.save_freq + 1) * self.save_freq

    def _on_rollout_start(self) -> None:
        assert self._next is not None
        if self.num_timesteps >= self._next:
            self.save()
            self._next = (self.num_timesteps // self.save_freq + 1) * self.save_freq

    def _on_step(self) -> bool:
        return True

    def save(self) -> Path:
        """Checkpoint now."""
        path = save_checkpoint(self.run_dir, self.model, self.extras())
        self.last_saved_step = int(self.num_timesteps)
        if self.verbose:
            print(f"checkpoint @ {self.num_timesteps}: {path}")
        return path
