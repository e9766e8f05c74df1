"""The functional anchor: its gradient, its targets, its place beside SI's path integral."""

from __future__ import annotations

import pytest
import torch
from regulariser_problems import autograd_penalty, fit, make_model, make_tasks
from torch import nn

from continual.regularisers import L2, SI, FunctionalAnchor, squared_error


def anchored(cls=SI, strength: float = 0.8, c: float = 0.5, **kwargs):
    """A regulariser with an anchor on a small model, after one task (observed), a
    consolidation and a second task: (model, optimizer, regulariser, anchor, the second task's
    batches)."""
    model = make_model(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    anchor = FunctionalAnchor(strength, capacity=64, batch_size=16, seed=2, **kwargs)
    reg = cls(model, opt, c=c, addons=[anchor])
    first, second = make_tasks(n_tasks=2, steps=10)
    for x, _ in first:
        anchor.observe(x)
    fit(model, opt, first)
    reg.consolidate()
    fit(model, opt, second)
    return model, opt, reg, anchor, second


def anchor_penalty_on(anchor: FunctionalAnchor, model: nn.Module, rng_state) -> torch.Tensor:
    """λ · mean D(f°(x), f_θ(x)) on the batch the anchor draws from ``rng_state``."""
    anchor.buffer.rng.bit_generator.state = rng_state
    inputs, targets = anchor.buffer.sample(anchor.batch_size)
    return anchor.strength * squared_error(targets, model(inputs)).mean()


@pytest.mark.parametrize(("cls", "c"), [(SI, 0.5), (L2, 0.0)])  # a hybrid; distill's carrier
def test_gradient_is_task_plus_quadratic_plus_anchor_gradient(cls, c) -> None:
    """After a backward, p.grad holds the task gradient, 2·c·Ω ⊙ (θ − θ*) and the anchor's
    gradient on the batch it drew: as if both penalties were part of the loss (at c = 0 the
    hooks skip the quadratic term)."""
    model, _, reg, anchor, second = anchored(cls, c=c)
    x, y = second[0]
    rng_state = anchor.buffer.rng.bit_generator.state
    with reg.hooks_disabled():
        task = torch.autograd.grad(nn.functional.mse_loss(model(x), y), reg.params)
        quadratic = torch.autograd.grad(autograd_penalty(reg), reg.params)
        functional = torch.autograd.grad(anchor_penalty_on(anchor, model, rng_state), reg.params)
    assert sum(float(g.abs().sum()) for g in functional) > 0
    assert (sum(float(g.abs().sum()) for g in quadratic) > 0) == (c > 0)
    anchor.buffer.rng.bit_generator.state = rng_state
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    for p, g, q, f in zip(reg.params, task, quadratic, functional, strict=True):
        torch.testing.assert_close(p.grad, g + q + f, rtol=1e-10, atol=1e-12)


def test_si_integrates_the_task_gradient_only() -> None:
    """ω ← ω − g ⊙ Δθ with g the task gradient: the anchor's gradient moves θ (Δθ) but is not
    part of g."""
    model, opt, reg, _, second = anchored(SI, strength=5.0)
    x, y = second[1]
    with reg.hooks_disabled():
        task = torch.autograd.grad(nn.functional.mse_loss(model(x), y), reg.params)
    before = [p.detach().clone() for p in reg.params]
    omega = [w.clone() for w in reg.omega.values()]
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    for w0, w1, g, p0, p in zip(omega, reg.omega.values(), task, before, reg.params, strict=True):
        torch.testing.assert_close(w1, w0 - g * (p.detach() - p0), rtol=1e-9, atol=1e-12)


def test_targets_are_the_outputs_consolidated_after_the_input_was_seen() -> None:
    model, _, reg, anchor, second = anchored(SI)
    buffer = anchor.buffer
    assert buffer.n_labelled == len(buffer) == 64
    first_targets = buffer.targets.clone()
    x_new = second[0][0]
    anchor.observe(x_new)  # seen now, labelled at the next consolidation
    pending = ~buffer.labelled
    assert int(pending.sum()) > 0
    with torch.no_grad():
        now = model(buffer.inputs)
    reg.consolidate()
    assert buffer.labelled.all()
    torch.testing.assert_close(buffer.targets[pending], now[pending])
    # Entries labelled at the first consolidation keep their targets.
    torch.testing.assert_close(buffer.targets[~pending], first_targets[~pending])


def test_a_strong_anchor_holds_the_function_where_old_inputs_were() -> None:
    """With c = 0, only the anchor keeps the first task's outputs while the second is learned."""

    def drift_on_first_task(strength: float) -> float:
        model = make_model(1)
        opt = torch.optim.Adam(model.parameters(), lr=0.03)
        anchor = FunctionalAnchor(strength, capacity=256, batch_size=64, seed=0)
        reg = SI(model, opt, c=0.0, addons=[anchor])
        first, second = make_tasks(n_tasks=2, steps=30)
        for x, _ in first:
            anchor.observe(x)
        fit(model, opt, first)
        reg.consolidate()
        xs = torch.cat([x for x, _ in first])
        with torch.no_grad():
            kept = model(xs)
        fit(model, opt, second * 3)
        with torch.no_grad():
            return float((model(xs) - kept).pow(2).mean())

    free, held = drift_on_first_task(0.0), drift_on_first_task(100.0)
    assert free > 0.1
    assert held < 0.05 * free


def test_no_gradient_before_the_first_consolidation_and_at_zero_strength() -> None:
    model = make_model(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    anchor = FunctionalAnchor(1.0, capacity=16)
    reg = SI(model, opt, addons=[anchor])
    x, _ = make_tasks(n_tasks=1, steps=1)[0][0]
    anchor.observe(x)
    assert anchor.penalty_gradient(reg) is None  # nothing labelled yet
    reg.consolidate()
    assert anchor.penalty_gradient(reg) is not None
    assert FunctionalAnchor(0.0).penalty_gradient(reg) is None


def test_state_round_trip_and_errors() -> None:
    _, _, reg, anchor, _ = anchored(SI)
    state = reg.state_dict()
    model = make_model(1)
    other = FunctionalAnchor(0.8, capacity=64, batch_size=16)
    reg2 = SI(model, torch.optim.Adam(model.parameters()), c=0.5, addons=[other])
    reg2.load_state_dict(state)
    assert torch.equal(other.buffer.inputs, anchor.buffer.inputs)
    assert torch.equal(other.buffer.targets, anchor.buffer.targets)
    plain = SI(make_model(1), torch.optim.Adam(make_model(1).parameters()), c=0.5)
    with pytest.raises(ValueError, match="saved without a FunctionalAnchor"):
        SI(
            model, torch.optim.Adam(model.parameters()), addons=[FunctionalAnchor()]
        ).load_state_dict(plain.state_dict())
    with pytest.raises(ValueError, match="strength: must be finite and >= 0"):
        FunctionalAnchor(-1.0)
    with pytest.raises(ValueError, match="batch_size: must be an integer >= 1"):
        FunctionalAnchor(batch_size=0)
    no_module = SI(
        list(model.named_parameters()),
        torch.optim.SGD(model.parameters(), lr=0.1),
        addons=[FunctionalAnchor()],
    )
    no_module.addons[0].observe(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="no model function; pass fn="):
        no_module.consolidate()


@pytest.mark.parametrize(("cls", "c"), [(L2, 0.0), (SI, 1.0)])  # distill's carrier; a hybrid
def test_state_bytes_constant_in_consolidations_with_the_anchor(cls, c) -> None:
    """The regulariser's parameter-sized buffers plus the reservoir: the same after 1 and
    after 200 consolidations, with new inputs offered between them."""
    model = make_model(0, torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    anchor = FunctionalAnchor(1.0, capacity=100, batch_size=8)
    reg = cls(model, opt, c=c, addons=[anchor])

    def observe_step_and_consolidate() -> None:
        x = torch.randn(16, 3)
        anchor.observe(x)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        reg.consolidate()

    observe_step_and_consolidate()
    after_one = reg.state_bytes()
    for _ in range(199):
        observe_step_and_consolidate()
    assert reg.n_consolidations == 200 and anchor.buffer.n_seen == 3200
    assert reg.state_bytes() == after_one
    reservoir = 100 * 3 * 4 + 100 * 2 * 4 + 100  # inputs, targets (float32), flags
    assert after_one == len(cls.BUFFERS) * reg.param_bytes() + reservoir
