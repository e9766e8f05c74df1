"""Adaptive strength and the drift diagnostic, as add-ons to the regularisers."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from continual.experimental import AdaptiveStrength, DriftDiagnostic
from continual.regularisers import L2, MAS, SI, OnlineEWC, QuadraticRegulariser


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()


def make_tasks(n_tasks: int = 2, steps: int = 15):
    """Per task a list of (x, y) batches; tasks differ in their target map."""
    g = torch.Generator().manual_seed(123)
    tasks = []
    for t in range(n_tasks):
        w = torch.randn(3, 2, generator=g, dtype=torch.float64) * (1 + t)
        batches = []
        for _ in range(steps):
            x = torch.randn(8, 3, generator=g, dtype=torch.float64)
            batches.append((x, torch.tanh(x @ w) + 0.5 * t))
        tasks.append(batches)
    return tasks


def fit(model: nn.Module, opt: torch.optim.Optimizer, batches) -> None:
    for x, y in batches:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def trained(cls=SI, addon=None, **kwargs):
    model = make_model(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    reg = cls(model, opt, addons=[] if addon is None else [addon], **kwargs)
    tasks = make_tasks(n_tasks=2, steps=10)
    fit(model, opt, tasks[0])
    reg.consolidate()
    fit(model, opt, tasks[1])
    return model, opt, reg


def undone_share(reg: QuadraticRegulariser, addon: DriftDiagnostic) -> float:
    undone = sum(
        float((o * (p.detach() - a) ** 2).sum())
        for o, p, a in zip(reg.importance.values(), reg.params, reg.anchor.values(), strict=True)
    )
    return undone / float(addon.learned)


def test_adaptive_strength_tracks_target_ratio():
    model, opt, reg = trained(SI, AdaptiveStrength(0.5, rate=0.2), c=1e-3)
    fit(model, opt, make_tasks(n_tasks=3, steps=200)[2])
    stats = reg.stats()
    assert stats["c"] > 1e-3  # pulled up from a far too small start
    assert 0.25 < stats["adaptive_ratio"] < 1.0


@pytest.mark.parametrize("accumulate", ["sum", "ema", "mean"])
def test_drift_budget_denominator_is_the_learned_quadratic_form(accumulate):
    model = make_model(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    addon = AdaptiveStrength(0.1, signal="drift")
    reg = SI(model, opt, addons=[addon], accumulate=accumulate)
    expected = 0.0
    for k, task in enumerate(make_tasks(n_tasks=3, steps=10)):
        fit(model, opt, task)
        fresh = reg.fresh_importance()
        form = sum(
            float((f.clamp(min=0) * (p.detach() - a) ** 2).sum())
            for f, p, a in zip(fresh, reg.params, reg.anchor.values(), strict=True)
        )
        expected = {
            "sum": expected + form,
            "ema": reg.gamma * expected + form,
            "mean": (k * expected + form) / (k + 1),
        }[accumulate]
        reg.consolidate()
        assert float(addon.learned) == pytest.approx(expected, rel=1e-9)
        assert undone_share(reg, addon) == 0.0  # the anchor is θ: nothing undone yet


@pytest.mark.parametrize("target", [1e-4, 1e3])
def test_drift_budget_moves_c_towards_the_constraint(target):
    # Far over budget, c must rise; far under it, c must fall; at the documented rate, at most
    # a factor e^η per step.
    addon = AdaptiveStrength(target, signal="drift", rate=0.05)
    model, opt, reg = trained(SI, addon, c=1.0)
    c_before = reg.stats()["c"]
    fit(model, opt, make_tasks(n_tasks=3, steps=40)[2])
    stats = reg.stats()
    drift = undone_share(reg, addon)
    assert stats["drift"] == pytest.approx(drift, rel=1e-9)
    if target < 1:
        assert drift > target and stats["c"] > c_before
    else:
        assert drift < target and stats["c"] < c_before
    assert stats["c"] == pytest.approx(c_before * math.exp(0.05 * 40 * (1 if target < 1 else -1)))


@pytest.mark.parametrize("cls", [SI, L2, OnlineEWC, MAS])
def test_drift_diagnostic_works_for_every_method_and_does_not_depend_on_c(cls):
    kwargs = {} if cls in (SI, L2) else {"chunk_size": 4}
    drifts = []
    for c in (0.01, 100.0):
        model = make_model(1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        addon = DriftDiagnostic()
        # No penalty: the same path for any c.
        reg = cls(model, opt, c=c, attach=False, addons=[addon], **kwargs)
        assert "drift" not in reg.stats()
        for k, task in enumerate(make_tasks(n_tasks=2, steps=10)):
            if cls is SI and k == 0:
                reg.attach()  # the path integral; no penalty before the first consolidation
            fit(model, opt, task)
            if k == 0:
                if cls in (OnlineEWC, MAS):
                    reg.estimate(task[0][0])
                reg.consolidate()
                reg.detach()
        drifts.append(reg.stats()["drift"])
        assert drifts[-1] == pytest.approx(undone_share(reg, addon), rel=1e-9)
    assert drifts[0] > 0
    assert drifts[0] == pytest.approx(drifts[1], rel=1e-9)


def test_adaptive_state_round_trip_and_old_checkpoints():
    model, opt, reg = trained(SI, AdaptiveStrength(0.1, signal="drift"), c=0.5)
    state = reg.state_dict()
    assert {"learned", "log_ratio_ema"} <= set(state)  # the keys checkpoints always had
    clone = SI(copy.deepcopy(model), opt, addons=[AdaptiveStrength(0.1, signal="drift")])
    clone.load_state_dict(state)
    assert float(clone.addons[0].learned) == float(reg.addons[0].learned) > 0
    assert clone.stats()["c"] == reg.stats()["c"]
    # Rebinding keeps the add-on's state too.
    learned = float(reg.addons[0].learned)
    other = copy.deepcopy(model)
    reg.rebind(other, torch.optim.Adam(other.parameters(), lr=0.01))
    assert float(reg.addons[0].learned) == learned


def test_adaptive_strength_needs_the_step_hooks_and_moves_c_on_the_device():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    reg = L2(model, opt, addons=[AdaptiveStrength(0.2)])
    assert reg.captures_task_grad and reg.strength_on_device
    assert len(reg.hooks.handles) == len(reg.params) + 2
    assert reg.alpha == [2.0] * len(reg.params)  # c left out: it multiplies on the device


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": 0.1, "signal": "loss"}, "adaptive_signal: must be 'gradient_ratio' or 'drift'"),
        ({"target": 0.0}, "adaptive_target"),
        ({"target": 0.1, "rate": 0.0}, "adaptive_rate"),
        ({"target": 0.1, "bounds": (1.0, 0.1)}, "adaptive_bounds"),
    ],
)
def test_invalid_adaptive_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaptiveStrength(**kwargs)


def test_adaptive_strength_needs_an_initial_c():
    model = make_model()
    with pytest.raises(ValueError, match="initial c"):
        SI(model, torch.optim.SGD(model.parameters(), lr=0.1), c=0.0, addons=[AdaptiveStrength(1)])
