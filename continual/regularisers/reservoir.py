"""A fixed-size, task-free sample of everything a model has seen: reservoir sampling.

After N inputs have been offered, each of them is in the buffer with the same probability
capacity / N (Vitter's algorithm R), whatever the task boundaries: no task label is needed, and
the memory is fixed when the buffer is made. Each entry also holds a target (the model's output
on it, set later) and whether that target is set yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["ReservoirBuffer"]


class ReservoirBuffer:
    """``capacity`` inputs drawn uniformly from a stream, each with a target set on demand.

    :param capacity: number of entries (>= 1); the memory is ``capacity`` inputs and targets.
    :param seed: seed of the draws (which inputs are kept, which entries are sampled).
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if isinstance(capacity, bool) or int(capacity) != capacity or capacity < 1:
            raise ValueError(f"capacity: must be an integer >= 1, got {capacity!r}")
        self.capacity = int(capacity)
        self.rng = np.random.default_rng(seed)
        #: Inputs offered so far (the N of capacity / N).
        self.n_seen = 0
        self.inputs: torch.Tensor | None = None  # [capacity, *input_shape], made at first add
        self.targets: torch.Tensor | None = None  # [capacity, *target_shape], made at first label
        self.labelled = torch.zeros(self.capacity, dtype=torch.bool)
        self._labelled_idx = torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        """Entries filled so far (``capacity`` once ``n_seen`` reaches it)."""
        return min(self.n_seen, self.capacity)

    @property
    def n_labelled(self) -> int:
        """Entries whose target is set."""
        return len(self._labelled_idx)

    def add(self, x: torch.Tensor) -> None:
        """Offer a batch of inputs ``x`` (``[n, *input_shape]``); replaced entries lose their
        target until the next :meth:`label`.

        Input k of the stream (0-based) fills slot k while the buffer is not full; after that
        it replaces a slot drawn uniformly from [0, k] if the draw falls inside the buffer.
        """
        if isinstance(x, Mapping):
            raise ValueError("ReservoirBuffer: dict inputs are not supported; pass a tensor")
        x = x.detach()
        n = len(x)
        if n == 0:
            return
        if self.inputs is None:
            self.inputs = torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype)
        elif tuple(x.shape[1:]) != tuple(self.inputs.shape[1:]):
            raise ValueError(
                f"ReservoirBuffer: inputs of shape {tuple(x.shape[1:])} after "
                f"{tuple(self.inputs.shape[1:])}"
            )
        k = np.arange(self.n_seen, self.n_seen + n)
        slot = self.rng.integers(0, k + 1)
        filling = k < self.capacity
        slot[filling] = k[filling]
        kept = np.flatnonzero(slot < self.capacity)
        # A slot drawn twice in one batch holds the later input, as if added one by one.
        reversed_slots = slot[kept][::-1]
        _, last = np.unique(reversed_slots, return_index=True)
        kept = kept[::-1][last]
        slots = torch.from_numpy(slot[kept])
        self.inputs[slots] = x[torch.from_numpy(kept)].to(self.inputs.dtype, copy=False).cpu()
        self.labelled[slots] = False
        self.n_seen += n
        self._index_labelled()

    @torch.no_grad()
    def label(self, fn: Callable[[torch.Tensor], torch.Tensor], chunk_size: int = 1024) -> int:
        """Set the target of every entry that has none to ``fn(input)``.

        :param fn: maps a batch of inputs to outputs ``[n, *target_shape]``.
        :param chunk_size: inputs per call of ``fn``.
        :return: the number of entries labelled.
        """
        if self.inputs is None:
            return 0
        todo = (~self.labelled[: len(self)]).nonzero().flatten()
        for start in range(0, len(todo), chunk_size):
            idx = todo[start : start + chunk_size]
            out = fn(self.inputs[idx]).detach().cpu()
            if self.targets is None:
                self.targets = torch.zeros((self.capacity, *out.shape[1:]), dtype=out.dtype)
            self.targets[idx] = out.to(self.targets.dtype)
        self.labelled[todo] = True
        self._index_labelled()
        return len(todo)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``n`` labelled entries drawn uniformly with replacement, as ``(inputs, targets)``;
        ``None`` while no entry is labelled."""
        if not self.n_labelled:
            return None
        pick = self._labelled_idx[torch.from_numpy(self.rng.integers(0, self.n_labelled, n))]
        assert self.inputs is not None and self.targets is not None
        return self.inputs[pick], self.targets[pick]

    def _index_labelled(self) -> None:
        self._labelled_idx = self.labelled.nonzero().flatten()

    def state_bytes(self) -> int:
        """Bytes held: inputs, targets and flags (fixed once the first input and target exist)."""
        tensors = [t for t in (self.inputs, self.targets, self.labelled) if t is not None]
        return sum(t.numel() * t.element_size() for t in tensors)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and builtins only (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "capacity": self.capacity,
            "n_seen": self.n_seen,
            "inputs": self.inputs,
            "targets": self.targets,
            "labelled": self.labelled.clone(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        :raises ValueError: the saved buffer has another capacity.
        """
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"ReservoirBuffer: saved with capacity {state['capacity']}, this one has "
                f"{self.capacity}"
            )
        self.n_seen = int(state["n_seen"])
        self.inputs = None if state["inputs"] is None else state["inputs"].clone()
        self.targets = None if state["targets"] is None else state["targets"].clone()
        self.labelled = state["labelled"].clone().to(torch.bool)
        self.rng.bit_generator.state = state["rng"]
        self._index_labelled()
