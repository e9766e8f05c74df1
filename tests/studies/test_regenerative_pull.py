"""The regenerative pull: free parameters (Ω = 0) drift back to θ⁰, kept ones do not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from continual.regularisers import L2, SI
from studies.plasticity import RegenerativePull


def setup(rate: float, cls=SI, keep_top: float | None = 0.5):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    initial = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    pull = RegenerativePull(rate)
    reg = cls(model, opt, c=1.0, keep_top=keep_top, addons=[pull])
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        x = torch.randn(16, 3, generator=g, dtype=torch.float64)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), torch.ones(16, 2, dtype=torch.float64)).backward()
        opt.step()
    reg.consolidate()
    return model, opt, reg, pull, initial


def zero_grad_steps(model: nn.Module, opt: torch.optim.Optimizer, n: int) -> None:
    """Optimizer steps whose task gradient is 0: only the pull (and the penalty, 0 at θ*) moves."""
    for _ in range(n):
        opt.zero_grad()
        (0.0 * sum(p.sum() for p in model.parameters())).backward()
        opt.step()


def test_free_parameters_decay_geometrically_to_their_initial_values_kept_ones_stay():
    model, opt, reg, _pull, initial = setup(rate=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    free = [omega == 0 for omega in reg.importance.values()]
    assert 0.3 < sum(int(f.sum()) for f in free) / sum(f.numel() for f in free) < 0.7
    zero_grad_steps(model, opt, 3)
    for p, b, p0, f in zip(model.parameters(), before, initial, free, strict=True):
        expected = torch.where(f, p0 + 0.9**3 * (b - p0), b)
        torch.testing.assert_close(p.detach(), expected)
    assert reg.stats()["regenerative/free_fraction"] == pytest.approx(
        sum(int(f.sum()) for f in free) / sum(f.numel() for f in free)
    )


def test_no_pull_before_the_first_consolidation_and_at_rate_zero():
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    SI(model, opt, addons=[RegenerativePull(0.5)])
    with torch.no_grad():
        model.weight.add_(1.0)
    moved = model.weight.detach().clone()
    zero_grad_steps(model, opt, 2)
    torch.testing.assert_close(model.weight.detach(), moved)
    model, opt, _, _, _ = setup(rate=0.0)
    before = [p.detach().clone() for p in model.parameters()]
    zero_grad_steps(model, opt, 2)
    for p, b in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b)


def test_the_initial_values_survive_a_state_round_trip_and_a_rebind():
    _model, _opt, reg, pull, initial = setup(rate=0.1, cls=L2, keep_top=None)
    state = reg.state_dict()
    fresh_model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    fresh_opt = torch.optim.SGD(fresh_model.parameters(), lr=0.05)
    other = RegenerativePull(0.1)
    restored = L2(fresh_model, fresh_opt, addons=[other])
    restored.load_state_dict(state)
    for a, b in zip(other.initial, initial, strict=True):
        torch.testing.assert_close(a, b)
    reg.rebind(fresh_model, fresh_opt)
    for a, b in zip(pull.initial, initial, strict=True):
        torch.testing.assert_close(a, b)


def test_rate_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"rate: must be in \[0, 1\)"):
        RegenerativePull(1.0)
