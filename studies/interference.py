"""Do the default tasks interfere, and are they jointly solvable? (PPO, stable-baselines3)

Three measurements per seed, all with the same PPO (MlpPolicy, separate [256, 256] policy
and value nets, 16 envs x 128 steps, single torch thread), evaluated with the deterministic
policy on every task's canonical context:

  (a) train on task A alone                      -> success on A       (target >= 0.9)
  (b) then keep training on task B alone         -> success on A       (target <  0.3)
  (c) fresh model, uniform mixture of all default tasks -> mean success (target >= 0.8)

(a) and (b) are one stream A -> B with a hard switch; (c) is ``StreamSpec.joint``.

    python -m studies.interference [--seeds 0 1] [--steps-a 20480] [--steps-b 40960]
                                      [--steps-joint 61440] [--episodes 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
from stable_baselines3 import PPO

from continual.sb3.evaluation import evaluate_episodes
from envs import DEFAULT_TASKS, NavVecEnv, StreamSpec, make_eval_envs, make_vec_env

N_ENVS, N_STEPS = 16, 128


def new_model(env: NavVecEnv, seed: int) -> PPO:
    return PPO(
        "MlpPolicy",
        env,
        n_steps=N_STEPS,
        batch_size=256,
        learning_rate=3e-4,
        policy_kwargs={"net_arch": {"pi": [256, 256], "vf": [256, 256]}},
        seed=seed,
        device="cpu",
        verbose=0,
    )


def success_rate(model: PPO, env: NavVecEnv, n_episodes: int) -> float:
    """Deterministic success over n_episodes, spread evenly over the envs."""
    return evaluate_episodes(model, env, n_episodes, deterministic=True)["success"]


def run_seed(
    seed: int, tasks: Sequence[str], steps_a: int, steps_b: int, steps_joint: int, episodes: int
) -> dict[str, float]:
    task_a, task_b = tasks[0], tasks[1]
    evals = make_eval_envs(list(tasks), n_envs=10, seed=seed)
    out: dict[str, float] = {}

    env = make_vec_env(
        StreamSpec(schedule=[(task_a, steps_a), (task_b, steps_b)]),
        N_ENVS,
        seed=seed,
        task_names=list(tasks),
    )
    model = new_model(env, seed)
    model.learn(steps_a)
    out["a: A after A"] = success_rate(model, evals[task_a], episodes)
    model.learn(steps_b, reset_num_timesteps=False)
    out["b: A after B"] = success_rate(model, evals[task_a], episodes)
    out["b: B after B"] = success_rate(model, evals[task_b], episodes)

    joint_env = make_vec_env(StreamSpec.joint(tasks, steps_joint), N_ENVS, seed=seed)
    joint = new_model(joint_env, seed)
    joint.learn(steps_joint)
    per_task = [success_rate(joint, evals[t], episodes) for t in tasks]
    out["c: joint mean"] = float(np.mean(per_task))
    out["c: joint min"] = float(np.min(per_task))
    return out


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--tasks", nargs="+", default=DEFAULT_TASKS, help="task set; A and B are the first two"
    )
    parser.add_argument("--steps-a", type=int, default=20_480)
    parser.add_argument("--steps-b", type=int, default=40_960)
    parser.add_argument("--steps-joint", type=int, default=61_440)
    parser.add_argument("--episodes", type=int, default=50, help="eval episodes per task")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    start = time.perf_counter()
    results: dict[int, dict[str, float]] = {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        results[seed] = run_seed(
            seed, args.tasks, args.steps_a, args.steps_b, args.steps_joint, args.episodes
        )
        print(f"seed {seed} done in {time.perf_counter() - t0:.0f} s", flush=True)
    total_steps = len(args.seeds) * (args.steps_a + args.steps_b + args.steps_joint)
    elapsed = time.perf_counter() - start

    targets = {
        "a: A after A": ">= 0.9",
        "b: A after B": "< 0.3",
        "b: B after B": "",
        "c: joint mean": ">= 0.8",
        "c: joint min": "",
    }
    checks = {
        "a: A after A": lambda v: v >= 0.9,
        "b: A after B": lambda v: v < 0.3,
        "c: joint mean": lambda v: v >= 0.8,
    }
    a, b = args.tasks[0], args.tasks[1]
    print(f"\nA = {a}, B = {b}; joint over {len(args.tasks)} tasks: {', '.join(args.tasks)}")
    print(
        f"steps: A {args.steps_a}, B {args.steps_b}, joint {args.steps_joint}; "
        f"{args.episodes} deterministic eval episodes per task\n"
    )
    header = f"{'measure':<16}" + "".join(f"{'seed ' + str(s):>9}" for s in args.seeds)
    print(header + f"{'mean':>9}{'target':>9}  ok")
    for key, target in targets.items():
        vals = [results[s][key] for s in args.seeds]
        ok = ""
        if key in checks:
            ok = "yes" if all(checks[key](v) for v in vals) else "NO"
        row = "".join(f"{v:>9.2f}" for v in vals)
        print(f"{key:<16}{row}{np.mean(vals):>9.2f}{target:>9}  {ok}")
    print(
        f"\n{total_steps} training steps in {elapsed:.0f} s "
        f"({total_steps / elapsed:,.0f} steps/s including evaluation)"
    )
    print(f"command: python {' '.join(['-m', 'studies.interference', *sys.argv[1:]])}")
    return results


if __name__ == "__main__":
    main()
