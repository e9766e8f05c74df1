"""Regularisers against from-the-formulas references on small supervised problems."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from continual import L2, MAS, SI, OnlineEWC, QuadraticRegulariser

XI = 1e-3


def make_model(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).to(dtype)


def make_tasks(n_tasks: int = 2, steps: int = 15, dtype: torch.dtype = torch.float64):
    """Per task a list of (x, y) batches; tasks differ in their target map."""
    g = torch.Generator().manual_seed(123)
    tasks = []
    for t in range(n_tasks):
        w = torch.randn(3, 2, generator=g, dtype=dtype) * (1 + t)
        batches = []
        for _ in range(steps):
            x = torch.randn(8, 3, generator=g, dtype=dtype)
            batches.append((x, torch.tanh(x @ w) + 0.5 * t))
        tasks.append(batches)
    return tasks


def make_optimizer(kind: str, params) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.1, momentum=0.5)
    return torch.optim.Adam(params, lr=0.03)


def reference_si(model, opt_kind, tasks, c, clip, use_total_grad=False, clip_penalty=True):
    """SI computed directly from its definition, with the penalty in the gradient by hand.

    Per step: g = ∇ task loss; update with g + 2cΩ(θ−θ*) (clipped if asked; with
    ``clip_penalty=False`` only g is clipped); Δθ measured; ω −= g·Δθ. Consolidation:
    Ω = max(0, Ω + ω/((θ−θ*)² + ξ)), θ* = θ, ω = 0.
    ``use_total_grad`` reproduces the known bug (g replaced by the total gradient).
    """
    params = list(model.parameters())
    opt = make_optimizer(opt_kind, params)
    omega = [torch.zeros_like(p) for p in params]
    big = [torch.zeros_like(p) for p in params]
    anchor = [p.detach().clone() for p in params]
    for batches in tasks:
        for x, y in batches:
            loss = nn.functional.mse_loss(model(x), y)
            g = torch.autograd.grad(loss, params)
            with torch.no_grad():
                pen = [2 * c * o * (p - a) for o, p, a in zip(big, params, anchor, strict=True)]
                total = [gi + pi for gi, pi in zip(g, pen, strict=True)]
                for p, t in zip(params, total if clip_penalty else g, strict=True):
                    p.grad = t.clone()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                if not clip_penalty:
                    for p, pi in zip(params, pen, strict=True):
                        p.grad += pi
                before = [p.detach().clone() for p in params]
                opt.step()
                used = total if use_total_grad else g
                for w, gi, p, b in zip(omega, used, params, before, strict=True):
                    w -= gi * (p - b)
        with torch.no_grad():
            for i, p in enumerate(params):
                big[i] = torch.clamp(big[i] + omega[i] / ((p - anchor[i]) ** 2 + XI), min=0)
                anchor[i] = p.detach().clone()
                omega[i] = torch.zeros_like(p)
    return omega, big, anchor, [p.detach().clone() for p in params]


def run_si(model, opt_kind, tasks, c, clip, consolidate_last=True, clip_penalty=True):
    opt = make_optimizer(opt_kind, model.parameters())
    si = SI(model, opt, c=c, xi=XI, clip_penalty=clip_penalty)
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


def rel_err(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    num = sum(float((x - y).pow(2).sum()) for x, y in zip(a, b, strict=True)) ** 0.5
    den = sum(float(y.pow(2).sum()) for y in b) ** 0.5
    return num / max(den, 1e-300)


@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
@pytest.mark.parametrize("clip", [None, 0.05])
def test_si_matches_reference_after_two_consolidations(opt_kind, clip):
    tasks = make_tasks(n_tasks=2)
    c = 0.5
    _, ref_big, ref_anchor, ref_theta = reference_si(make_model(), opt_kind, tasks, c, clip)
    si = run_si(make_model(), opt_kind, tasks, c, clip)
    assert si.n_consolidations == 2
    assert rel_err(list(si.importance.values()), ref_big) <= 1e-6
    assert rel_err(list(si.anchor.values()), ref_anchor) <= 1e-6
    assert rel_err([p.detach() for p in si.params], ref_theta) <= 1e-6
    assert all(float(w.abs().max()) == 0 for w in si.omega.values())  # reset at consolidation
    # The running ω in mid-task (no final consolidation) against the reference's ω.
    three = make_tasks(n_tasks=3)
    si3 = run_si(make_model(), opt_kind, three, c, clip, consolidate_last=False)
    ref3 = _reference_omega_midtask(make_model(), opt_kind, three, c, clip)
    assert rel_err(list(si3.omega.values()), ref3) <= 1e-6


@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
def test_si_with_the_penalty_added_after_clipping_matches_reference(opt_kind):
    tasks = make_tasks(n_tasks=3)
    c, clip = 0.5, 0.05
    _, ref_big, _, ref_theta = reference_si(
        make_model(), opt_kind, tasks, c, clip, clip_penalty=False
    )
    _, clipped_big, _, _ = reference_si(make_model(), opt_kind, tasks, c, clip)
    assert rel_err(clipped_big, ref_big) > 1e-3  # the test problem tells the two apart
    si = run_si(make_model(), opt_kind, tasks, c, clip, clip_penalty=False)
    assert rel_err(list(si.importance.values()), ref_big) <= 1e-6
    assert rel_err([p.detach() for p in si.params], ref_theta) <= 1e-6


@pytest.mark.parametrize("cls", [SI, L2])
@pytest.mark.parametrize("clip_penalty", [True, False])
def test_clip_penalty_decides_whether_clipping_scales_the_penalty_gradient(cls, clip_penalty):
    """The gradient the optimizer steps with: clip(g + pen), or clip(g) + pen."""
    model, opt, reg = _trained_regulariser(cls, c=5.0, clip_penalty=clip_penalty)
    seen: list[list[torch.Tensor]] = []
    # Registered after the regulariser's own pre-hook, so it sees what the step will use.
    opt.register_step_pre_hook(lambda *_: seen.append([p.grad.clone() for p in reg.params]))
    max_norm = 0.01
    for x, y in make_tasks(n_tasks=1, steps=3)[0]:  # several steps: every one gets the penalty
        with reg.hooks_disabled():
            g = torch.autograd.grad(nn.functional.mse_loss(model(x), y), reg.params)
            pen = torch.autograd.grad(_autograd_penalty(reg), reg.params)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
        clipped = [a + b for a, b in zip(g, pen, strict=True)] if clip_penalty else list(g)
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in clipped]))
        scale = min(1.0, max_norm / (float(norm) + 1e-6))
        expected = [t * scale for t in clipped]
        if not clip_penalty:
            expected = [e + b for e, b in zip(expected, pen, strict=True)]
        for got, want in zip(seen[-1], expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-12)
    assert len(seen) == 3


def _reference_omega_midtask(model, opt_kind, tasks, c, clip):
    """ω after the last task without consolidating it (reference loop, continued)."""
    params = list(model.parameters())
    opt = make_optimizer(opt_kind, params)
    omega = [torch.zeros_like(p) for p in params]
    big = [torch.zeros_like(p) for p in params]
    anchor = [p.detach().clone() for p in params]
    for k, batches in enumerate(tasks):
        for x, y in batches:
            g = torch.autograd.grad(nn.functional.mse_loss(model(x), y), params)
            with torch.no_grad():
                for p, gi, o, a in zip(params, g, big, anchor, strict=True):
                    p.grad = gi + 2 * c * o * (p - a)
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                before = [p.detach().clone() for p in params]
                opt.step()
                for w, gi, p, b in zip(omega, g, params, before, strict=True):
                    w -= gi * (p - b)
        if k < len(tasks) - 1:
            with torch.no_grad():
                for i, p in enumerate(params):
                    big[i] = torch.clamp(big[i] + omega[i] / ((p - anchor[i]) ** 2 + XI), min=0)
                    anchor[i] = p.detach().clone()
                    omega[i] = torch.zeros_like(p)
    return omega


@pytest.mark.parametrize("clip", [None, 0.05])
def test_si_uses_task_gradient_not_total_gradient(clip):
    """The total-loss gradient in the path integral (a known bug) gives a different Ω."""
    tasks = make_tasks(n_tasks=2)
    c = 0.5
    _, good, _, _ = reference_si(make_model(), "adam", tasks, c, clip)
    _, buggy, _, _ = reference_si(make_model(), "adam", tasks, c, clip, use_total_grad=True)
    assert rel_err(buggy, good) > 1e-3  # the test problem does tell them apart
    si = run_si(make_model(), "adam", tasks, c, clip)
    ours = list(si.importance.values())
    assert rel_err(ours, good) <= 1e-6
    assert rel_err(ours, buggy) > 1e-3


def _fit(model: nn.Module, opt: torch.optim.Optimizer, batches) -> None:
    """Plain MSE steps on ``batches`` of (x, y)."""
    for x, y in batches:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _trained_regulariser(cls=SI, **kwargs) -> tuple[nn.Module, torch.optim.Optimizer, SI]:
    model = make_model(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    reg = cls(model, opt, **kwargs)
    tasks = make_tasks(n_tasks=2, steps=10)
    _fit(model, opt, tasks[0])
    reg.consolidate()
    _fit(model, opt, tasks[1])
    return model, opt, reg


def _autograd_penalty(reg: QuadraticRegulariser) -> torch.Tensor:
    """Σ_g c_g Σ Ω (θ − θ*)² as a differentiable expression."""
    total = torch.zeros((), dtype=torch.float64)
    cs = reg.effective_c()
    group_of = {
        reg.names[i]: g for g, idx in zip(reg.group_names, reg._group_idx, strict=True) for i in idx
    }
    for name, p in zip(reg.names, reg.params, strict=True):
        group = group_of[name]
        total = total + cs[group] * (reg.importance[name] * (p - reg.anchor[name]) ** 2).sum()
    return total


@pytest.mark.parametrize(
    "kwargs",
    [
        {"c": 0.7},
        {"c": 0.7, "normalize": "mean"},
        {"c": 2.0, "select": {"0.*": 1.0, "2.*": 0.1}, "normalize": "max"},
    ],
)
def test_hook_gradient_equals_autograd_penalty_gradient(kwargs):
    model, _, reg = _trained_regulariser(SI, **kwargs)
    x, y = make_tasks(n_tasks=1, steps=1)[0][0]
    with reg.hooks_disabled():  # extra backward passes must not go through the hooks
        task_grad = torch.autograd.grad(nn.functional.mse_loss(model(x), y), reg.params)
        penalty = _autograd_penalty(reg)
        pen_grad = torch.autograd.grad(penalty, reg.params)
    assert float(penalty.detach()) == pytest.approx(reg.penalty(), rel=1e-10)
    assert reg.penalty() > 0
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    for p, g, pg in zip(reg.params, task_grad, pen_grad, strict=True):
        torch.testing.assert_close(p.grad, g + pg, rtol=1e-10, atol=1e-12)


def test_gradient_accumulation_adds_penalty_once_and_sums_task_gradient():
    model, opt, reg = _trained_regulariser(SI, c=0.5)
    (x1, y1), (x2, y2) = make_tasks(n_tasks=1, steps=2)[0]
    with reg.hooks_disabled():
        g1 = torch.autograd.grad(nn.functional.mse_loss(model(x1), y1), reg.params)
        g2 = torch.autograd.grad(nn.functional.mse_loss(model(x2), y2), reg.params)
        pen_grad = torch.autograd.grad(_autograd_penalty(reg), reg.params)
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
    model, opt, reg = _trained_regulariser(SI, c=0.5)
    x, _ = make_tasks(n_tasks=1, steps=1)[0][0]
    with reg.hooks_disabled():
        pen_grad = torch.autograd.grad(_autograd_penalty(reg), reg.params)
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
    model, _, reg = _trained_regulariser(SI, c=0.5)
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


def test_plain_pytorch_docstring_example():
    """The usage shown in continual.regularisers' module docstring, run as written."""
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


def test_state_dict_restores_onto_fresh_model_by_name():
    model, _, reg = _trained_regulariser(SI, c=0.3)
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


def test_rebind_moves_state_to_new_parameter_objects():
    model, _, reg = _trained_regulariser(SI, c=0.3)
    penalty = reg.penalty()
    clone = copy.deepcopy(model)
    reg.rebind(clone, torch.optim.Adam(clone.parameters(), lr=0.01))
    assert reg.params[0] is next(clone.parameters())
    assert reg.penalty() == pytest.approx(penalty, rel=1e-12)


def test_selection_groups_and_exclusion():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    reg = L2(model, opt, select={"0.*": 1.0, "re:^2\\.": 0.5}, exclude=("*.bias",))
    assert reg.names == ["0.weight", "2.weight"]
    assert reg.group_names == ["0.*", "re:^2\\."]
    reg.consolidate()
    assert reg.effective_c() == {"0.*": 1.0, "re:^2\\.": 0.5}
    with pytest.raises(ValueError, match="matches no"):
        L2(model, opt, select="actor")
    with pytest.raises(ValueError, match="accumulate"):
        SI(model, opt, accumulate="median")
    with pytest.raises(ValueError, match="xi"):
        SI(model, opt, xi=0.0)


@pytest.mark.parametrize("accumulate", ["ema", "mean"])
def test_accumulate_rules(accumulate):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    si = SI(model, opt, c=0.1, accumulate=accumulate, gamma=0.5)
    for t, batches in enumerate(make_tasks(n_tasks=3, steps=5)):
        _fit(model, opt, batches)
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
    _, _, raw = _trained_regulariser(SI, c=2.0)
    _, _, norm = _trained_regulariser(SI, c=2.0, normalize="mean")
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


def test_keep_top_keeps_the_largest_share_of_each_fresh_estimate():
    model = make_model(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    reg = SI(model, opt, c=1e6, keep_top=0.25)
    want = [torch.zeros_like(p) for p in reg.params]
    for task in make_tasks(n_tasks=2, steps=10):
        _fit(model, opt, task)
        fresh = [f.clamp(min=0) for f in reg._new_importance()]
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


@pytest.mark.parametrize("keep_top", [0.0, -0.1, 1.5])
def test_keep_top_out_of_range_is_refused(keep_top):
    model = make_model()
    with pytest.raises(ValueError, match="keep_top"):
        SI(model, torch.optim.SGD(model.parameters(), lr=0.1), keep_top=keep_top)


def test_adaptive_strength_tracks_target_ratio():
    model, opt, reg = _trained_regulariser(SI, c=1e-3, adaptive_target=0.5, adaptive_rate=0.2)
    batches = make_tasks(n_tasks=3, steps=200)[2]
    _fit(model, opt, batches)
    stats = reg.stats()
    assert stats["c"] > 1e-3  # pulled up from a far too small start
    assert 0.25 < stats["adaptive_ratio"] < 1.0


def _drift(reg: QuadraticRegulariser) -> float:
    undone = sum(
        float((o * (p.detach() - a) ** 2).sum())
        for o, p, a in zip(reg.importance.values(), reg.params, reg.anchor.values(), strict=True)
    )
    return undone / float(reg._learned)


@pytest.mark.parametrize("accumulate", ["sum", "ema", "mean"])
def test_drift_budget_denominator_is_the_learned_quadratic_form(accumulate):
    model = make_model(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    reg = SI(model, opt, adaptive_target=0.1, adaptive_signal="drift", accumulate=accumulate)
    expected = 0.0
    for k, task in enumerate(make_tasks(n_tasks=3, steps=10)):
        _fit(model, opt, task)
        fresh = reg._new_importance()
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
        assert float(reg._learned) == pytest.approx(expected, rel=1e-9)
        assert _drift(reg) == 0.0  # the anchor is θ: nothing undone yet


@pytest.mark.parametrize("target", [1e-4, 1e3])
def test_drift_budget_moves_c_towards_the_constraint(target):
    # Far over budget, c must rise; far under it, c must fall; at the documented rate, at most
    # a factor e^η per step.
    model, opt, reg = _trained_regulariser(
        SI, c=1.0, adaptive_target=target, adaptive_signal="drift", adaptive_rate=0.05
    )
    c_before = reg.stats()["c"]
    batches = make_tasks(n_tasks=3, steps=40)[2]
    _fit(model, opt, batches)
    stats = reg.stats()
    drift = _drift(reg)
    assert stats["drift"] == pytest.approx(drift, rel=1e-9)
    if target < 1:
        assert drift > target and stats["c"] > c_before
    else:
        assert drift < target and stats["c"] < c_before
    assert stats["c"] == pytest.approx(c_before * math.exp(0.05 * 40 * (1 if target < 1 else -1)))


@pytest.mark.parametrize("cls", [SI, L2, OnlineEWC, MAS])
def test_drift_is_logged_for_every_method_and_does_not_depend_on_c(cls):
    kwargs = {} if cls in (SI, L2) else {"chunk_size": 4}
    drifts = []
    for c in (0.01, 100.0):
        model = make_model(1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        reg = cls(model, opt, c=c, attach=False, **kwargs)  # no penalty: the same path for any c
        assert "drift" not in reg.stats()
        for k, task in enumerate(make_tasks(n_tasks=2, steps=10)):
            if cls is SI and k == 0:
                reg.attach()  # the path integral; no penalty before the first consolidation
            _fit(model, opt, task)
            if k == 0:
                if cls in (OnlineEWC, MAS):
                    reg.estimate(task[0][0])
                reg.consolidate()
                reg.detach()
        drifts.append(reg.stats()["drift"])
        assert drifts[-1] == pytest.approx(_drift(reg), rel=1e-9)
    assert drifts[0] > 0
    assert drifts[0] == pytest.approx(drifts[1], rel=1e-9)


def test_drift_budget_state_round_trip():
    model, opt, reg = _trained_regulariser(SI, c=0.5, adaptive_target=0.1, adaptive_signal="drift")
    clone = SI(copy.deepcopy(model), opt, adaptive_target=0.1, adaptive_signal="drift")
    clone.load_state_dict(reg.state_dict())
    assert float(clone._learned) == float(reg._learned) > 0
    assert clone.stats()["c"] == reg.stats()["c"]


def test_unknown_adaptive_signal_is_named():
    model = make_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="adaptive_signal: must be 'gradient_ratio' or 'drift'"):
        SI(model, opt, adaptive_target=0.1, adaptive_signal="loss")


def test_mas_and_ewc_estimates_match_per_sample_reference():
    model = make_model(2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(10, 3, dtype=torch.float64)
    params = list(model.parameters())
    mas_ref = [torch.zeros_like(p) for p in params]
    fisher_ref = [torch.zeros_like(p) for p in params]

    def loglik(batch):  # log-density of a fixed Gaussian "action" under the model's mean
        return -0.5 * (model(batch) - 0.3).pow(2).sum(dim=1)

    for k in range(len(x)):
        gm = torch.autograd.grad(model(x[k : k + 1]).pow(2).sum(), params)
        gf = torch.autograd.grad(loglik(x[k : k + 1]).sum(), params)
        for a, b, m, f in zip(mas_ref, fisher_ref, gm, gf, strict=True):
            a += m.abs() / len(x)
            b += f * f / len(x)
    mas = MAS(model, opt, chunk_size=1)
    ewc = OnlineEWC(model, opt, fn=loglik, chunk_size=1)
    grads_before = [p.grad for p in params]
    for reg, ref in ((mas, mas_ref), (ewc, fisher_ref)):
        reg.consolidate(x)
        assert rel_err(list(reg.importance.values()), ref) <= 1e-10
    assert [p.grad for p in params] == grads_before  # estimation leaves p.grad alone
    with pytest.raises(RuntimeError, match="estimate"):
        ewc.consolidate()


def test_hooks_disabled_context_passes_gradients_through():
    model, _, reg = _trained_regulariser(SI, c=1.0)
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
    model, opt, reg = _trained_regulariser(SI, c=0.5)
    (x1, y1), (x2, y2) = make_tasks(n_tasks=1, steps=2)[0]
    with reg.hooks_disabled():
        g2 = torch.autograd.grad(nn.functional.mse_loss(model(x2), y2), reg.params)
        pen_grad = torch.autograd.grad(_autograd_penalty(reg), reg.params)
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
    for p, g in zip(si.params, si._task_grad, strict=True):
        assert g is not None and g is not p.grad
        assert g.data_ptr() != p.grad.data_ptr()
    opt.step()
    assert all(g is None for g in si._task_grad)  # released after the step
