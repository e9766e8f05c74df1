"""Each method's importance estimate against its definition."""

from __future__ import annotations

import pytest
import torch
from regulariser_problems import make_model, rel_err

from continual.regularisers import L2, MAS, SI, OnlineEWC


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


def test_data_estimates_accept_dicts_and_iterables_of_batches():
    model = make_model(2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(10, 3, dtype=torch.float64)
    whole = MAS(model, opt, chunk_size=1, attach=False)
    whole.estimate(x)
    split = MAS(model, opt, fn=lambda b: model(b["obs"]), chunk_size=1, attach=False)
    split.estimate([{"obs": x[:4]}, {"obs": x[4:]}])
    for a, b in zip(whole.fresh_importance(), split.fresh_importance(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="chunk_size"):
        MAS(model, opt, chunk_size=0)
    with pytest.raises(ValueError, match="fn: required"):
        MAS(list(model.named_parameters()), opt)


def test_l2_importance_is_one():
    model = make_model()
    reg = L2(model, torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(3):
        reg.consolidate()
    assert all(bool((o == 1).all()) for o in reg.importance.values())
    with pytest.raises(ValueError, match="accumulate"):
        L2(model, torch.optim.SGD(model.parameters(), lr=0.1), accumulate="sum")


def test_method_defaults_and_si_options():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert SI(model, opt).accumulate == "sum"
    assert OnlineEWC(model, opt).accumulate == "ema"
    assert MAS(model, opt).accumulate == "mean"
    with pytest.raises(ValueError, match="xi"):
        SI(model, opt, xi=0.0)
    assert SI(model, opt, xi=0.5).state_dict()["xi"] == 0.5
