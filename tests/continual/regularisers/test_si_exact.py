"""SI's fast path against SI from its definition (continual.regularisers.reference)."""

from __future__ import annotations

import pytest
import torch
from regulariser_problems import (
    XI,
    autograd_penalty,
    make_model,
    make_optimizer,
    make_tasks,
    rel_err,
    trained_regulariser,
)
from torch import nn

from continual.regularisers import L2, MAS, SI, OnlineEWC
from continual.regularisers.reference import SIReference, reference_si


def reference(opt_kind, tasks, c, clip, **kwargs) -> SIReference:
    """The reference on a fresh model from ``make_model()``."""
    model = make_model()
    opt = make_optimizer(opt_kind, model.parameters())
    return reference_si(model, opt, tasks, c=c, xi=XI, max_grad_norm=clip, **kwargs)


def run_si(model, opt_kind, tasks, c, clip, consolidate_last=True):
    opt = make_optimizer(opt_kind, model.parameters())
    si = SI(model, opt, c=c, xi=XI)
    for k, batches in enumerate(tasks):
        for x, y in batches:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
        if consolidate_last or k < len(tasks) - 1:
            si.consolidate()
    return si


@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
@pytest.mark.parametrize("clip", [None, 0.05])
def test_si_matches_reference_after_two_consolidations(opt_kind, clip):
    tasks = make_tasks(n_tasks=2)
    c = 0.5
    _, ref_big, ref_anchor, ref_theta = reference(opt_kind, tasks, c, clip)
    si = run_si(make_model(), opt_kind, tasks, c, clip)
    assert si.n_consolidations == 2
    assert rel_err(list(si.importance.values()), ref_big) <= 1e-6
    assert rel_err(list(si.anchor.values()), ref_anchor) <= 1e-6
    assert rel_err([p.detach() for p in si.params], ref_theta) <= 1e-6
    assert all(float(w.abs().max()) == 0 for w in si.omega.values())  # reset at consolidation
    # The running ω in mid-task (no final consolidation) against the reference's ω.
    three = make_tasks(n_tasks=3)
    si3 = run_si(make_model(), opt_kind, three, c, clip, consolidate_last=False)
    ref3 = reference(opt_kind, three, c, clip, consolidate_last=False).omega
    assert rel_err(list(si3.omega.values()), ref3) <= 1e-6


@pytest.mark.parametrize("clip", [None, 0.05])
def test_si_uses_task_gradient_not_total_gradient(clip):
    """The total-loss gradient in the path integral (a known bug) gives a different Ω."""
    tasks = make_tasks(n_tasks=2)
    c = 0.5
    _, good, _, _ = reference("adam", tasks, c, clip)
    _, buggy, _, _ = reference("adam", tasks, c, clip, use_total_grad=True)
    assert rel_err(buggy, good) > 1e-3  # the test problem does tell them apart
    si = run_si(make_model(), "adam", tasks, c, clip)
    ours = list(si.importance.values())
    assert rel_err(ours, good) <= 1e-6
    assert rel_err(ours, buggy) > 1e-3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"c": 0.7},
        {"c": 0.7, "normalize": "mean"},
        {"c": 2.0, "select": {"0.*": 1.0, "2.*": 0.1}, "normalize": "mean"},
    ],
)
def test_hook_gradient_equals_autograd_penalty_gradient(kwargs):
    model, _, reg = trained_regulariser(SI, **kwargs)
    x, y = make_tasks(n_tasks=1, steps=1)[0][0]
    with reg.hooks_disabled():  # extra backward passes must not go through the hooks
        task_grad = torch.autograd.grad(nn.functional.mse_loss(model(x), y), reg.params)
        penalty = autograd_penalty(reg)
        pen_grad = torch.autograd.grad(penalty, reg.params)
    assert float(penalty.detach()) == pytest.approx(reg.penalty(), rel=1e-10)
    assert reg.penalty() > 0
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    for p, g, pg in zip(reg.params, task_grad, pen_grad, strict=True):
        torch.testing.assert_close(p.grad, g + pg, rtol=1e-10, atol=1e-12)
    # The penalty's own formula, 2·c_g·Ω ⊙ (θ − θ*), is the same gradient.
    for pg, formula in zip(pen_grad, reg.penalty_gradient().values(), strict=True):
        torch.testing.assert_close(formula, pg, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [SI, L2, MAS, OnlineEWC])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_state_bytes_constant_in_consolidations(cls, dtype):
    model = make_model(0, torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    kwargs = {} if cls in (SI, L2) else {"fn": model, "chunk_size": 8}
    reg = cls(model, opt, storage_dtype=dtype, **kwargs)
    x = torch.randn(16, 3)
    unit = reg.param_bytes()

    def step_and_consolidate():
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        reg.consolidate(x if cls in (MAS, OnlineEWC) else None)

    step_and_consolidate()
    after_one = reg.state_bytes()
    for _ in range(199):
        step_and_consolidate()
    assert reg.n_consolidations == 200
    assert reg.state_bytes() == after_one
    halves = {"importance", "anchor"} if dtype == torch.bfloat16 else set()
    expected = sum(unit // 2 if b in halves else unit for b in cls.BUFFERS)
    assert after_one == expected
    assert len(cls.BUFFERS) == {SI: 4, L2: 2, MAS: 3, OnlineEWC: 3}[cls]
    if dtype == torch.bfloat16:
        assert all(t.dtype == torch.bfloat16 for t in reg.importance.values())
        assert all(t.dtype == torch.bfloat16 for t in reg.anchor.values())
