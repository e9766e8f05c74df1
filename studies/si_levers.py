"""Which settings let SI retain earlier tasks in a task sequence? (PPO, stable-baselines3)

One setting per invocation, one or more seeds. Trains SB3 PPO (MlpPolicy, separate policy and
value nets, 16 envs x 128 steps, single torch thread) on a sequence of tasks (default: the first
three of ``envs.DEFAULT_TASKS``: north -> southwest -> southeast) with a
``continual.ContinualCallback`` and, at the end of every phase, evaluates the deterministic
policy on every task's canonical context. Prints the success matrix S[phase end, task] per seed,
the final average success and the forgetting, and optionally saves everything as JSON.

Methods:
  finetune  no regulariser; the callback still runs its trigger and shift actions (log_std reset)
  si        Synaptic Intelligence with the chosen trigger (boundary = oracle, plateau = task-free)
  l2        L2 to the anchor (Omega = 1), same options
  joint     a fresh model on the uniform mixture of all tasks for the same total number of steps

Diagnostics:
  --omega   Omega per parameter tensor at every consolidation, and for the first policy layer
            Omega and |delta theta| per input block (position, velocity, wall lidar, each landmark
            kind), showing where importance and change sit.
  --swap    at each phase end k >= 1, for every earlier task j: evaluate the current policy with
            one parameter group put back to its value at the end of task j's phase ("restore"),
            and the old policy with one group taken from the current one ("break"). A group whose
            restore brings task j back (and whose break destroys it) is where it was forgotten.

Examples:
    python -m studies.si_levers --method finetune --seeds 0 1
    python -m studies.si_levers --method si --c 1 --seeds 0 1 --json si_c1.json
    python -m studies.si_levers --method si --trigger plateau --c 1 --seeds 0 1 2
    python -m studies.si_levers --method joint --seeds 0 1 2
    python -m studies.si_levers --summarize run1.json run2.json   # Markdown table
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from continual import ContinualCallback, ResetExploration
from continual.sb3.evaluation import evaluate_episodes
from envs import DEFAULT_TASKS, NavVecEnv, StreamSpec, WorldConfig, make_eval_envs, make_vec_env
from envs.tasks import TASKS

N_ENVS, N_STEPS = 16, 128
ROLLOUT = N_ENVS * N_STEPS

#: Parameter groups of SB3's ActorCriticPolicy for the swap analysis (actor side only: the
#: deterministic action depends on nothing else).
SWAP_GROUPS = {
    "pi.0": ("mlp_extractor.policy_net.0.",),
    "pi.2": ("mlp_extractor.policy_net.2.",),
    "head": ("action_net.",),
}


# ---------------------------------------------------------------------------------- building


def ppo_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """PPO settings (those of agents/config.py unless overridden on the command line)."""
    return {
        "n_steps": N_STEPS,
        "batch_size": 256,
        "n_epochs": args.n_epochs,
        "learning_rate": args.lr,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": args.ent_coef,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "policy_kwargs": {
            "net_arch": {"pi": list(args.pi_layers), "vf": list(args.vf_layers)},
            "activation_fn": torch.nn.Tanh,
            "log_std_init": 0.0,
            "ortho_init": not args.no_ortho_init,
        },
    }


def parse_params(spec: str) -> str | dict[str, float] | list[str]:
    """``actor`` | ``actor=1,critic=0.1`` | ``pat1;pat2`` (one group per pattern)."""
    if "=" in spec:
        out = {}
        for part in spec.split(","):
            k, v = part.split("=")
            out[k.strip()] = float(v)
        return out
    if ";" in spec:
        return [p.strip() for p in spec.split(";") if p.strip()]
    return spec


def callback_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ContinualCallback for this setting (JSON-friendly)."""
    # The script's "si" is SI as in the paper: raw importance unless --normalize is given.
    reg = {"finetune": None, "si": "si_paper"}.get(args.method, args.method)
    on_shift = [] if args.reset_log_std is None else [ResetExploration(args.reset_log_std)]
    kw: dict[str, Any] = {
        "regulariser": reg,
        "trigger": args.trigger,
        "on_shift": on_shift,
    }
    if args.trigger == "plateau" and args.plateau_kwargs:
        kw["trigger_kwargs"] = json.loads(args.plateau_kwargs)
    if args.trigger == "interval":
        kw["trigger_kwargs"] = {"n_steps": args.phase_steps}
    if reg is not None:
        kw.update(
            c=args.c,
            normalize=args.normalize,
            select=parse_params(args.params),
            exclude=tuple(args.exclude),
        )
        if args.accumulate:
            kw["accumulate"] = args.accumulate
        if args.gamma is not None:
            kw["gamma"] = args.gamma
        if args.adaptive_target is not None:
            kw["adaptive_target"] = args.adaptive_target
        if reg == "si_paper":
            kw["xi"] = args.xi
    return kw


# ---------------------------------------------------------------------------------- evaluation


def evaluate(model: PPO, env: NavVecEnv, n_episodes: int) -> tuple[float, float]:
    """Deterministic success rate and mean progress (1 - final/initial goal distance) over
    n_episodes, spread evenly over the envs."""
    out = evaluate_episodes(model, env, n_episodes, deterministic=True)
    return out["success"], out["progress"]


def policy_state(model: PPO) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


def with_params(model: PPO, state: dict[str, torch.Tensor]):
    """Context manager: temporarily load ``state`` into the policy."""

    class _Ctx:
        def __enter__(self) -> None:
            self.saved = policy_state(model)
            model.policy.load_state_dict(state)

        def __exit__(self, *exc: object) -> None:
            model.policy.load_state_dict(self.saved)

    return _Ctx()


def mix(
    base: dict[str, torch.Tensor], donor: dict[str, torch.Tensor], prefixes: Sequence[str]
) -> dict[str, torch.Tensor]:
    out = dict(base)
    for k in base:
        if any(k.startswith(p) for p in prefixes):
            out[k] = donor[k]
    return out


# ---------------------------------------------------------------------------------- diagnostics


def input_blocks(world: WorldConfig, tasks: Sequence[str]) -> dict[str, slice]:
    """Column ranges of the flat observation: position, velocity, wall lidar, landmark kinds."""
    r = world.n_rays
    blocks = {"pos": slice(0, 2), "vel": slice(2, 4)}
    start = 4
    if world.wall_lidar:
        blocks["wall"] = slice(start, start + r)
        start += r
    for t in tasks:
        ch = TASKS[t].landmarks[0].kind % world.landmark_channels
        blocks[f"lm:{t}"] = slice(start + ch * r, start + (ch + 1) * r)
    return blocks


def omega_report(cb: ContinualCallback, blocks: dict[str, slice]) -> dict[str, Any]:
    """Omega per tensor (mean, max) and, for the first policy layer, mean Omega per input block."""
    reg = cb.regulariser
    if reg is None:
        return {}
    imp = {k: v.detach().double() for k, v in reg.importance.items()}
    out: dict[str, Any] = {
        "per_tensor": {
            k: {"mean": float(v.mean()), "max": float(v.max()), "n": v.numel()}
            for k, v in imp.items()
        },
        "effective_c": reg.effective_c(),
    }
    w = imp.get("mlp_extractor.policy_net.0.weight")
    if w is not None:
        out["layer1_in_blocks"] = {b: float(w[:, s].mean()) for b, s in blocks.items()}
    return out


def delta_report(
    before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], blocks: dict[str, slice]
) -> dict[str, Any]:
    """RMS change per actor tensor between two phase ends, and per input block of layer 1."""
    out: dict[str, Any] = {"per_tensor": {}}
    for k in before:
        if k.startswith(("mlp_extractor.policy_net", "action_net", "log_std")):
            d = (after[k] - before[k]).double()
            out["per_tensor"][k] = float(d.pow(2).mean().sqrt())
    w = "mlp_extractor.policy_net.0.weight"
    d = (after[w] - before[w]).double()
    out["layer1_in_blocks"] = {b: float(d[:, s].pow(2).mean().sqrt()) for b, s in blocks.items()}
    return out


class Recorder(BaseCallback):
    """Runs after the ContinualCallback at each rollout end: records the signal, consolidations,
    shifts and log_std, so a plateau trigger's consolidations can be placed against the true
    boundaries."""

    def __init__(self, cb: ContinualCallback, blocks: dict[str, slice], omega: bool) -> None:
        super().__init__()
        self.cb, self.blocks, self.omega = cb, blocks, omega
        self.trace: list[dict[str, float]] = []
        self.consolidations: list[int] = []
        self.shifts: list[int] = []
        self.omega_at: list[dict[str, Any]] = []
        self._nc = self._ns = 0
        self._succ: list[float] = []

    def _on_step(self) -> bool:
        for i in np.flatnonzero(self.locals["dones"]):
            self._succ.append(float(self.locals["infos"][i].get("is_success", False)))
        return True

    def _on_rollout_end(self) -> None:
        cb, t = self.cb, int(self.num_timesteps)
        log_std = float(self.model.policy.log_std.detach().mean())
        train_success = float(np.mean(self._succ)) if self._succ else float("nan")
        self._succ = []
        self.trace.append(
            {"t": t, "signal": cb.last_signal, "log_std": log_std, "train_success": train_success}
        )
        if cb.n_consolidations > self._nc:
            self._nc = cb.n_consolidations
            self.consolidations.append(t)
            if self.omega:
                self.omega_at.append({"t": t, **omega_report(cb, self.blocks)})
        if cb.n_shifts > self._ns:
            self._ns = cb.n_shifts
            self.shifts.append(t)


# ---------------------------------------------------------------------------------- one run


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    tasks = list(args.tasks)
    n = len(tasks)
    world = WorldConfig()
    evals = make_eval_envs(tasks, n_envs=10, seed=seed)
    blocks = input_blocks(world, tasks)
    if args.method == "joint":
        stream = StreamSpec.joint(tasks, n * args.phase_steps)
    else:
        stream = StreamSpec.sequence(tasks, args.phase_steps, blur=args.blur)
    env = make_vec_env(stream, N_ENVS, seed=seed, task_names=tasks)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **ppo_kwargs(args))
    if args.head_scale != 1.0:
        # SB3 initialises the action head orthogonally with gain 0.01: hidden features then
        # barely move the action, and a new task can only be reached through the head itself.
        with torch.no_grad():
            model.policy.action_net.weight.mul_(args.head_scale)

    callbacks: list[BaseCallback] = []
    cb = rec = None
    if args.method != "joint":
        cb = ContinualCallback(seed=seed, verbose=0, **callback_kwargs(args))
        rec = Recorder(cb, blocks, args.omega)
        callbacks = [cb, rec]

    S = np.zeros((n, n))
    P = np.zeros((n, n))
    ends: list[dict[str, torch.Tensor]] = []
    swaps: list[dict[str, Any]] = []
    deltas: list[dict[str, Any]] = []
    head_gain: list[list[float]] = []
    for k in range(n):
        model.learn(
            args.phase_steps,
            callback=CallbackList(callbacks) if callbacks else None,
            reset_num_timesteps=False,
        )
        for j, t in enumerate(tasks):
            S[k, j], P[k, j] = evaluate(model, evals[t], args.episodes)
        state = policy_state(model)
        if ends and args.omega:
            deltas.append({"phase": k, **delta_report(ends[-1], state, blocks)})
        if args.swap and k >= 1:
            for j in range(k):
                old = ends[j]
                row: dict[str, Any] = {
                    "phase": k,
                    "task": tasks[j],
                    "now": S[k, j],
                    "old": S[j, j],
                    "restore": {},
                    "break": {},
                }
                for g, prefixes in SWAP_GROUPS.items():
                    with with_params(model, mix(state, old, prefixes)):
                        row["restore"][g] = evaluate(model, evals[tasks[j]], args.episodes)[0]
                    with with_params(model, mix(old, state, prefixes)):
                        row["break"][g] = evaluate(model, evals[tasks[j]], args.episodes)[0]
                swaps.append(row)
        ends.append(state)
        # Largest action change the hidden layer can make through the head: 2 * ||row||_1
        # (tanh features span [-1, 1]).
        head_gain.append([float(2 * v) for v in state["action_net.weight"].abs().sum(1)])
        log_std = float(model.policy.log_std.detach().mean())
        print(
            f"  seed {seed} phase {k} ({tasks[k] if args.method != 'joint' else 'joint'}) "
            f"t={model.num_timesteps}: S={np.round(S[k], 2).tolist()} "
            f"P={np.round(P[k], 2).tolist()} log_std={log_std:.2f} "
            f"head gain={np.round(head_gain[-1], 2).tolist()}",
            flush=True,
        )

    out: dict[str, Any] = {"S": S.tolist(), "P": P.tolist(), "head_gain": head_gain, **metrics(S)}
    if rec is not None:
        out.update(
            consolidations=rec.consolidations,
            shifts=rec.shifts,
            trace=rec.trace,
            boundaries=[args.phase_steps * (k + 1) for k in range(n - 1)],
            learn_steps=learn_steps(rec.trace, args.phase_steps, n),
        )
        if args.omega:
            out["omega"] = rec.omega_at
            out["delta"] = deltas
    if swaps:
        out["swap"] = swaps
    return out


def learn_steps(
    trace: list[dict[str, float]], phase: int, n: int, level: float = 0.8
) -> list[int | None]:
    """Steps into each phase until the stochastic training success of a rollout first reaches
    ``level`` (None: never)."""
    out: list[int | None] = []
    for k in range(n):
        hit = [
            r["t"] - k * phase
            for r in trace
            if k * phase < r["t"] <= (k + 1) * phase and r["train_success"] >= level
        ]
        out.append(int(hit[0]) if hit else None)
    return out


def metrics(S: np.ndarray) -> dict[str, float]:
    """Final average success, forgetting (mean over earlier tasks of best-before-last minus
    final), and whether every task is solved (>= 0.9) at the end."""
    n = len(S)
    final = S[-1]
    forg = [float(S[: n - 1, j].max() - final[j]) for j in range(n - 1)] if n > 1 else [0.0]
    return {
        "final_avg": float(final.mean()),
        "forgetting": float(np.mean(forg)),
        "all_solved": bool((final >= 0.9).all()),
        "plasticity": float(np.mean([S[k, k] for k in range(n)])),
    }


# ---------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--method", choices=["finetune", "si", "l2", "joint"], default="si")
    p.add_argument("--trigger", choices=["boundary", "plateau", "interval"], default="boundary")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS[:3])
    p.add_argument(
        "--phase-steps",
        type=int,
        default=32_768,
        help="env steps per task (a multiple of 2048, one rollout)",
    )
    p.add_argument("--blur", type=int, default=0)
    p.add_argument("--episodes", type=int, default=30, help="eval episodes per task")
    # regulariser
    p.add_argument("--c", type=float, default=1.0)
    p.add_argument("--xi", type=float, default=1e-3)
    p.add_argument("--accumulate", choices=["sum", "ema", "mean"], default=None)
    p.add_argument("--gamma", type=float, default=None, help="decay of accumulate=ema")
    p.add_argument("--normalize", choices=["mean"], default=None)
    p.add_argument("--adaptive-target", type=float, default=None)
    p.add_argument(
        "--params",
        default="actor",
        help="preset (actor, hidden, head, all), 'actor=1,critic=0.1', or "
        "glob patterns separated by ';'",
    )
    p.add_argument("--exclude", nargs="*", default=["log_std"])
    p.add_argument(
        "--reset-log-std",
        type=lambda s: None if s == "none" else float(s),
        default=0.0,
        help="on-shift log_std floor, or 'none'",
    )
    p.add_argument("--plateau-kwargs", default="", help="JSON dict of PlateauTrigger kwargs")
    # PPO
    p.add_argument("--pi-layers", type=lambda s: [int(x) for x in s.split(",")], default=[256, 256])
    p.add_argument("--vf-layers", type=lambda s: [int(x) for x in s.split(",")], default=[256, 256])
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--ent-coef", type=float, default=0.001)
    p.add_argument("--n-epochs", type=int, default=10)
    p.add_argument(
        "--no-ortho-init",
        action="store_true",
        help="PyTorch's default init instead of SB3's orthogonal init",
    )
    p.add_argument(
        "--head-scale",
        type=float,
        default=1.0,
        help="multiply the initial action-head weights (SB3: orthogonal, gain 0.01)",
    )
    # diagnostics and output
    p.add_argument("--omega", action="store_true", help="record Omega and parameter change")
    p.add_argument("--swap", action="store_true", help="parameter-group swap analysis")
    p.add_argument("--label", default="")
    p.add_argument("--json", default="")
    return p


def summarize(paths: Sequence[str]) -> None:
    """One Markdown row per saved run: setting, per-seed final S row, final average success,
    forgetting, tasks solved, consolidation times."""
    print(
        "| setting | seed | S after last phase | final avg | forgetting | plasticity "
        "| consolidations |"
    )
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        d = json.loads(Path(path).read_text())
        for seed, r in d["runs"].items():
            row = " ".join(f"{v:.2f}" for v in r["S"][-1])
            cons = ", ".join(str(t) for t in r.get("consolidations", [])) or "-"
            print(
                f"| {d['label']} | {seed} | {row} | {r['final_avg']:.2f} | "
                f"{r['forgetting']:.2f} | {r['plasticity']:.2f} | {cons} |"
            )
        plast = np.mean([r["plasticity"] for r in d["runs"].values()])
        print(
            f"| **{d['label']}** | mean | | **{d['final_avg_mean']:.2f}** | "
            f"{d['forgetting_mean']:.2f} | {plast:.2f} | |"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    raw = sys.argv[1:] if argv is None else argv
    if raw and raw[0] == "--summarize":
        summarize(raw[1:])
        return {}
    args = build_parser().parse_args(argv)
    if args.phase_steps % ROLLOUT:
        raise SystemExit(f"--phase-steps must be a multiple of {ROLLOUT}")
    torch.set_num_threads(1)
    tasks = list(args.tasks)
    label = args.label or args.method
    print(
        f"[{label}] tasks {tasks}, {args.phase_steps} steps per phase, seeds {args.seeds}",
        flush=True,
    )
    start = time.perf_counter()
    runs: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        runs[seed] = run_seed(args, seed)
        runs[seed]["seconds"] = time.perf_counter() - t0

    # ---- table
    print(f"\n[{label}] S[phase end, task] (deterministic success, {args.episodes} episodes)")
    head = "".join(f"{t[:10]:>11}" for t in tasks)
    for seed, r in runs.items():
        print(f"seed {seed}{'':<6}{head}")
        for k, row in enumerate(r["S"]):
            name = tasks[k] if args.method != "joint" else f"joint{k}"
            print(f"  after {name[:9]:<9}" + "".join(f"{v:>11.2f}" for v in row))
        extra = ""
        if "consolidations" in r:
            extra = f"  consolidations at {r['consolidations']} (boundaries {r['boundaries']})"
        if "learn_steps" in r:
            extra += f"  steps to 0.8 train success per phase {r['learn_steps']}"
        print(
            f"  final avg {r['final_avg']:.2f}  forgetting {r['forgetting']:.2f}  "
            f"all solved {r['all_solved']}  ({r['seconds']:.0f} s){extra}"
        )
    fa = [r["final_avg"] for r in runs.values()]
    fg = [r["forgetting"] for r in runs.values()]
    print(
        f"\n[{label}] final avg {np.mean(fa):.2f} (per seed {[round(v, 2) for v in fa]}), "
        f"forgetting {np.mean(fg):.2f} (per seed {[round(v, 2) for v in fg]}), "
        f"all solved {sum(r['all_solved'] for r in runs.values())}/{len(runs)}, "
        f"{time.perf_counter() - start:.0f} s"
    )
    cmd = "python -m studies.si_levers " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"command: {cmd}")

    result = {
        "label": label,
        "command": cmd,
        "args": vars(args),
        "callback_kwargs": callback_kwargs(args) if args.method != "joint" else None,
        "ppo_kwargs": {
            k: (v if k != "policy_kwargs" else {**v, "activation_fn": "Tanh"})
            for k, v in ppo_kwargs(args).items()
        },
        "runs": {str(s): r for s, r in runs.items()},
        "final_avg_mean": float(np.mean(fa)),
        "forgetting_mean": float(np.mean(fg)),
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(copy.deepcopy(result), indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
