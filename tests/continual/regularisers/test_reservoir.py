"""The reservoir: a uniform, fixed-size sample of a stream, with targets set on demand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from continual.regularisers import ReservoirBuffer


def stream(buffer: ReservoirBuffer, n: int, batch: int, start: int = 0) -> None:
    """Offer the inputs start, start+1, ... (one value each) in batches."""
    for first in range(start, start + n, batch):
        buffer.add(torch.arange(first, min(first + batch, start + n), dtype=torch.float32)[:, None])


def test_fills_in_order_then_keeps_each_input_with_equal_probability() -> None:
    """After N inputs each is kept with probability capacity / N: every quarter of a stream of
    20,000 holds a quarter of the 500 entries (125, binomial sd ≈ 10), in every seed."""
    small = ReservoirBuffer(8, seed=0)
    stream(small, 5, batch=3)
    assert len(small) == 5 and small.inputs is not None
    assert small.inputs[:5, 0].tolist() == [0, 1, 2, 3, 4]
    for seed in range(4):
        buffer = ReservoirBuffer(500, seed=seed)
        stream(buffer, 20_000, batch=2048)
        assert len(buffer) == 500 and buffer.n_seen == 20_000
        kept = buffer.inputs[:, 0].numpy()
        assert len(np.unique(kept)) == 500  # no input twice
        per_quarter = np.histogram(kept, bins=4, range=(0, 20_000))[0]
        assert np.all(np.abs(per_quarter - 125) < 45), per_quarter


def test_a_replaced_entry_loses_its_target_until_the_next_label() -> None:
    buffer = ReservoirBuffer(64, seed=1)
    assert buffer.sample(4) is None
    stream(buffer, 64, batch=32)
    assert buffer.label(lambda x: 2 * x) == 64 and buffer.n_labelled == 64
    x, y = buffer.sample(256)
    torch.testing.assert_close(y, 2 * x)
    stream(buffer, 640, batch=64, start=64)  # most entries are replaced
    assert 0 < buffer.n_labelled < 64
    x, y = buffer.sample(256)
    assert float(x.max()) < 64  # only entries with a target are drawn
    torch.testing.assert_close(y, 2 * x)
    before = buffer.n_labelled
    assert buffer.label(lambda x: 3 * x) == 64 - before
    assert buffer.n_labelled == 64 and buffer.label(lambda x: x) == 0  # nothing left to label


def test_bytes_are_fixed_once_the_first_input_and_target_exist() -> None:
    buffer = ReservoirBuffer(100, seed=0)
    stream(buffer, 10, batch=10)
    buffer.label(lambda x: x.repeat(1, 2))
    size = buffer.state_bytes()
    assert size == 100 * 1 * 4 + 100 * 2 * 4 + 100  # inputs, targets, flags
    for k in range(50):
        stream(buffer, 1000, batch=500, start=10 + 1000 * k)
        buffer.label(lambda x: x.repeat(1, 2))
    assert buffer.state_bytes() == size


def test_a_restored_buffer_continues_exactly() -> None:
    a = ReservoirBuffer(32, seed=3)
    stream(a, 100, batch=16)
    a.label(lambda x: -x)
    b = ReservoirBuffer(32, seed=99)
    b.load_state_dict(a.state_dict())
    for buf in (a, b):
        stream(buf, 100, batch=16, start=100)
        buf.label(lambda x: -x)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert torch.equal(a.sample(10)[0], b.sample(10)[0])
    with pytest.raises(ValueError, match="capacity 32, this one has 16"):
        ReservoirBuffer(16).load_state_dict(a.state_dict())


@pytest.mark.parametrize("capacity", [0, -1, 2.5, True])
def test_bad_capacity_is_refused(capacity) -> None:
    with pytest.raises(ValueError, match="capacity: must be an integer >= 1"):
        ReservoirBuffer(capacity)


def test_inputs_of_another_shape_are_refused() -> None:
    buffer = ReservoirBuffer(8)
    buffer.add(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"inputs of shape \(4,\) after \(3,\)"):
        buffer.add(torch.zeros(2, 4))
