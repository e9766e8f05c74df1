"""The plasticity study's shift actions on real SB3 models: what each resets, and what not."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from studies.plasticity import ResetOptimizer, ResetPolicyHead, ResetValueNet


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
