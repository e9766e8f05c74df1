"""Agent configuration: the fields of the ``agent`` config group."""

from __future__ import annotations

from dataclasses import dataclass, field

ALGOS = ("ppo", "recurrent_ppo")
ACTIVATIONS = ("tanh", "relu", "elu")


@dataclass
class AgentConfig:
    """PPO / RecurrentPPO hyperparameters.

    The defaults learn a navigation task quickly with 16 envs and leave the actor wide enough
    for a regulariser to protect old tasks; separate policy and value nets let it protect the
    actor alone. Why each value: ``docs/study/defaults.md#agent``.
    """

    algo: str = "ppo"  # "ppo" (MlpPolicy) or "recurrent_ppo" (sb3-contrib MlpLstmPolicy)
    # The lr the methods were compared at; task-free SI does worse at a larger one
    # (docs/study/lr.md).
    learning_rate: float = 3e-4
    n_steps: int = 128  # per env; x 16 envs = 2048 samples per update
    # 2048 / 256 x 10 epochs = 80 gradient steps per update; smaller batches cost wall-clock
    # time without learning faster (docs/study/defaults.md#agent).
    batch_size: int = 256
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    # A little entropy bonus slows the log_std collapse that leaves PPO unable to find the next
    # task's goal after a switch (docs/study/defaults.md#agent).
    ent_coef: float = 0.001
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    pi_layers: list[int] = field(default_factory=lambda: [256, 256])
    vf_layers: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "tanh"
    # Normalise each hidden layer's pre-activations (no learned scale or shift). Off: it made
    # re-learning only slightly faster, not enough to change the agent (docs/study/plasticity.md).
    layer_norm: bool = False
    log_std_init: float = 0.0
    ortho_init: bool = True
    # RecurrentPPO only.
    lstm_hidden_size: int = 128
    n_lstm_layers: int = 1
    shared_lstm: bool = False
    enable_critic_lstm: bool = True
    device: str = "cpu"
    # Torch intra-op threads. The nets are small: more threads spin-wait for busy cores and
    # are never faster, and one leaves the other cores to the envs and parallel runs
    # (docs/benchmarks.md#torch-threads-in-training).
    torch_threads: int = 1
    verbose: int = 0


def validate_agent_config(cfg: AgentConfig) -> None:
    """Raise ``ValueError`` naming the field and its allowed range for invalid values."""
    if cfg.algo not in ALGOS:
        raise ValueError(f"agent.algo={cfg.algo!r} is unknown; allowed: {list(ALGOS)}")
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(
            f"agent.activation={cfg.activation!r} is unknown; allowed: {list(ACTIVATIONS)}"
        )
    for name in (
        "n_steps",
        "batch_size",
        "n_epochs",
        "lstm_hidden_size",
        "n_lstm_layers",
        "torch_threads",
    ):
        v = getattr(cfg, name)
        if v < 1:
            raise ValueError(f"agent.{name}={v} must be in [1, inf)")
    if not 0.0 < cfg.learning_rate < 1.0:
        raise ValueError(f"agent.learning_rate={cfg.learning_rate} must be in (0, 1)")
    for name in ("gamma", "gae_lambda"):
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"agent.{name}={v} must be in [0, 1]")
    for name in ("clip_range", "max_grad_norm"):
        v = getattr(cfg, name)
        if not v > 0.0:
            raise ValueError(f"agent.{name}={v} must be in (0, inf)")
    for name in ("ent_coef", "vf_coef"):
        v = getattr(cfg, name)
        if not v >= 0.0:
            raise ValueError(f"agent.{name}={v} must be in [0, inf)")
    if cfg.target_kl is not None and not cfg.target_kl > 0:
        raise ValueError(f"agent.target_kl={cfg.target_kl} must be None or in (0, inf)")
    for name in ("pi_layers", "vf_layers"):
        layers = list(getattr(cfg, name))
        if any(int(w) < 1 for w in layers):
            raise ValueError(f"agent.{name}={layers} must hold widths in [1, inf)")
