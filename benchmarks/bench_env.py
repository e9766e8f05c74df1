"""Environment throughput: agent-steps per second with random actions.

Measures, in interleaved repeats (so background load hits all of them alike), the median
agent-steps/s of

* the batched core (``NavCore.step``) at N = 256 and N = 1024,
* ``NavVecEnv`` (the SB3 VecEnv used for training, per-env info dicts included) at N = 256,
* SB3 ``DummyVecEnv`` over N = 256 single ``NavEnv`` instances (one Python step per agent),
* a single ``MiniGrid-Empty-8x8-v0`` (via ``gymnasium.make``) as an outside reference,
* ``UserStreamVecEnv`` (the task stream over the user's envs) over N = 16 ``CartPole-v1``
  envs (two tasks inside a blur window, the pole length drifting per episode, and again with
  the drift set before every step) and SB3 ``DummyVecEnv`` over the same 16 envs,

and prints the ratios. Targets: NavVecEnv(256) >= 30x MiniGrid and >= 10x DummyVecEnv(256);
the stream over CartPole costs at most 10% more time per step than DummyVecEnv.

    python benchmarks/bench_env.py [--repeats 5] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from envs import DEFAULT_TASKS, EnvTask, NavCore, NavEnv, StreamSpec, TaskStream, WorldConfig
from envs.sb3_vec_env import NavVecEnv
from envs.tasks import get_task
from envs.user_sb3_vec_env import UserStreamVecEnv

N_ACTION_BATCHES = 64


def _stream() -> StreamSpec:
    return StreamSpec.joint(DEFAULT_TASKS, 10**12)


def _timed(step: Callable[[int], None], agents_per_step: int, seconds: float) -> float:
    """Run ``step(i)`` until ``seconds`` have passed; return agent-steps per second."""
    for i in range(3):  # warm-up
        step(i)
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(8):
            step(n)
            n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n * agents_per_step / elapsed


def bench_core(n_envs: int) -> Callable[[float], float]:
    core = NavCore(
        n_envs,
        [get_task(t) for t in DEFAULT_TASKS],
        WorldConfig(),
        TaskStream(_stream(), seed=0),
        seed=0,
    )
    actions = np.random.default_rng(0).uniform(-2, 2, (N_ACTION_BATCHES, n_envs, 2))
    actions = actions.astype(np.float32)
    return lambda s: _timed(lambda i: core.step(actions[i % N_ACTION_BATCHES]), n_envs, s)


def bench_vec_env(n_envs: int) -> Callable[[float], float]:
    env = NavVecEnv(_stream(), n_envs=n_envs, seed=0)
    env.reset()
    actions = np.random.default_rng(1).uniform(-2, 2, (N_ACTION_BATCHES, n_envs, 2))
    actions = actions.astype(np.float32)
    return lambda s: _timed(lambda i: env.step(actions[i % N_ACTION_BATCHES]), n_envs, s)


def bench_dummy_vec_env(n_envs: int) -> Callable[[float], float]:
    env = DummyVecEnv([lambda: NavEnv() for _ in range(n_envs)])
    env.seed(0)
    env.reset()
    actions = np.random.default_rng(2).uniform(-2, 2, (N_ACTION_BATCHES, n_envs, 2))
    actions = actions.astype(np.float32)
    return lambda s: _timed(lambda i: env.step(actions[i % N_ACTION_BATCHES]), n_envs, s)


def bench_minigrid() -> Callable[[float], float]:
    import minigrid  # noqa: F401  (registers the MiniGrid ids)

    env = gym.make("MiniGrid-Empty-8x8-v0")
    env.reset(seed=0)
    actions = np.random.default_rng(3).integers(0, env.action_space.n, 4096).tolist()

    def step(i: int) -> None:
        _, _, terminated, truncated, _ = env.step(actions[i % 4096])
        if terminated or truncated:
            env.reset()

    return lambda s: _timed(step, 1, s)


CARTPOLE_N = 16


def _cartpole_actions(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (N_ACTION_BATCHES, CARTPOLE_N))


def bench_user_stream(update: str) -> Callable[[float], float]:
    tasks = {
        "a": EnvTask("CartPole-v1", {"length": 0.5}),
        "b": EnvTask("CartPole-v1", {"length": 1.0}),
    }
    stream = StreamSpec(
        schedule=[("a", 10**6), ("b", 10**12)],
        blur=10**6,
        drift=[{"param": "length", "process": "ou", "bound": 0.1, "update": update}],
    )
    env = UserStreamVecEnv(tasks, stream, n_envs=CARTPOLE_N, seed=0)
    env.core.stream.advance(10**6 - 1000)  # inside the blur window: both tasks drawn
    env.reset()
    actions = _cartpole_actions(4)
    return lambda s: _timed(lambda i: env.step(actions[i % N_ACTION_BATCHES]), CARTPOLE_N, s)


def bench_dummy_cartpole() -> Callable[[float], float]:
    env = DummyVecEnv([lambda: gym.make("CartPole-v1") for _ in range(CARTPOLE_N)])
    env.seed(0)
    env.reset()
    actions = _cartpole_actions(4)
    return lambda s: _timed(lambda i: env.step(actions[i % N_ACTION_BATCHES]), CARTPOLE_N, s)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    args = parser.parse_args(argv)

    benches: dict[str, Callable[[float], float]] = {
        "NavCore N=256": bench_core(256),
        "NavCore N=1024": bench_core(1024),
        "NavVecEnv N=256": bench_vec_env(256),
        "DummyVecEnv(NavEnv) N=256": bench_dummy_vec_env(256),
        "MiniGrid-Empty-8x8-v0 (single)": bench_minigrid(),
        f"UserStreamVecEnv(CartPole) N={CARTPOLE_N}": bench_user_stream("episode"),
        f"  the same, drift set every step N={CARTPOLE_N}": bench_user_stream("step"),
        f"DummyVecEnv(CartPole) N={CARTPOLE_N}": bench_dummy_cartpole(),
    }
    samples: dict[str, list[float]] = {k: [] for k in benches}
    for _ in range(args.repeats):
        for name, run in benches.items():
            samples[name].append(run(args.seconds))
    med = {k: statistics.median(v) for k, v in samples.items()}

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{args.repeats} interleaved repeats of {args.seconds:.2f} s each; random actions\n")
    width = max(map(len, med))
    print(f"{'benchmark':<{width}}  {'agent-steps/s (median)':>22}  {'min':>10}  {'max':>10}")
    for k, v in med.items():
        print(f"{k:<{width}}  {v:>22,.0f}  {min(samples[k]):>10,.0f}  {max(samples[k]):>10,.0f}")
    vec, dummy, grid = (
        med["NavVecEnv N=256"],
        med["DummyVecEnv(NavEnv) N=256"],
        med["MiniGrid-Empty-8x8-v0 (single)"],
    )
    r_grid, r_dummy = vec / grid, vec / dummy
    print()
    print(
        f"NavVecEnv N=256 / single MiniGrid:     {r_grid:7.1f}x  (target >= 30x: "
        f"{'met' if r_grid >= 30 else 'NOT met'})"
    )
    print(
        f"NavVecEnv N=256 / DummyVecEnv N=256:   {r_dummy:7.1f}x  (target >= 10x: "
        f"{'met' if r_dummy >= 10 else 'NOT met'})"
    )
    print(
        f"NavVecEnv N=256 / NavCore N=256:       {vec / med['NavCore N=256']:7.2f}x  "
        "(cost of the per-env info dicts)"
    )
    stream, plain = (
        med[f"UserStreamVecEnv(CartPole) N={CARTPOLE_N}"],
        med[f"DummyVecEnv(CartPole) N={CARTPOLE_N}"],
    )
    cost = plain / stream - 1  # extra time per agent-step
    print(
        f"UserStreamVecEnv / DummyVecEnv, CartPole: {stream / plain:7.2f}x  (time per step "
        f"{cost:+.1%}; target <= +10%: {'met' if cost <= 0.10 else 'NOT met'})"
    )
    per_step = med[f"  the same, drift set every step N={CARTPOLE_N}"]
    print(
        f"  the same, drift set every step:          {per_step / plain:7.2f}x  (time per step "
        f"{plain / per_step - 1:+.1%})"
    )
    print(f"\ncommand: python {' '.join(['benchmarks/bench_env.py', *sys.argv[1:]])}")
    return med


if __name__ == "__main__":
    main()
