"""The penalty: its value, consolidation, inspection and persistence."""

from __future__ import annotations

import copy

import pytest
import torch
from regulariser_problems import fit, make_model, make_tasks, trained_regulariser
from torch import nn

from continual.regularisers import L2, SI, QuadraticRegulariser


def test_plain_pytorch_example():
    """The plain-PyTorch usage shown in the concepts guide, run as written."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    si = SI(model, optimizer, c=1.0, xi=1e-3)
    tasks = [[(torch.randn(16, 4), torch.randn(16, 2) + t) for _ in range(20)] for t in range(3)]
    for task in tasks:
        for x, y in task:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        si.consolidate()
    assert si.penalty() == 0.0  # just consolidated: θ = θ*
    assert set(si.importance) == {n for n, _ in model.named_parameters()}
    assert all(float(o.min()) >= 0 for o in si.importance.values())
    sd = si.state_dict()
    si.load_state_dict(sd)
    si.detach()
    assert not si.attached


def test_penalty_value_is_the_formula():
    _, _, reg = trained_regulariser(SI, c=0.3, select={"0.*": 1.0, "2.*": 0.5})
    c = reg.effective_c()
    assert c == {"0.*": pytest.approx(0.3), "2.*": pytest.approx(0.15)}
    want = sum(
        c["0.*" if name.startswith("0.") else "2.*"]
        * float((reg.importance[name] * (p.detach() - reg.anchor[name]) ** 2).sum())
        for name, p in zip(reg.names, reg.params, strict=True)
    )
    assert reg.penalty() == pytest.approx(want, rel=1e-12) and want > 0


def test_state_dict_restores_onto_fresh_model_by_name():
    model, _, reg = trained_regulariser(SI, c=0.3)
    sd = reg.state_dict()
    fresh = copy.deepcopy(model)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.03)
    other = SI(fresh, fresh_opt, c=0.3)
    other.load_state_dict(sd)
    for key in ("importance", "anchor", "omega"):
        mine, theirs = getattr(reg, key), getattr(other, key)
        assert all(torch.equal(mine[n], theirs[n]) for n in mine)
    assert other.penalty() == pytest.approx(reg.penalty(), rel=1e-12)
    # Hooks are live on the fresh model: the backward adds the same penalty gradient.
    x, y = make_tasks(n_tasks=1, steps=1)[0][0]
    for m in (model, fresh):
        m.zero_grad()
        nn.functional.mse_loss(m(x), y).backward()
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)
    with pytest.raises(ValueError, match="names differ"):
        small = nn.Linear(3, 2).double()
        SI(small, torch.optim.SGD(small.parameters(), 0.1)).load_state_dict(sd)
    with pytest.raises(ValueError, match="cannot load"):
        L2(fresh, fresh_opt).load_state_dict(sd)


def test_state_dict_keeps_its_format_and_accepts_keys_of_removed_options():
    """Checkpoints written before the adaptive options moved out carry their state as extra
    top-level keys; they load, and the extra keys are ignored."""
    model, _, reg = trained_regulariser(SI, c=0.3, normalize="mean")
    sd = reg.state_dict()
    assert sd["format"] == "continual.QuadraticRegulariser/1"
    assert set(sd) == {"format", "kind", "names", "groups", "tensors", "n_consolidations", "c"} | {
        "group_weights",
        "norm_scale",
        "xi",
    }
    assert set(sd["tensors"]) == {"importance", "anchor", "omega"}
    old = {**sd, "log_ratio_ema": float("nan"), "learned": 0.25}
    other = SI(copy.deepcopy(model), torch.optim.SGD(model.parameters(), 0.1), normalize="mean")
    other.load_state_dict(old)
    assert other.penalty() == pytest.approx(reg.penalty(), rel=1e-12)
    assert other.effective_c() == reg.effective_c()


def test_rebind_moves_state_to_new_parameter_objects():
    model, _, reg = trained_regulariser(SI, c=0.3)
    penalty = reg.penalty()
    clone = copy.deepcopy(model)
    reg.rebind(clone, torch.optim.Adam(clone.parameters(), lr=0.01))
    assert reg.params[0] is next(clone.parameters())
    assert reg.penalty() == pytest.approx(penalty, rel=1e-12)


@pytest.mark.parametrize("accumulate", ["ema", "mean"])
def test_accumulate_rules(accumulate):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    si = SI(model, opt, c=0.1, accumulate=accumulate, gamma=0.5)
    for t, batches in enumerate(make_tasks(n_tasks=3, steps=5)):
        fit(model, opt, batches)
        new = [
            w / ((p.detach() - a) ** 2 + si.xi)
            for w, p, a in zip(si.omega.values(), si.params, si.anchor.values(), strict=True)
        ]
        old = [o.clone() for o in si.importance.values()]
        si.consolidate()
        for o, n, got in zip(old, new, si.importance.values(), strict=True):
            want = 0.5 * o + n if accumulate == "ema" else (t * o + n) / (t + 1)
            torch.testing.assert_close(got, want.clamp(min=0))


def test_normalize_divides_strength_by_importance_mean():
    _, _, raw = trained_regulariser(SI, c=2.0)
    _, _, norm = trained_regulariser(SI, c=2.0, normalize="mean")
    mean = sum(float(o.sum()) for o in norm.importance.values()) / sum(
        o.numel() for o in norm.importance.values()
    )
    assert raw.effective_c()["all"] == 2.0
    assert norm.effective_c()["all"] == pytest.approx(2.0 / mean)
    quad = sum(
        float((o * (p.detach() - a) ** 2).sum())
        for o, p, a in zip(norm.importance.values(), norm.params, norm.anchor.values(), strict=True)
    )
    assert norm.penalty() == pytest.approx(2.0 / mean * quad)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"normalize": "max"}, ValueError, "normalize: must be None or 'mean'"),
        ({"accumulate": "median"}, ValueError, "accumulate"),
        ({"c": -1.0}, ValueError, "c: must be finite"),
        ({"gamma": 0.0}, ValueError, "gamma"),
        ({"storage_dtype": "float16"}, ValueError, "storage_dtype"),
        ({"clip_penalty": False}, TypeError, "clip_penalty"),
        ({"adaptive_target": 0.2}, TypeError, "adaptive_target"),
    ],
)
def test_removed_and_invalid_options_are_refused(kwargs, error, match):
    model = make_model()
    with pytest.raises(error, match=match):
        L2(model, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def test_stats_name_the_strength_and_importance_per_group():
    _, _, reg = trained_regulariser(SI, c=0.3, select={"0.*": 1.0, "2.*": 0.5})
    stats = reg.stats()
    assert stats["penalty"] == pytest.approx(reg.penalty())
    assert stats["consolidations"] == 1.0
    assert {"c/0.*", "c/2.*", "omega_mean/0.*", "omega_max/2.*"} <= set(stats)
    assert "drift" not in stats  # the drift diagnostic is an experimental add-on


def test_base_class_has_no_importance_estimate():
    model = make_model()
    reg = QuadraticRegulariser(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(NotImplementedError):
        reg.consolidate()
    with pytest.raises(NotImplementedError, match="does not estimate"):
        reg.estimate(torch.zeros(1, 3))
