"""Small supervised problems and helpers shared by the regulariser tests."""

from __future__ import annotations

import torch
from torch import nn

from continual.regularisers import SI, QuadraticRegulariser

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


def rel_err(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    num = sum(float((x - y).pow(2).sum()) for x, y in zip(a, b, strict=True)) ** 0.5
    den = sum(float(y.pow(2).sum()) for y in b) ** 0.5
    return num / max(den, 1e-300)


def fit(model: nn.Module, opt: torch.optim.Optimizer, batches) -> None:
    """Plain MSE steps on ``batches`` of (x, y)."""
    for x, y in batches:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def trained_regulariser(cls=SI, **kwargs) -> tuple[nn.Module, torch.optim.Optimizer, SI]:
    """A regulariser after one task, one consolidation and a second task."""
    model = make_model(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    reg = cls(model, opt, **kwargs)
    tasks = make_tasks(n_tasks=2, steps=10)
    fit(model, opt, tasks[0])
    reg.consolidate()
    fit(model, opt, tasks[1])
    return model, opt, reg


def autograd_penalty(reg: QuadraticRegulariser) -> torch.Tensor:
    """Σ_g c_g Σ Ω (θ − θ*)² as a differentiable expression."""
    total = torch.zeros((), dtype=torch.float64)
    cs = reg.effective_c()
    group_of = {
        reg.names[i]: g
        for g, idx in zip(reg.group_names, reg.group_members, strict=True)
        for i in idx
    }
    for name, p in zip(reg.names, reg.params, strict=True):
        group = group_of[name]
        total = total + cs[group] * (reg.importance[name] * (p - reg.anchor[name]) ** 2).sum()
    return total
