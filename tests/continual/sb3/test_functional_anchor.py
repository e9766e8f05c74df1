"""``distill``: the functional anchor on an SB3 policy, fed by the rollouts."""

from __future__ import annotations

import pytest
import torch
from small_models import make_model
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from continual import L2, ContinualCallback, FunctionalAnchor
from continual.sb3.estimation import policy_divergence, policy_output


def interval(n_steps: int = 128, **kwargs) -> ContinualCallback:
    return ContinualCallback(
        kwargs.pop("method", "distill"),
        trigger="interval",
        trigger_kwargs={"n_steps": n_steps},
        **kwargs,
    )


def anchor_of(cb: ContinualCallback) -> FunctionalAnchor:
    (anchor,) = [a for a in cb.regulariser.addons if isinstance(a, FunctionalAnchor)]
    return anchor


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_every_rollout_feeds_the_reservoir_and_consolidations_label_it(env_id, tmp_path):
    model = make_model("ppo", env_id)
    cb = interval()
    model.learn(512, callback=cb)
    anchor = anchor_of(cb)
    assert anchor.buffer.n_seen == model.num_timesteps == 512
    assert cb.n_consolidations >= 3 and anchor.buffer.n_labelled > 0
    # The targets are the policy's outputs (Gaussian means or logits) when labelled; the
    # divergence is the KL between two policies.
    stats = cb.regulariser.stats()
    assert stats["anchor/labelled"] == anchor.buffer.n_labelled and stats["anchor/penalty"] >= 0
    x = anchor.buffer.inputs[:4]
    out = policy_output(lambda: model.policy)(x)
    assert anchor.buffer.targets.shape[1:] == out.shape[1:]
    kl = policy_divergence(lambda: model.policy)(out.detach(), out)
    torch.testing.assert_close(kl, torch.zeros(4))
    # Saved and resumed: the reservoir comes back, and training goes on.
    cb.save(tmp_path / "cb.pt")
    resumed = interval()
    resumed.load(tmp_path / "cb.pt")
    model.learn(128, callback=resumed, reset_num_timesteps=False)
    buffer = anchor_of(resumed).buffer
    assert buffer.n_seen == 640
    assert torch.equal(buffer.inputs[:64], anchor.buffer.inputs[:64])  # filled in order


def test_a_huge_anchor_keeps_the_policy_where_it_was_consolidated():
    """With c = 0 and λ = 1e4 the KL to the consolidated policy on the reservoir stays near 0
    while PPO goes on learning; with λ = 0 the policy moves away."""

    def kl_after(strength: float) -> float:
        model = make_model("ppo", seed=1)
        cb = interval(256, c=0.0, addons=[FunctionalAnchor(strength, batch_size=64)])
        model.learn(256, callback=cb)  # the next rollout end consolidates
        cb.detector.trigger = ContinualCallback(None, trigger="never").trigger
        model.learn(1024, callback=cb, reset_num_timesteps=False)
        anchor = anchor_of(cb)
        labelled = anchor.buffer.labelled
        x, target = anchor.buffer.inputs[labelled], anchor.buffer.targets[labelled]
        with torch.no_grad():
            out = policy_output(lambda: model.policy)(x)
            return float(policy_divergence(lambda: model.policy)(target, out).mean())

    free, held = kl_after(0.0), kl_after(1e4)
    assert free > 1e-3
    assert held < 0.05 * free


def test_a_given_anchor_replaces_the_methods_and_other_addons_join_it():
    cb = ContinualCallback("distill", addons=[FunctionalAnchor(3.0, capacity=128)])
    (anchor,) = cb.consolidation.regulariser_kwargs["addons"]
    assert anchor.strength == 3.0 and anchor.capacity == 128
    # Two callbacks of the preset never share an anchor (it holds state).
    a, b = (ContinualCallback("distill").consolidation.regulariser_kwargs for _ in range(2))
    assert a["addons"][0] is not b["addons"][0]
    assert "addons" not in ContinualCallback("si").consolidation.regulariser_kwargs


def test_recurrent_policies_are_refused_clearly():
    with pytest.raises(ValueError, match="functional anchor: recurrent policies"):
        make_model("recurrent").learn(64, callback=ContinualCallback("distill"))


def test_the_anchor_follows_the_policy_after_a_reload(tmp_path):
    model = make_model("ppo")
    cb = interval()
    model.learn(256, callback=cb)
    model.save(tmp_path / "m.zip")
    reloaded = PPO.load(tmp_path / "m.zip", env=make_vec_env("Pendulum-v1", n_envs=2, seed=1))
    reloaded.learn(128, callback=cb, reset_num_timesteps=False)
    with torch.no_grad():
        reloaded.policy.action_net.bias.add_(1.0)  # only the reloaded policy sees this
    x = torch.zeros(4, 3)
    torch.testing.assert_close(
        anchor_of(cb).fn(x), reloaded.policy.get_distribution(x).distribution.mean
    )


def test_an_anchor_on_a_regulariser_built_by_the_user_anchors_the_policy_output():
    model = make_model("ppo")
    anchor = FunctionalAnchor()
    reg = L2(model.policy, model.policy.optimizer, c=0.0, addons=[anchor])
    assert anchor.fn is model.policy  # a plain module's own output, until training starts
    cb = ContinualCallback(reg, trigger="interval", trigger_kwargs={"n_steps": 128})
    model.learn(384, callback=cb)
    assert anchor.buffer.n_labelled > 0 and cb.regulariser.stats()["anchor/penalty"] >= 0
    x = torch.zeros(4, 3)
    torch.testing.assert_close(anchor.fn(x), model.policy.get_distribution(x).distribution.mean)
