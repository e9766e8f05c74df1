"""What a consolidation does to the fresh estimate: keep_top, the accumulate rules, the mean."""

from __future__ import annotations

import math

import pytest
import torch
from regulariser_problems import fit, make_model, make_tasks
from torch import nn

from continual.regularisers import SI, check_keep_top
from continual.regularisers.transforms import combine, keep_top, mean_scale


def test_keep_top_keeps_the_largest_share_of_each_fresh_estimate():
    model = make_model(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    reg = SI(model, opt, c=1e6, keep_top=0.25)
    want = [torch.zeros_like(p) for p in reg.params]
    for task in make_tasks(n_tasks=2, steps=10):
        fit(model, opt, task)
        fresh = [f.clamp(min=0) for f in reg.fresh_importance()]
        flat = torch.cat([f.reshape(-1) for f in fresh])
        n_keep = math.ceil(0.25 * flat.numel())
        threshold = flat.sort(descending=True).values[n_keep - 1]
        want = [w + f * (f >= threshold) for w, f in zip(want, fresh, strict=True)]
        reg.consolidate()
        for w, got in zip(want, reg.importance.values(), strict=True):
            torch.testing.assert_close(got, w)
    kept = sum(int((o > 0).sum()) for o in reg.importance.values())
    n = sum(o.numel() for o in reg.importance.values())
    assert math.ceil(0.25 * n) <= kept <= 2 * math.ceil(0.25 * n)  # the union of two masks
    # A parameter left out carries no penalty gradient, however strong c is.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    x, y = make_tasks(n_tasks=1, steps=1)[0][0]
    free = [o == 0 for o in reg.importance.values()]
    with reg.hooks_disabled():
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        task_grads = [p.grad.clone() for p in reg.params]
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    for p, g, f in zip(reg.params, task_grads, free, strict=True):
        torch.testing.assert_close(p.grad[f], g[f])
        assert (p.grad[~f] - g[~f]).abs().min() > 1.0


def test_keep_top_works_per_group():
    fresh = [torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([10.0, 5.0]), torch.tensor([-1.0])]
    keep_top(fresh, [[0], [1, 2]], 0.5)
    assert fresh[0].tolist() == [0.0, 0.0, 3.0, 4.0]
    # The second group holds 10, 5 and -1 (counted as 0): ceil(0.5 · 3) = 2 values are kept.
    assert fresh[1].tolist() == [10.0, 5.0]
    assert fresh[2].tolist() == [0.0]


@pytest.mark.parametrize("keep", [0.0, -0.1, 1.5])
def test_keep_top_out_of_range_is_refused(keep):
    model = make_model()
    with pytest.raises(ValueError, match="keep_top"):
        SI(model, torch.optim.SGD(model.parameters(), lr=0.1), keep_top=keep)
    with pytest.raises(ValueError, match="keep_top"):
        check_keep_top(keep)
    check_keep_top(None)
    check_keep_top(1.0)


@pytest.mark.parametrize(
    ("rule", "want"), [("sum", 2.0 + 5.0), ("ema", 0.5 * 2.0 + 5.0), ("mean", (3 * 2.0 + 5) / 4)]
)
def test_combine_rules(rule, want):
    old = torch.tensor([2.0])
    out = combine(old, torch.tensor([5.0]), 3, rule, gamma=0.5)
    assert out is old and float(out) == pytest.approx(want)


def test_mean_scale_falls_back_to_one():
    assert mean_scale([torch.tensor([1.0, 3.0]), torch.tensor([5.0])]) == pytest.approx(3.0)
    assert mean_scale([torch.zeros(3)]) == 1.0
    assert mean_scale([torch.tensor([float("inf")])]) == 1.0
