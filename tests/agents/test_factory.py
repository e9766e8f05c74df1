"""make_agent / load_agent: PPO and RecurrentPPO built from config, and clear errors."""

from __future__ import annotations

import io

import pytest
import torch
from omegaconf import OmegaConf
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO

from agents import AgentConfig, algo_class, as_agent_config, load_agent, make_agent
from envs import make_vec_env

SMALL = {"n_steps": 16, "batch_size": 32, "n_epochs": 1, "pi_layers": [8], "vf_layers": [16]}


def _env(discrete: bool = False):
    world = {"discrete_actions": discrete}
    return make_vec_env({"schedule": [("north", 1000)]}, n_envs=2, seed=0, world=world)


def _mlp_widths(model: PPO, net: str) -> list[int]:
    return [
        p.shape[0]
        for n, p in model.policy.named_parameters()
        if f"mlp_extractor.{net}" in n and n.endswith("weight")
    ]


def test_make_agent_builds_ppo_from_config() -> None:
    cfg = {**SMALL, "learning_rate": 1e-3, "activation": "relu", "log_std_init": -0.5}
    model = make_agent(cfg, _env(), seed=0)
    assert type(model) is PPO
    assert (model.n_steps, model.batch_size, model.n_epochs) == (16, 32, 1)
    assert model.learning_rate == 1e-3 and model.seed == 0
    assert _mlp_widths(model, "policy_net") == [8] and _mlp_widths(model, "value_net") == [16]
    assert model.policy.activation_fn is torch.nn.ReLU
    assert torch.all(model.policy.log_std == -0.5)


def test_make_agent_on_discrete_actions_has_no_log_std() -> None:
    model = make_agent({**SMALL, "log_std_init": -0.5}, _env(discrete=True), seed=0)
    assert not hasattr(model.policy, "log_std")


def test_make_agent_builds_recurrent_ppo_from_config() -> None:
    cfg = {**SMALL, "algo": "recurrent_ppo", "lstm_hidden_size": 12, "n_lstm_layers": 2}
    model = make_agent(cfg, _env(), seed=0)
    assert type(model) is RecurrentPPO
    lstm = model.policy.lstm_actor
    assert (lstm.hidden_size, lstm.num_layers) == (12, 2)
    assert model.policy.lstm_critic is not None
    shared = make_agent({**cfg, "shared_lstm": True}, _env(), seed=0)
    assert shared.policy.lstm_critic is None  # a shared LSTM leaves the critic without its own


def test_config_from_a_dataclass_a_dict_or_hydra() -> None:
    assert as_agent_config(AgentConfig(algo="recurrent_ppo")).algo == "recurrent_ppo"
    from_hydra = as_agent_config(OmegaConf.create({**SMALL, "pi_layers": [4, 4]}))
    assert from_hydra.pi_layers == [4, 4] and isinstance(from_hydra.pi_layers, list)
    assert algo_class({"algo": "ppo"}) is PPO
    assert algo_class({"algo": "recurrent_ppo"}) is RecurrentPPO


def test_bad_algo_name_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"agent\.algo='dqn' is unknown; allowed: \['ppo'"):
        make_agent({"algo": "dqn"}, _env())
    with pytest.raises(ValueError, match=r"unknown agent field\(s\) \['algorithm'\]"):
        make_agent({"algorithm": "ppo"}, _env())
    with pytest.raises(ValueError, match=r"agent\.n_steps=0 must be in \[1, inf\)"):
        make_agent({"n_steps": 0}, _env())


def test_load_agent_restores_parameters() -> None:
    env = _env()
    model = make_agent(SMALL, env, seed=0)
    buf = io.BytesIO()
    model.save(buf)
    loaded = load_agent(SMALL, buf.getvalue(), env)
    assert type(loaded) is PPO
    for (name, p), (_, q) in zip(
        model.policy.state_dict().items(), loaded.policy.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), name


def test_make_agent_separate_policy_and_value_nets() -> None:
    env = make_vec_env({"schedule": [("north", 1000)]}, n_envs=2, seed=0)
    m = make_agent({}, env, seed=0)
    names = [n for n, _ in m.policy.named_parameters()]
    assert any("policy_net.2" in n for n in names) and any("value_net.2" in n for n in names)
    widths = [
        p.shape[0]
        for n, p in m.policy.named_parameters()
        if "mlp_extractor" in n and n.endswith("weight")
    ]
    assert widths == [256, 256, 256, 256]
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match=r"agent\.algo"):
        make_agent({"algo": "dqn"}, env)
    with pytest.raises(ValueError, match="unknown agent field"):
        make_agent({"widht": 3}, env)


def test_layer_norm_normalises_each_hidden_layer_and_adds_no_parameters() -> None:
    plain = make_agent(SMALL, _env(), seed=0)
    normed = make_agent({**SMALL, "layer_norm": True}, _env(), seed=0)
    assert [n for n, _ in normed.policy.named_parameters()] == [
        n for n, _ in plain.policy.named_parameters()
    ]
    hidden = normed.policy.mlp_extractor.policy_net
    x = torch.randn(5, hidden[0].in_features) * 100.0
    pre = hidden[0](x)
    expected = torch.tanh(
        (pre - pre.mean(-1, keepdim=True)) / pre.std(-1, unbiased=False, keepdim=True)
    )
    assert torch.allclose(hidden[1](pre), expected, atol=1e-4)
    # the 100x input scale does not reach the activations: the tanh does not saturate
    assert float(hidden[1](pre).abs().max()) < 0.999
    buf = io.BytesIO()
    normed.save(buf)
    loaded = load_agent({**SMALL, "layer_norm": True}, buf.getvalue(), _env())
    assert type(loaded.policy.mlp_extractor.policy_net[1]) is type(hidden[1])
