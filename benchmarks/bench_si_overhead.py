"""What SI costs: wall time of PPO with and without ContinualCallback (the default "si", and
"distill" with its functional anchor), the hook work per optimizer step, memory against
naive per-task storage, and torch 1 vs 2 threads.

    python benchmarks/bench_si_overhead.py            # about 6–8 minutes on 2 cores
    python benchmarks/bench_si_overhead.py --quick    # smoke run
    python benchmarks/bench_si_overhead.py --env SynapticNav/Nav-v0 --agent project --n-envs 16

Wall time: PPO ``learn`` on a vectorised gymnasium env (MlpPolicy, n_steps=512, SB3 defaults
otherwise). Models with the same seed, one plain and one per method, learn the same steps in one
process, in chunks of a few rollouts whose order reverses every chunk, so drift in machine load
hits every arm alike; per repeat the ratio of summed times to plain PPO's, then its median. The
process's CPU time is reported next to it. Each method's arm (its defaults; for "si", SI on the
policy and value networks) consolidates at the first rollout end, so the penalty gradient is
active in every optimizer step: the worst case. Target: median ratio ≤ 1.05 for the default.
Per optimizer step, micro-benchmarks use CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import envs  # noqa: F401  registers the SynapticNav/... ids that --env may name
from agents import AgentConfig, make_agent
from continual import SI, ContinualCallback

#: The methods timed against plain PPO: the default and the shared-input method.
TIMED = ("si", "distill")


#: ``--agent`` choices: SB3's PPO defaults, or the training app's ``agent=ppo``.
AGENTS = ("sb3", "project")


def make_model(env_id: str, n_envs: int, seed: int, agent: str = "sb3") -> PPO:
    """``agent="sb3"``: SB3's PPO defaults (MlpPolicy, 64-64 policy and value nets, batch 64)
    with ``n_steps=512``; ``"project"``: the training app's ``agent=ppo`` (256-256 nets,
    ``n_steps=128``, batch 256, 10 epochs; it sets one torch thread)."""
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if agent == "project":
        model = make_agent(AgentConfig(), env, seed=seed)
        assert isinstance(model, PPO)
        return model
    return PPO("MlpPolicy", env, seed=seed, n_steps=512)


def timed_learn(
    env_id: str, n_envs: int, steps: int, seed: int, agent: str, n_threads: int
) -> float:
    """Wall seconds of one plain PPO ``learn`` of ``steps`` steps on ``n_threads`` torch threads."""
    model = make_model(env_id, n_envs, seed, agent)
    torch.set_num_threads(n_threads)  # after the model: the project's agent sets one thread
    start = time.perf_counter()
    model.learn(steps)
    return time.perf_counter() - start


def wall_time(
    env_id: str,
    n_envs: int,
    steps: int,
    repeats: int,
    chunk_rollouts: int,
    agent: str,
) -> None:
    """PPO alone and PPO with each method of :data:`TIMED` learn the same steps from the same
    seed, in chunks of ``chunk_rollouts`` rollouts whose order reverses every chunk (A B C,
    C B A, ...); per repeat the ratio of each method's summed time to PPO's.

    Interleaving a few seconds at a time matters on a shared machine: the speed of a whole
    ``learn`` drifts by ±20% between runs, far more than the effect measured here.
    """
    make_model(env_id, n_envs, 0, agent).learn(2048)  # warm-up: imports, allocator
    names = ["plain", *TIMED]
    walls: dict[str, list[float]] = {m: [] for m in TIMED}
    cpus: dict[str, list[float]] = {m: [] for m in TIMED}
    for r in range(repeats):
        models = {name: make_model(env_id, n_envs, r, agent) for name in names}
        per_rollout = models["plain"].n_steps * n_envs
        chunk = chunk_rollouts * per_rollout
        # Each method's defaults, consolidating at the first rollout end: the penalty gradient
        # (and the anchor's) is active in every optimizer step, the worst case.
        callbacks = {
            name: None
            if name == "plain"
            else ContinualCallback(
                name, trigger="interval", trigger_kwargs={"n_steps": per_rollout}
            )
            for name in names
        }
        wall = dict.fromkeys(names, 0.0)
        cpu = dict.fromkeys(names, 0.0)
        for k in range(max(1, steps // chunk)):
            for name in names if k % 2 == 0 else names[::-1]:
                w, c = time.perf_counter(), time.process_time()
                models[name].learn(chunk, callback=callbacks[name], reset_num_timesteps=False)
                wall[name] += time.perf_counter() - w
                cpu[name] += time.process_time() - c
        cells = [f"PPO {wall['plain']:6.2f} s ({cpu['plain']:6.2f} s CPU)"]
        for name in TIMED:
            cb = callbacks[name]
            assert cb is not None and cb.n_consolidations >= 1
            walls[name].append(wall[name] / wall["plain"])
            cpus[name].append(cpu[name] / cpu["plain"])
            cells.append(f"{name} {wall[name]:6.2f} s, ratio {walls[name][-1]:.3f}")
        print(f"  repeat {r}: " + "   ".join(cells))
    for name in TIMED:
        w, c = walls[name], cpus[name]
        target = "; target <= 1.05" if name == "si" else ""
        print(
            f"median ratio PPO+{name} / PPO: wall time {statistics.median(w):.3f} "
            f"(min {min(w):.3f}, max {max(w):.3f}), CPU time {statistics.median(c):.3f} "
            f"(min {min(c):.3f}, max {max(c):.3f}){target}"
        )


def optimizer_step_overhead(env_id: str, n_steps: int, agent: str) -> None:
    """Per optimizer step: the full PPO-like update with and without SI, and the hook work
    alone (the end-of-backward callback and the step pre- and post-hook, called directly)."""
    env = gym.make(env_id)
    model = make_model(env_id, 16 if agent == "project" else 1, 0, agent)  # a full batch
    policy, opt = model.policy, model.policy.optimizer
    batch = model.batch_size
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(batch)]))
    actions = torch.as_tensor(np.stack([env.action_space.sample() for _ in range(batch)]))

    def update() -> None:
        values, log_prob, entropy = policy.evaluate_actions(obs, actions)
        loss = -(log_prob.mean()) + 0.5 * values.pow(2).mean() - 0.01 * entropy.mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
        opt.step()

    def per_block(fn, n: int) -> float:
        start = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - start) / n * 1e6

    def per_step(fn, n: int) -> float:
        for _ in range(50):
            fn()
        # Median of 20 blocks: the same statistic as the step times it is compared with (a best
        # block would understate it against their medians on a loaded machine).
        return statistics.median(per_block(fn, n) for _ in range(20))

    # The callback's default selection: the policy and value networks.
    si = SI(policy, opt, c=1.0, select={"actor": 1.0, "critic": 0.01}, exclude=("log_std",))
    update()
    si.consolidate()  # penalty active from here: the costly case
    # Alternate blocks with the hooks detached and attached, so load drift hits both alike.
    plain_blocks, si_blocks = [], []
    for _ in range(50):
        update()
    block = max(n_steps // 10, 10)
    for _ in range(20):
        si.detach()
        plain_blocks.append(per_block(update, block))
        si.attach()
        si_blocks.append(per_block(update, block))
    plain, with_si = statistics.median(plain_blocks), statistics.median(si_blocks)
    diffs = statistics.median(b - a for a, b in zip(plain_blocks, si_blocks, strict=True))

    grads = [torch.randn_like(p) for p in si.params]
    everything = list(range(len(si.params)))

    def hook_work() -> None:
        # What the hooks add to a step, called directly: the end-of-backward callback after a
        # backward that reached every parameter (the per-parameter hooks only take note), then
        # the step pre- and post-hooks.
        for p, g in zip(si.params, grads, strict=True):
            p.grad = g
        hooks = si.hooks
        hooks._pending[:] = everything
        hooks._end_of_backward()
        hooks._pre_step(opt, (), {})
        hooks._post_step(opt, (), {})

    direct = per_step(hook_work, n_steps)
    n_params = sum(p.numel() for p in si.params)
    print(
        f"optimizer step (batch {batch}; SI on {len(si.params)} policy and value tensors, "
        f"{n_params} values): "
        f"PPO {plain:.0f} us, PPO+SI {with_si:.0f} us (medians of 20 alternating blocks), "
        f"paired difference {diffs:.0f} us ({diffs / plain:+.1%}); "
        f"hook work timed directly {direct:.0f} us/step (median of 20 blocks) "
        f"({direct / plain:.1%} of a plain step)"
    )


def memory_table() -> None:
    """Bytes of SI state against naive storage of one Ω (and θ*) per task."""

    def row(label: str, module: torch.nn.Module) -> None:
        opt = torch.optim.SGD(module.parameters(), lr=0.1)
        si = SI(module, opt, attach=False)
        unit = si.param_bytes()
        ours = si.state_bytes()
        cells = []
        for tasks in (1, 10, 100):
            naive = (2 * tasks + 2) * unit  # Ω_k and θ*_k per task, plus ω and θ_prev
            cells.append(f"{tasks:>3} tasks: {ours / 2**20:9.2f} vs {naive / 2**20:10.2f} MiB")
        bf16 = SI(module, opt, attach=False, storage_dtype=torch.bfloat16).state_bytes()
        print(
            f"{label} ({unit / 2**20:.2f} MiB of parameters; SI {ours // unit} buffers, "
            f"{bf16 / unit:.1f} with bfloat16 Ω, θ*)"
        )
        print("    ours (constant) vs naive per task:  " + " | ".join(cells))

    policy = PPO("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1)).policy
    row("PPO MlpPolicy [64, 64] on Pendulum", policy)
    row("Linear 10000 x 5000 (the field report's layer)", torch.nn.Linear(10000, 5000, bias=False))


def threads(env_id: str, n_envs: int, steps: int, repeats: int, agent: str) -> None:
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(repeats):
        for n in (1, 2):
            times[n].append(timed_learn(env_id, n_envs, steps, r, agent, n))
    torch.set_num_threads(1)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(
        f"torch threads, PPO MlpPolicy learn {steps} steps, wall time: 1 thread {one:.2f} s, "
        f"2 threads {two:.2f} s (2/1 = {two / one:.2f})"
    )


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when redirected to a file
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument(
        "--agent",
        choices=AGENTS,
        default="sb3",
        help="sb3: SB3's PPO defaults (64-64, batch 64); project: train.py's agent=ppo "
        "(256-256, batch 256; use --n-envs 16)",
    )
    parser.add_argument("--steps", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--chunk-rollouts", type=int, default=2, help="rollouts per interleaved learn chunk"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check it runs")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 2048, 1
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), env {args.env} "
        f"x{args.n_envs}, {args.steps} steps per run, agent {args.agent}"
    )
    print(f"\n== wall time, interleaved every {args.chunk_rollouts} rollouts ==")
    wall_time(args.env, args.n_envs, args.steps, args.repeats, args.chunk_rollouts, args.agent)
    print("\n== per optimizer step ==")
    optimizer_step_overhead(args.env, 200 if args.quick else 1000, args.agent)
    print("\n== memory ==")
    memory_table()
    print("\n== threads ==")
    threads(args.env, args.n_envs, args.steps // 2, max(1, args.repeats // 2 + 1), args.agent)


if __name__ == "__main__":
    main()
