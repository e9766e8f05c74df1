"""The fast path: when and where the hooks add the penalty gradient and keep the task gradient."""

from __future__ import annotations

import pytest
import torch
from regulariser_problems import autograd_penalty, make_model, make_tasks, trained_regulariser
from torch import nn

from continual.regularisers import L2, SI


def test_gradient_accumulation_adds_penalty_once_and_sums_task_gradient():
    model, opt, reg = trained_regulariser(SI, c=0.5)
    (x1, y1), (x2, y2) = make_tasks(n_tasks=1, steps=2)[0]
    with reg.hooks_disabled():
        g1 = torch.autograd.grad(nn.functional.mse_loss(model(x1), y1), reg.params)
        g2 = torch.autograd.grad(nn.functional.mse_loss(model(x2), y2), reg.params)
        pen_grad = torch.autograd.grad(autograd_penalty(reg), reg.params)
    omega_before = [w.clone() for w in reg.omega.values()]
    opt.zero_grad()
    nn.functional.mse_loss(model(x1), y1).backward()
    nn.functional.mse_loss(model(x2), y2).backward()
    for p, a, b, pg in zip(reg.params, g1, g2, pen_grad, strict=True):
        torch.testing.assert_close(p.grad, a + b + pg, rtol=1e-10, atol=1e-12)
    before = [p.detach().clone() for p in reg.params]
    opt.step()
    for w0, w, a, b, p, p0 in zip(
        omega_before, reg.omega.values(), g1, g2, reg.params, before, strict=True
    ):
        torch.testing.assert_close(w, w0 - (a + b) * (p.detach() - p0), rtol=1e-10, atol=1e-14)


def test_penalty_gradient_reaches_only_the_parameters_a_backward_reached():
    model, opt, reg = trained_regulariser(SI, c=0.5)
    x, _ = make_tasks(n_tasks=1, steps=1)[0][0]
    with reg.hooks_disabled():
        pen_grad = torch.autograd.grad(autograd_penalty(reg), reg.params)
    first = model[0]
    opt.zero_grad()
    first(x).pow(2).mean().backward()  # reaches the first layer only
    with reg.hooks_disabled():
        task_grad = torch.autograd.grad(first(x).pow(2).mean(), [first.weight, first.bias])
    reached = {id(first.weight), id(first.bias)}
    for p, pg in zip(reg.params, pen_grad, strict=True):
        if id(p) in reached:
            g = task_grad[0] if p is first.weight else task_grad[1]
            torch.testing.assert_close(p.grad, g + pg, rtol=1e-10, atol=1e-12)
        else:
            assert p.grad is None
    omega_before = {n: w.clone() for n, w in reg.omega.items()}
    opt.step()
    for (name, w), p in zip(reg.omega.items(), reg.params, strict=True):
        changed = not torch.equal(w, omega_before[name])
        assert changed == (id(p) in reached), name


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
def test_backward_with_create_graph_gives_the_same_gradient():
    model, _, reg = trained_regulariser(SI, c=0.5)
    x, y = make_tasks(n_tasks=1, steps=1)[0][0]
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    plain = [p.grad.clone() for p in reg.params]
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward(create_graph=True)
    for p, g in zip(reg.params, plain, strict=True):
        torch.testing.assert_close(p.grad.detach(), g, rtol=1e-10, atol=1e-12)
    model.zero_grad()  # breaks the parameter-gradient reference cycle


def test_parameter_without_gradient_is_not_integrated():
    torch.manual_seed(0)
    used, unused = nn.Linear(3, 1).double(), nn.Linear(3, 1).double()
    params = [
        ("used.weight", used.weight),
        ("used.bias", used.bias),
        ("unused.weight", unused.weight),
    ]
    opt = torch.optim.Adam([used.weight, used.bias, unused.weight], lr=0.1)
    si = SI(params, opt, c=1.0)
    for _ in range(3):
        opt.zero_grad()
        used(torch.randn(4, 3, dtype=torch.float64)).pow(2).mean().backward()
        opt.step()
    assert float(si.omega["unused.weight"].abs().max()) == 0.0
    assert float(si.omega["used.weight"].abs().max()) > 0.0
    si.consolidate()
    assert float(si.importance["unused.weight"].abs().max()) == 0.0


@pytest.mark.parametrize("cls", [SI, L2])
def test_gradient_clipping_scales_the_penalty_gradient_with_the_task_gradient(cls):
    """The gradient the optimizer steps with is clip(g + pen): the penalty goes through the
    clip as if it were part of the loss."""
    model, opt, reg = trained_regulariser(cls, c=5.0)
    seen: list[list[torch.Tensor]] = []
    # Registered after the regulariser's own pre-hook, so it sees what the step will use.
    opt.register_step_pre_hook(lambda *_: seen.append([p.grad.clone() for p in reg.params]))
    max_norm = 0.01
    for x, y in make_tasks(n_tasks=1, steps=3)[0]:  # several steps: every one gets the penalty
        with reg.hooks_disabled():
            g = torch.autograd.grad(nn.functional.mse_loss(model(x), y), reg.params)
            pen = torch.autograd.grad(autograd_penalty(reg), reg.params)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
        total = [a + b for a, b in zip(g, pen, strict=True)]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in total]))
        scale = min(1.0, max_norm / (float(norm) + 1e-6))
        for got, want in zip(seen[-1], total, strict=True):
            torch.testing.assert_close(got, want * scale, rtol=1e-8, atol=1e-12)
    assert len(seen) == 3


def test_step_hooks_only_where_the_task_gradient_is_kept():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    n = len(list(model.parameters()))
    assert len(L2(model, opt).hooks.handles) == n
    assert len(SI(model, opt).hooks.handles) == n + 2  # the step's pre- and post-hook


def test_hooks_disabled_context_passes_gradients_through():
    model, _, reg = trained_regulariser(SI, c=1.0)
    x, y = make_tasks(n_tasks=1, steps=1)[0][0]
    with reg.hooks_disabled():
        model.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
    plain = [p.grad.clone() for p in model.parameters()]
    reg.detach()
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    for p, g in zip(model.parameters(), plain, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)


def test_grads_cleared_between_backwards_restart_the_step():
    """zero_grad after a backward discards it: the next backward gets the penalty gradient
    again and only its task gradient enters the path integral."""
    model, opt, reg = trained_regulariser(SI, c=0.5)
    (x1, y1), (x2, y2) = make_tasks(n_tasks=1, steps=2)[0]
    with reg.hooks_disabled():
        g2 = torch.autograd.grad(nn.functional.mse_loss(model(x2), y2), reg.params)
        pen_grad = torch.autograd.grad(autograd_penalty(reg), reg.params)
    omega_before = [w.clone() for w in reg.omega.values()]
    opt.zero_grad()
    nn.functional.mse_loss(model(x1), y1).backward()
    opt.zero_grad()  # discard
    nn.functional.mse_loss(model(x2), y2).backward()
    for p, g, pg in zip(reg.params, g2, pen_grad, strict=True):
        torch.testing.assert_close(p.grad, g + pg, rtol=1e-10, atol=1e-12)
    before = [p.detach().clone() for p in reg.params]
    opt.step()
    for w0, w, g, p, p0 in zip(
        omega_before, reg.omega.values(), g2, reg.params, before, strict=True
    ):
        torch.testing.assert_close(w, w0 - g * (p.detach() - p0), rtol=1e-10, atol=1e-14)


def test_task_gradient_is_kept_apart_from_p_grad():
    """Before any consolidation the hook returns nothing; the kept task gradient must not be
    the tensor that becomes p.grad (clipping scales p.grad in place)."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    si = SI(model, opt)
    x, y = make_tasks(n_tasks=1, steps=1)[0][0]
    nn.functional.mse_loss(model(x), y).backward()
    for p, g in zip(si.params, si.hooks.task_grad, strict=True):
        assert g is not None and g is not p.grad
        assert g.data_ptr() != p.grad.data_ptr()
    opt.step()
    assert all(g is None for g in si.hooks.task_grad)  # released after the step
