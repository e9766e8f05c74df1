"""ContinualCallback on stock SB3 algorithms with gymnasium's own environments."""

from __future__ import annotations

import csv
import glob
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from small_models import make_model
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from continual import SI, ContinualCallback, ResetExploration, TriggerEvent
from continual.experimental import AdaptiveStrength
from continual.sb3.signals import SIGNALS, unexplained_variance


def read_csv(folder: Path) -> list[dict[str, str]]:
    with open(folder / "progress.csv") as f:
        return list(csv.DictReader(f))


def column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key, "") != ""]


@pytest.mark.parametrize(
    ("algo", "env_id"),
    [("ppo", "Pendulum-v1"), ("a2c", "CartPole-v1"), ("recurrent", "Pendulum-v1")],
)
def test_trains_consolidates_and_logs_penalty(algo, env_id, tmp_path):
    model = make_model(algo, env_id)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    cb = ContinualCallback("si_paper", trigger="interval", trigger_kwargs={"n_steps": 256}, c=1.0)
    model.learn(1536, callback=cb, log_interval=1)
    assert cb.n_consolidations >= 4
    assert cb.regulariser is not None and cb.regulariser.n_consolidations == cb.n_consolidations
    assert not cb.regulariser.attached  # hooks removed at training end
    names = cb.regulariser.names
    assert names and not any("log_std" in n or "value" in n for n in names)
    rows = read_csv(tmp_path)
    consolidations = column(rows, "continual/consolidations")
    penalty = column(rows, "continual/penalty")
    after_first = [p for p, n in zip(penalty, consolidations, strict=True) if n >= 1]
    assert after_first and any(p > 0 for p in after_first)
    assert all(math.isfinite(p) for p in penalty)
    assert column(rows, "continual/omega_mean/actor")[-1] > 0


def test_huge_strength_keeps_parameters_at_the_anchor():
    def drift(c: float) -> float:
        model = make_model("ppo", seed=1)
        cb = ContinualCallback("l2", trigger="interval", trigger_kwargs={"n_steps": 128}, c=c)
        model.learn(128, callback=cb)  # one rollout, then consolidate
        assert cb.n_consolidations == 1
        anchor = {n: t.clone() for n, t in cb.regulariser.anchor.items()}
        cb.detector.trigger = ContinualCallback(None, trigger="never").trigger  # no more
        model.learn(640, callback=cb, reset_num_timesteps=False)
        params = dict(model.policy.named_parameters())
        return max(float((params[n].detach() - a).abs().max()) for n, a in anchor.items())

    free, held = drift(0.0), drift(1e6)
    assert free > 1e-3
    assert held < 0.2 * free


def test_huge_strength_holds_the_policy_and_the_value_network_when_both_are_selected():
    """With importance on both networks (each group its own weight), a huge c keeps each of
    them near its anchor, measured as the norm of the move after a consolidation."""

    def moves(c: float) -> dict[str, float]:
        model = make_model("ppo", seed=1)
        cb = ContinualCallback(
            "si", trigger="interval", trigger_kwargs={"n_steps": 256}, c=c,
            select={"actor": 1.0, "critic": 1.0},
        )  # fmt: skip
        model.learn(256, callback=cb)  # one update integrates ω, the next rollout consolidates
        anchor = {n: t.clone() for n, t in cb.regulariser.anchor.items()}
        cb.detector.trigger = ContinualCallback(None, trigger="never").trigger
        model.learn(640, callback=cb, reset_num_timesteps=False)
        params = dict(model.policy.named_parameters())
        reg = cb.regulariser
        groups = {
            reg.names[i]: g
            for g, members in zip(reg.group_names, reg.group_members, strict=True)
            for i in members
        }
        out = {"actor": 0.0, "critic": 0.0}
        for name, a in anchor.items():
            out[groups[name]] += float(((params[name].detach() - a) ** 2).sum())
        return {g: v**0.5 for g, v in out.items()}

    free, held = moves(0.0), moves(1e6)
    for group in ("actor", "critic"):
        assert free[group] > 1e-3, group
        assert held[group] < 0.5 * free[group], (group, held, free)


def test_huge_strength_holds_both_networks_under_the_default_callback():
    """``ContinualCallback()`` regularises the policy and the value network: with a huge c,
    both stay at their anchors, measured in each group as the importance-weighted move after a
    consolidation, sqrt(Σ Ω (θ − θ*)²), against the same move at c = 0."""

    def moves(c: float) -> dict[str, float]:
        model = make_model("ppo", seed=1)
        cb = ContinualCallback(trigger="interval", trigger_kwargs={"n_steps": 256}, c=c)
        model.learn(256, callback=cb)  # one update integrates ω, the next rollout consolidates
        reg = cb.regulariser
        assert reg.group_names == ["actor", "critic"] and reg.group_weights == [1.0, 0.01]
        importance = reg.importance
        anchor = {n: t.clone() for n, t in reg.anchor.items()}
        cb.detector.trigger = ContinualCallback(None, trigger="never").trigger
        model.learn(2048, callback=cb, reset_num_timesteps=False)
        params = dict(model.policy.named_parameters())
        out = {}
        for group, members in zip(reg.group_names, reg.group_members, strict=True):
            names = [reg.names[i] for i in members]
            moved = sum(
                float((importance[n] * (params[n].detach() - anchor[n]) ** 2).sum()) for n in names
            )
            out[group] = moved**0.5
        return out

    free, held = moves(0.0), moves(1e6)
    for group in ("actor", "critic"):
        assert free[group] > 1e-3, group
        assert held[group] < 0.05 * free[group], (group, held, free)


def test_a_state_saved_with_the_actor_alone_resumes_as_it_was_saved(tmp_path):
    """Runs started when the default held the actor alone continue with the actor alone."""
    model = make_model("ppo")
    old = ContinualCallback(
        "si", trigger="interval", trigger_kwargs={"n_steps": 128}, select="actor"
    )
    model.learn(256, callback=old)
    old.save(tmp_path / "actor.pt")
    resumed = ContinualCallback(trigger="interval", trigger_kwargs={"n_steps": 128})
    resumed.load(tmp_path / "actor.pt")
    model.learn(0, callback=resumed, reset_num_timesteps=False)  # builds it, loads the state
    assert resumed.regulariser.group_names == ["actor"]
    assert resumed.regulariser.names == old.regulariser.names
    assert resumed.regulariser.penalty() == pytest.approx(old.regulariser.penalty(), rel=1e-6)
    fresh = ContinualCallback(trigger="interval", trigger_kwargs={"n_steps": 128})
    fresh_model = make_model("ppo")
    fresh_model.learn(128, callback=fresh)
    assert fresh.regulariser.group_names == ["actor", "critic"]


def test_before_first_consolidation_training_is_unchanged():
    """The hooks only observe until there is something to protect: bit-identical training."""
    plain = make_model("ppo", seed=3)
    plain.learn(384)
    hooked = make_model("ppo", seed=3)
    cb = ContinualCallback("si", trigger="never")
    hooked.learn(384, callback=cb)
    for (n, p), q in zip(plain.policy.named_parameters(), hooked.policy.parameters(), strict=True):
        assert torch.equal(p, q), n
    assert any(float(w.abs().max()) > 0 for w in cb.regulariser.omega.values())


def test_save_load_learn_restores_state_and_hooks(tmp_path):
    model = make_model("ppo", seed=2)
    cb = ContinualCallback("si", trigger="interval", trigger_kwargs={"n_steps": 128}, c=0.5)
    model.learn(512, callback=cb)
    model.save(tmp_path / "model.zip")
    cb.save(tmp_path / "continual.pt")
    saved = cb.state_dict()

    cb2 = ContinualCallback("si", trigger="interval", trigger_kwargs={"n_steps": 128}, c=0.5)
    cb2.load(tmp_path / "continual.pt")
    assert cb2.trigger.state_dict() == cb.trigger.state_dict()
    assert cb2.n_consolidations == cb.n_consolidations
    model2 = PPO.load(tmp_path / "model.zip", env=make_vec_env("Pendulum-v1", n_envs=2, seed=5))

    class Probe(ContinualCallback):
        """Records the restored state right after the hooks attach."""

        def _on_training_start(self) -> None:
            super()._on_training_start()
            self.attached_at_start = self.regulariser.attached
            self.state_at_start = self.regulariser.state_dict()

    probe = Probe("si", trigger="interval", trigger_kwargs={"n_steps": 128}, c=0.5)
    probe.load(tmp_path / "continual.pt")
    model2.learn(256, callback=[probe], reset_num_timesteps=False)
    assert probe.attached_at_start
    for key in ("importance", "anchor", "omega"):
        for name, tensor in saved["regulariser"]["tensors"][key].items():
            assert torch.equal(probe.state_at_start["tensors"][key][name], tensor), (key, name)
    first = probe.regulariser.names[0]
    assert probe.regulariser.params[0] is model2.policy.get_parameter(first)
    assert probe.n_consolidations == cb.n_consolidations + 2  # 512 → 768 crosses 640 and 768
    del cb2

    # The same callback object follows a reloaded model (new policy and optimizer objects).
    model3 = PPO.load(tmp_path / "model.zip", env=make_vec_env("Pendulum-v1", n_envs=2, seed=6))
    before = cb.regulariser.state_dict()
    model3.learn(128, callback=cb, reset_num_timesteps=False)
    assert cb.regulariser.params[0] is model3.policy.get_parameter(first)
    assert cb.regulariser.n_consolidations == before["n_consolidations"] + 1  # at 640


def test_load_rejects_corrupt_and_mismatching_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable"):
        ContinualCallback("si").load(bad)
    model = make_model("ppo")
    cb = ContinualCallback("si", trigger="interval", trigger_kwargs={"n_steps": 128})
    model.learn(256, callback=cb)
    cb.save(tmp_path / "si.pt")
    with pytest.raises(ValueError, match="does not match"):
        ContinualCallback("l2", trigger="interval", trigger_kwargs={"n_steps": 128}).load(
            tmp_path / "si.pt"
        )
    with pytest.raises(ValueError, match="does not match"):
        ContinualCallback("si", trigger="plateau").load(tmp_path / "si.pt")
    with pytest.raises(FileNotFoundError):
        ContinualCallback("si").load(tmp_path / "missing.pt")
    # A mismatching parameter set is refused when the state meets the policy.
    other = ContinualCallback(
        "si", trigger="interval", trigger_kwargs={"n_steps": 128}, select="all"
    )
    other.load(tmp_path / "si.pt")
    with pytest.raises(ValueError, match=r"groups .* differ"):
        make_model("ppo").learn(64, callback=other)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_tensorboard_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = make_model("ppo", tensorboard_log=str(tmp_path))
    cb = ContinualCallback("si", trigger="interval", trigger_kwargs={"n_steps": 128})
    model.learn(512, callback=cb, tb_log_name="run")
    (run_dir,) = glob.glob(str(tmp_path / "run_*"))
    acc = EventAccumulator(run_dir)
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in (
        "continual/penalty",
        "continual/signal/negative_return",
        "continual/consolidations",
        "continual/c/actor",
        "continual/omega_mean/actor",
        "continual/omega_max/actor",
        "continual/event_settled",
        "continual/trigger/next_at",
    ):
        assert tag in tags, (tag, sorted(t for t in tags if t.startswith("continual")))
    assert acc.Scalars("continual/consolidations")[-1].value >= 3


class ShiftAt:
    """A trigger reporting ``shift`` at given updates (exercises the shift actions)."""

    kind = "test"

    def __init__(self, at: set[int]) -> None:
        self.at, self.n = at, 0

    def update(self, signal, num_timesteps=0, infos=None):
        self.n += 1
        return TriggerEvent(shift=self.n in self.at)

    def stats(self):
        return {}

    def state_dict(self):
        return {"kind": self.kind, "n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def test_shift_raises_exploration_and_nothing_else():
    model = make_model("ppo", policy_kwargs={"log_std_init": -1.0}, ent_coef=0.0)
    base_lr = model.lr_schedule(1.0)
    seen: list[float] = []

    class Watch(ContinualCallback):
        def _on_rollout_end(self) -> None:
            super()._on_rollout_end()
            seen.append(float(self.model.policy.log_std.detach().min()))

    cb = Watch(None, trigger=ShiftAt({2}), on_shift=[ResetExploration(log_std=0.0)])
    model.learn(64 * 2 * 5, callback=cb)
    assert cb.n_shifts == 1
    assert seen[0] == pytest.approx(-1.0, abs=0.05) and seen[1] == 0.0
    assert model.ent_coef == 0.0 and model.lr_schedule(1.0) == base_lr


def test_on_shift_defaults_to_the_exploration_reset_and_accepts_the_old_dict_form():
    (action,) = ContinualCallback().detector.on_shift
    assert isinstance(action, ResetExploration) and action.log_std == 0.0
    assert ContinualCallback(on_shift=[]).detector.on_shift == []
    assert ContinualCallback(on_shift={"reset_log_std": None}).detector.on_shift == []
    (old,) = ContinualCallback(on_shift={"reset_log_std": -0.5}).detector.on_shift
    assert old.log_std == -0.5
    with pytest.raises(ValueError, match="no longer shift actions"):
        ContinualCallback(on_shift={"reset_log_std": 0.0, "ent_coef": 0.1})


@pytest.mark.parametrize("method", ["ewc", "mas"])
def test_data_based_importance_on_ppo(method, tmp_path):
    model = make_model("ppo")
    cb = ContinualCallback(
        method, trigger="interval", trigger_kwargs={"n_steps": 128}, n_estimate_samples=64
    )
    model.learn(384, callback=cb)
    assert cb.regulariser.n_consolidations >= 2
    assert cb.regulariser.stats()["omega_mean/actor"] > 0
    # After a reload the estimate must use the new policy object.
    model.save(tmp_path / "m.zip")
    reloaded = PPO.load(tmp_path / "m.zip", env=make_vec_env("Pendulum-v1", n_envs=2, seed=1))
    reloaded.learn(128, callback=cb, reset_num_timesteps=False)
    with torch.no_grad():
        reloaded.policy.action_net.bias.add_(1.0)  # only the new policy sees this
    obs = torch.zeros(4, 3)
    if method == "mas":
        expected = reloaded.policy.get_distribution(obs).distribution.mean
        torch.testing.assert_close(cb.regulariser.fn(obs), expected)
    assert cb.regulariser.params[0] is reloaded.policy.get_parameter(cb.regulariser.names[0])


def test_ewc_on_recurrent_policy_is_refused_clearly():
    with pytest.raises(ValueError, match="recurrent"):
        make_model("recurrent").learn(64, callback=ContinualCallback("ewc"))


def test_finetuning_mode_and_custom_signal(tmp_path):
    model = make_model("ppo")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    calls: list[float] = []

    def surprise(m) -> float:
        calls.append(unexplained_variance(m))
        return calls[-1]

    cb = ContinualCallback(None, trigger="never", signal=surprise, on_shift=[])
    model.learn(256, callback=cb)
    assert cb.regulariser is None and len(calls) == 2
    values = column(read_csv(tmp_path), "continual/signal/surprise")
    assert np.allclose(values, calls)


def test_experimental_add_ons_reach_the_regulariser():
    """L2 needs the optimizer's step hooks only for the experimental adaptive strength."""
    model = make_model("ppo", seed=2)
    cb = ContinualCallback(
        "l2",
        trigger="interval",
        trigger_kwargs={"n_steps": 256},
        addons=[AdaptiveStrength(0.2)],
    )
    model.learn(512, callback=cb)
    reg = cb.regulariser
    assert reg is not None and reg.n_consolidations >= 1
    assert [type(a).__name__ for a in reg.addons] == ["AdaptiveStrength"]
    reg.attach()
    assert len(reg.hooks.handles) == len(reg.params) + 2
    reg.detach()
    with pytest.raises(ValueError, match="clip_penalty"):
        ContinualCallback("l2", clip_penalty=False)


def test_constructor_validation():
    with pytest.raises(ValueError, match="regulariser"):
        ContinualCallback("ewc2")
    with pytest.raises(ValueError, match="xi"):
        ContinualCallback("l2", xi=1e-3)
    with pytest.raises(ValueError, match="on_shift"):
        ContinualCallback("si", on_shift={"reset_std": 0.0})
    with pytest.raises(ValueError, match="renamed to select"):
        ContinualCallback("si", params="all")
    with pytest.raises(ValueError, match="c: must be"):
        ContinualCallback("si", c=-1.0)
    with pytest.raises(ValueError, match="signal"):
        ContinualCallback("si", signal="loss")
    with pytest.raises(ValueError, match="keep_top"):
        ContinualCallback("si", keep_top=0.0)
    assert ContinualCallback(SI).strength == 1.0


def test_negative_return_signal_is_sb3_episode_return_and_brings_its_thresholds():
    model = make_model("ppo", "CartPole-v1")
    cb = ContinualCallback("si", trigger="plateau", trigger_kwargs={"k": 5.0})
    assert cb.detector.signal_name == "negative_return"
    assert cb.trigger.scale == "range" and cb.trigger.min_recovery > 0  # the signal's defaults
    assert cb.trigger.k == 5.0  # the user's key wins
    assert ContinualCallback("si", signal="unexplained_variance").trigger.scale == "mean"
    model.learn(256, callback=cb)
    # CartPole's return is the episode length: the signal is minus SB3's rollout/ep_rew_mean.
    expected = -np.mean([ep["r"] for ep in model.ep_info_buffer])
    signal = cb.detector.last_signal
    assert signal == pytest.approx(expected) and signal < 0
    model.ep_info_buffer.clear()
    assert math.isnan(SIGNALS["negative_return"](model))


def test_ppo_loss_signal_is_the_last_updates_logged_loss():
    model = make_model("ppo", "CartPole-v1")
    cb = ContinualCallback("si", signal="ppo_loss")
    assert cb.trigger.scale == "range"  # the return's range-scaled thresholds
    model.learn(64, callback=cb)  # one rollout, no update before its end
    assert math.isnan(cb.detector.last_signal)
    model.learn(256, callback=cb, reset_num_timesteps=False)
    assert math.isfinite(cb.detector.last_signal)  # the loss of the update before it
    logged = model.logger.name_to_value["train/loss"]
    assert SIGNALS["ppo_loss"](model) == logged and math.isfinite(logged)


def test_method_presets_are_one_name_away():
    """The default is the recommended method; plain SI as in the paper is one name away."""
    default, named = ContinualCallback(), ContinualCallback("si")
    assert default.consolidation.regulariser_kwargs == named.consolidation.regulariser_kwargs
    assert default.consolidation.regulariser_kwargs == {
        "c": 10.0,
        "select": {"actor": 1.0, "critic": 0.01},
        "exclude": ("log_std",),
        "normalize": "mean",
        "keep_top": 0.5,
    }
    paper = ContinualCallback("si_paper").consolidation
    assert paper.spec is SI and paper.regulariser_kwargs == {
        "c": 1.0,
        "select": "actor",
        "exclude": ("log_std",),
    }
    # Options given as None (as configs pass them) keep the method's; others override.
    tuned = ContinualCallback("si", c=1.0, keep_top=None, xi=1e-2).consolidation
    assert tuned.regulariser_kwargs["keep_top"] == 0.5 and tuned.regulariser_kwargs["c"] == 1.0
    assert tuned.regulariser_kwargs["xi"] == 1e-2
    assert ContinualCallback("finetune").consolidation.spec is None
    with pytest.raises(ValueError, match="not options of regulariser 'l2'"):
        ContinualCallback("l2", xi=1e-3)


def test_state_of_the_earlier_format_loads(tmp_path):
    model = make_model("ppo")
    cb = ContinualCallback("si", trigger="interval", trigger_kwargs={"n_steps": 128})
    model.learn(256, callback=cb)
    old = {
        **cb.state_dict(),
        "format": "continual.ContinualCallback/1",
        "shift": {"ent_left": 0, "ent_base": None, "lr_left": 0},
    }
    fresh = ContinualCallback("si", trigger="interval", trigger_kwargs={"n_steps": 128})
    fresh.load_state_dict(old)
    assert fresh.n_consolidations == cb.n_consolidations == 2
    busy = {**old, "shift": {"ent_left": 3, "ent_base": 0.0, "lr_left": 0}}
    with pytest.raises(ValueError, match="no longer exist"):
        fresh.load_state_dict(busy)
