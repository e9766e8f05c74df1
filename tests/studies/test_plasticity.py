"""The plasticity study's shift actions on real SB3 models: what each resets, and what not."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from continual import ContinualCallback
from studies.plasticity import (
    PublishFreeWeights,
    ResetOptimizer,
    ResetPolicyHead,
    ResetValueNet,
    ShrinkPerturb,
)


def trained_ppo(**kwargs) -> PPO:
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=0, **kwargs)
    model.learn(256)
    return model


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def unchanged(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(p, before[n]) for n, p in module.named_parameters())


def test_reset_optimizer_clears_adam_state_and_training_goes_on():
    model = trained_ppo()
    assert len(model.policy.optimizer.state) > 0
    ResetOptimizer()(model)
    assert len(model.policy.optimizer.state) == 0
    model.learn(128, reset_num_timesteps=False)
    assert len(model.policy.optimizer.state) > 0


def test_reset_value_net_reinitialises_the_critic_alone():
    model = trained_ppo()
    policy = model.policy
    actor, head = snapshot(policy.mlp_extractor.policy_net), snapshot(policy.value_net)
    hidden = snapshot(policy.mlp_extractor.value_net)
    ResetValueNet()(model)
    assert unchanged(policy.mlp_extractor.policy_net, actor)
    assert not unchanged(policy.mlp_extractor.value_net, hidden)
    assert torch.all(policy.value_net.bias == 0)
    # SB3's orthogonal init of the head: gain 1, so the 1 x 64 weight row has norm 1.
    assert float(policy.value_net.weight.detach().norm()) == pytest.approx(1.0, rel=1e-5)
    assert not torch.equal(policy.value_net.weight, head["weight"])
    assert all(p not in policy.optimizer.state for p in policy.value_net.parameters())
    assert all(p in policy.optimizer.state for p in policy.action_net.parameters())
    model.learn(128, reset_num_timesteps=False)


def test_reset_policy_head_makes_the_mean_action_small_again():
    model = trained_ppo()
    policy = model.policy
    with torch.no_grad():
        policy.action_net.bias.fill_(1.0)
    critic = snapshot(policy.value_net)
    ResetPolicyHead()(model)
    assert unchanged(policy.value_net, critic)
    obs = torch.zeros(4, 3)
    mean = policy.get_distribution(obs).distribution.mean.detach()
    assert float(mean.abs().max()) < 0.1


def test_without_orthogonal_init_torch_defaults_are_used():
    model = trained_ppo(policy_kwargs={"ortho_init": False})
    ResetValueNet()(model)
    bound = 1.0 / 64**0.5  # nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert float(model.policy.value_net.weight.detach().abs().max()) <= bound


def test_shrink_perturb_blends_the_weights_with_a_fresh_orthogonal_draw():
    model = trained_ppo()
    policy = model.policy
    first = policy.mlp_extractor.policy_net[0]  # Linear(3, 64), SB3 gain sqrt(2)
    before = first.weight.detach().clone()
    log_std = policy.log_std.detach().clone()
    n_state = len(policy.optimizer.state)
    ShrinkPerturb(shrink=0.5, perturb=0.5)(model)
    fresh = (first.weight.detach() - 0.5 * before) / 0.5
    # An orthogonal 64 x 3 draw with gain sqrt(2): its columns are orthogonal, of norm sqrt(2).
    assert torch.allclose(fresh.T @ fresh, 2.0 * torch.eye(3), atol=1e-4)
    assert torch.equal(policy.log_std, log_std)
    assert len(policy.optimizer.state) == n_state
    model.learn(128, reset_num_timesteps=False)


def test_shrink_alone_scales_every_actor_and_critic_weight():
    model = trained_ppo()
    policy = model.policy
    parts = [policy.mlp_extractor, policy.action_net, policy.value_net]
    before = [snapshot(m) for m in parts]
    ShrinkPerturb(shrink=0.5, perturb=0.0)(model)
    for module, old in zip(parts, before, strict=True):
        for name, p in module.named_parameters():
            assert torch.allclose(p, 0.5 * old[name])
    ShrinkPerturb(shrink=1.0, perturb=0.0)(model)  # the identity
    for module, old in zip(parts, before, strict=True):
        for name, p in module.named_parameters():
            assert torch.allclose(p, 0.5 * old[name])


@pytest.mark.parametrize(("shrink", "perturb"), [(0.0, 0.1), (1.5, 0.1), (0.8, -0.1)])
def test_shrink_perturb_refuses_out_of_range_values(shrink: float, perturb: float):
    with pytest.raises(ValueError, match=r"shrink|perturb"):
        ShrinkPerturb(shrink=shrink, perturb=perturb)


def test_free_only_spares_every_entry_a_consolidation_kept():
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=0)
    # si keeps the larger half of each importance estimate: half the entries have Ω = 0.
    cb = ContinualCallback(
        "si", trigger="interval", trigger_kwargs={"n_steps": 128}, addons=[PublishFreeWeights()]
    )
    model.learn(256, callback=cb)
    reg = cb.regulariser
    assert reg is not None and reg.n_consolidations > 0
    before = [p.detach().clone() for p in reg.params]
    ShrinkPerturb(shrink=0.5, perturb=0.0, free_only=True)(model)
    n_kept = 0
    for p, old, omega in zip(reg.params, before, reg._importance, strict=True):
        kept = omega > 0
        n_kept += int(kept.sum())
        assert torch.equal(p[kept], old[kept])
        assert torch.allclose(p[~kept], 0.5 * old[~kept])
    assert 0 < n_kept < sum(p.numel() for p in reg.params)


def test_free_only_without_the_publishing_addon_is_refused():
    model = trained_ppo()
    with pytest.raises(ValueError, match="PublishFreeWeights"):
        ShrinkPerturb(free_only=True)(model)
