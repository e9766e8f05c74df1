"""Building stable-baselines3 agents (PPO, RecurrentPPO) from config, and the run plumbing
around them: atomic checkpoints and the non-finite guard."""

from agents.config import AgentConfig, validate_agent_config
from agents.factory import algo_class, as_agent_config, load_agent, make_agent, set_torch_threads

__all__ = [
    "AgentConfig",
    "algo_class",
    "as_agent_config",
    "load_agent",
    "make_agent",
    "set_torch_threads",
    "validate_agent_config",
]
