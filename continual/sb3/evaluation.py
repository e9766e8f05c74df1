"""Continual evaluation: per-task success matrices, their TensorBoard logging and plots.

Env-agnostic: works with any SB3 model and any dict of SB3 VecEnvs whose final-step ``info``
carries ``is_success`` (and, optionally, a graded ``progress`` in [0, 1]).
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Figure, HParam
from stable_baselines3.common.vec_env import VecEnv

from continual.io import atomic_write
from continual.metrics import average_forgetting, relearn, summarize

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure
    from stable_baselines3.common.base_class import BaseAlgorithm

__all__ = [
    "MATRICES",
    "ContinualEvalCallback",
    "InfoArrayLogger",
    "evaluate_episodes",
    "plot_curves",
    "plot_matrix",
]

MATRICES: tuple[str, ...] = (
    "success",
    "success_stochastic",
    "progress",
    "progress_stochastic",
    "return",
)
"""Names of the per-evaluation matrices, each of shape (n_evals, n_tasks).

``success``: success rate of the deterministic policy; ``success_stochastic``: of the sampling
policy (a graded measure: deterministic success on navigation is nearly binary);
``progress``/``progress_stochastic``: mean ``info["progress"]`` at episode end (NaN when the env
does not report it); ``return``: mean undiscounted episode return of the deterministic policy.
"""

_NOT_SCALAR_OUTPUTS = ("stdout", "log", "json", "csv")


def evaluate_episodes(
    model: BaseAlgorithm,
    env: VecEnv,
    n_episodes: int,
    deterministic: bool,
    seed: int | None = None,
) -> dict[str, float]:
    """Run ``n_episodes`` episodes of ``model`` on ``env`` (vectorised) and average them.

    Episodes are spread evenly over the envs (env i runs ``(n + i) // n_envs`` of them), so
    short episodes are not over-represented. Recurrent policies get their state reset at episode
    starts. ``seed``: passed to ``env.seed`` before the reset, so repeated evaluations see the
    same start states.

    Returns ``{"success", "progress", "return"}``: mean success (``info["is_success"]``), mean
    final ``info["progress"]`` (NaN if absent) and mean undiscounted return.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes={n_episodes} must be in [1, inf)")
    n_envs = env.num_envs
    targets = np.array([(n_episodes + i) // n_envs for i in range(n_envs)], dtype=int)
    counts = np.zeros(n_envs, dtype=int)
    ret = np.zeros(n_envs)
    successes: list[float] = []
    progress: list[float] = []
    returns: list[float] = []
    if seed is not None:
        env.seed(seed)
    obs = env.reset()
    state = None
    starts = np.ones(n_envs, dtype=bool)
    while np.any(counts < targets):
        actions, state = model.predict(
            obs,  # type: ignore[arg-type]
            state=state,
            episode_start=starts,
            deterministic=deterministic,
        )
        obs, rewards, dones, infos = env.step(actions)
        ret += rewards
        for i in np.flatnonzero(dones):
            if counts[i] < targets[i]:
                info = infos[i]
                successes.append(float(bool(info.get("is_success", False))))
                progress.append(float(info.get("progress", math.nan)))
                returns.append(float(ret[i]))
                counts[i] += 1
            ret[i] = 0.0
        starts = dones
    return {
        "success": float(np.mean(successes)),
        "progress": float(np.mean(progress)),
        "return": float(np.mean(returns)),
    }


class ContinualEvalCallback(BaseCallback):
    """Evaluate every task periodically and keep the success matrix ``S[eval, task]``.

    Every ``eval_freq`` env steps (on a fixed grid of multiples of ``eval_freq``, so resumed
    runs evaluate at the same times), at the start of training (step 0) if ``eval_at_start``,
    and at the end of training, each env in ``eval_envs`` (one per task, in its canonical
    context) runs ``n_eval_episodes`` episodes with the deterministic policy and, if
    ``stochastic``, again with the sampling policy. Results fill the matrices of
    :data:`MATRICES`; they are logged as ``eval/task_<k>/<matrix>``, ``eval/avg_success``,
    ``eval/avg_success_stochastic`` and ``eval/avg_progress``.

    At the end of training the continual metrics (:func:`continual.metrics.summarize`) are
    computed, logged as ``metrics/<name>`` scalars, figures of the matrix and curves are logged
    (TensorBoard only), and, if ``hparams`` is given, the hparams tab gets the config and the
    final metrics.

    Evaluation draws its own randomness (env ``seed``, and a torch generator state forked and
    reseeded per evaluation), so it does not change the training run's random streams: training
    with and without evaluation, or resumed from a checkpoint, sees the same random numbers.

    :param eval_envs: task name -> VecEnv, in task-index order (index k = ``task_<k>``).
    :param eval_freq: env steps between evaluations (>= 1).
    :param n_eval_episodes: episodes per task and policy mode (>= 1).
    :param task_windows: per task, the ``(start, end)`` env-step window in which it is trained
        (for plasticity, forgetting and own-window AUC). Default: the whole run for every task.
    :param stochastic: also evaluate the sampling policy.
    :param eval_at_start: evaluate before any training (the row at step 0).
    :param seed: base seed of the eval envs and of the stochastic policy's sampling.
    :param figure_every: also log figures every this many evaluations (0: only at the end).
    :param hparams: flat mapping of hyperparameters for TensorBoard's hparams tab.
    :param reference_auc: task name -> single-task reference AUC, for forward transfer.
    :param scratch_steps: task name -> env steps a single-task run needed to reach
        ``relearn_threshold``, the denominator of the relearn cost; ``None``: the steps of the
        task trained first (:func:`continual.metrics.relearn`).
    :param relearn_threshold: the success rate in (0, 1] that counts as learned.
    :param visits: the stream's single-task phases in order, ``(task name, start, end)`` in env
        steps (:meth:`envs.StreamSpec.visits`): a task's relearn cost is measured in its first
        visit, and every later visit gets a revisit cost. Default: ``task_windows``, each task
        visited once.
    :param on_eval: called after every evaluation with ``(env steps, scalars)``, the scalars
        being the ``eval/*`` values just logged (e.g. for pruning a tuning trial; an exception
        it raises stops training).
    :param verbose: 1 prints a line per evaluation.
    """

    def __init__(
        self,
        eval_envs: Mapping[str, VecEnv],
        eval_freq: int,
        n_eval_episodes: int = 20,
        task_windows: Sequence[tuple[int, int]] | None = None,
        stochastic: bool = True,
        eval_at_start: bool = True,
        seed: int = 0,
        figure_every: int = 0,
        hparams: Mapping[str, Any] | None = None,
        reference_auc: Mapping[str, float] | None = None,
        scratch_steps: Mapping[str, float] | None = None,
        relearn_threshold: float = 0.8,
        visits: Sequence[tuple[str, int, int]] | None = None,
        on_eval: Callable[[int, dict[str, float]], None] | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if not eval_envs:
            raise ValueError("eval_envs must name at least one task")
        if isinstance(eval_freq, bool) or int(eval_freq) != eval_freq or eval_freq < 1:
            raise ValueError(f"eval_freq={eval_freq!r} must be an integer in [1, inf)")
        if int(n_eval_episodes) != n_eval_episodes or n_eval_episodes < 1:
            raise ValueError(f"n_eval_episodes={n_eval_episodes!r} must be an integer in [1, inf)")
        if figure_every < 0:
            raise ValueError(f"figure_every={figure_every} must be in [0, inf)")
        self.eval_envs = dict(eval_envs)
        self.task_names: list[str] = list(self.eval_envs)
        if task_windows is not None and len(task_windows) != len(self.task_names):
            raise ValueError(
                f"task_windows has {len(task_windows)} entries, expected one per task "
                f"({len(self.task_names)})"
            )
        self.task_windows = (
            None if task_windows is None else [(int(a), int(b)) for a, b in task_windows]
        )
        self.eval_freq = int(eval_freq)
        self.n_eval_episodes = int(n_eval_episodes)
        self.stochastic = stochastic
        self.eval_at_start = eval_at_start
        self.seed = int(seed)
        self.figure_every = int(figure_every)
        self.hparams = dict(hparams) if hparams is not None else None
        self.reference_auc = dict(reference_auc) if reference_auc is not None else None
        if not 0.0 < relearn_threshold <= 1.0:
            raise ValueError(f"relearn_threshold={relearn_threshold} must be in (0, 1]")
        self.scratch_steps = dict(scratch_steps) if scratch_steps is not None else None
        self.relearn_threshold = float(relearn_threshold)
        self.visits = None if visits is None else [(str(t), int(a), int(b)) for t, a, b in visits]
        self.on_eval = on_eval
        self.eval_steps: list[int] = []
        self._rows: dict[str, list[list[float]]] = {m: [] for m in MATRICES}
        self.final_metrics: dict[str, Any] | None = None

    # ------------------------------------------------------------------ results
    def matrix(self, name: str = "success") -> np.ndarray:
        """Matrix ``name`` (one of :data:`MATRICES`), shape (n_evals, n_tasks)."""
        if name not in self._rows:
            raise ValueError(f"unknown matrix {name!r}; allowed: {list(MATRICES)}")
        return np.array(self._rows[name], dtype=float).reshape(-1, len(self.task_names))

    def windows(self) -> list[tuple[int, int]]:
        """Per-task training windows; the whole evaluated span if none were given."""
        if self.task_windows is not None:
            return self.task_windows
        end = self.eval_steps[-1] if self.eval_steps else 0
        return [(0, end)] * len(self.task_names)

    def compute_metrics(self) -> dict[str, Any]:
        """Continual metrics of the success matrix plus averages of the graded measures."""
        if not self.eval_steps:
            raise RuntimeError("no evaluation has run yet")
        steps = np.array(self.eval_steps)
        out = summarize(
            self.matrix("success"), steps, self.windows(), self.task_names, self.reference_auc
        )
        for name in ("success_stochastic", "progress", "progress_stochastic", "return"):
            m = self.matrix(name)
            final = m[-1]
            value = float(np.mean(final)) if not np.all(np.isnan(final)) else None
            out[f"final_{name}"] = value
        stoch = self.matrix("success_stochastic")
        if not np.all(np.isnan(stoch)):
            out["average_forgetting_stochastic"] = _none_if_nan(
                average_forgetting(stoch, steps, self.windows())
            )
        out["n_evals"] = len(self.eval_steps)
        out["eval_steps"] = list(self.eval_steps)
        out["task_names"] = list(self.task_names)
        cost = relearn(
            self.matrix("success"),
            steps,
            self.windows(),
            self.task_names,
            self.relearn_threshold,
            self.scratch_steps,
            self.visits,
        )
        out["median_relearn_cost"] = cost["median_cost"]
        out["relearn"] = cost
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Evaluation history (picklable), for checkpoints."""
        return {
            "eval_steps": list(self.eval_steps),
            "rows": {k: [list(r) for r in v] for k, v in self._rows.items()},
            "task_names": list(self.task_names),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the history saved by :meth:`state_dict`."""
        if list(state["task_names"]) != self.task_names:
            raise ValueError(
                f"eval history is for tasks {list(state['task_names'])}, "
                f"this callback evaluates {self.task_names}"
            )
        self.eval_steps = [int(s) for s in state["eval_steps"]]
        self._rows = {m: [list(r) for r in state["rows"].get(m, [])] for m in MATRICES}

    # ------------------------------------------------------------------ callback hooks
    def _on_training_start(self) -> None:
        if self.eval_at_start and self.num_timesteps == 0 and not self.eval_steps:
            self.evaluate()

    def _on_step(self) -> bool:
        last = self.eval_steps[-1] if self.eval_steps else -1
        if self.num_timesteps // self.eval_freq > max(last, 0) // self.eval_freq:
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.eval_steps or self.eval_steps[-1] != self.num_timesteps:
            self.evaluate()
        self.final_metrics = self.compute_metrics()
        self._log_final(self.final_metrics)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> None:
        """Evaluate every task now and append a row to each matrix."""
        assert self.model is not None
        step = int(self.num_timesteps)
        index = len(self.eval_steps)
        row: dict[str, list[float]] = {m: [] for m in MATRICES}
        # Fork the torch RNG so evaluation does not shift the training run's random stream.
        with torch.random.fork_rng(devices=[]):
            for k, name in enumerate(self.task_names):
                env = self.eval_envs[name]
                env_seed = self.seed + 1000 * k
                det = evaluate_episodes(self.model, env, self.n_eval_episodes, True, env_seed)
                row["success"].append(det["success"])
                row["progress"].append(det["progress"])
                row["return"].append(det["return"])
                if self.stochastic:
                    torch.manual_seed(self.seed + 7919 * index + k)
                    sto = evaluate_episodes(self.model, env, self.n_eval_episodes, False, env_seed)
                    row["success_stochastic"].append(sto["success"])
                    row["progress_stochastic"].append(sto["progress"])
                else:
                    row["success_stochastic"].append(math.nan)
                    row["progress_stochastic"].append(math.nan)
        self.eval_steps.append(step)
        for m in MATRICES:
            self._rows[m].append(row[m])
        scalars = self._log_row(row)
        if self.figure_every and len(self.eval_steps) % self.figure_every == 0:
            self._log_figures()
        self.logger.dump(step)
        if self.on_eval is not None:
            self.on_eval(step, scalars)

    def _log_row(self, row: Mapping[str, list[float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in range(len(self.task_names)):
            out[f"eval/task_{k}/success"] = row["success"][k]
            out[f"eval/task_{k}/return"] = row["return"][k]
            if not math.isnan(row["progress"][k]):
                out[f"eval/task_{k}/progress"] = row["progress"][k]
            if self.stochastic:
                out[f"eval/task_{k}/success_stochastic"] = row["success_stochastic"][k]
        out["eval/avg_success"] = float(np.mean(row["success"]))
        if self.stochastic:
            out["eval/avg_success_stochastic"] = float(np.mean(row["success_stochastic"]))
        if not np.all(np.isnan(row["progress"])):
            out["eval/avg_progress"] = float(np.nanmean(row["progress"]))
        for key, value in out.items():
            self.logger.record(key, value)
        if self.verbose:
            cells = " ".join(f"{s:.2f}" for s in row["success"])
            print(f"eval @ {self.num_timesteps}: success [{cells}]")
        return out

    def _log_figures(self) -> None:
        steps = np.array(self.eval_steps)
        self.logger.record(
            "eval/success_matrix",
            Figure(plot_matrix(self.matrix("success"), steps, self.task_names), close=True),
            exclude=_NOT_SCALAR_OUTPUTS,
        )
        self.logger.record(
            "eval/curves",
            Figure(
                plot_curves(self._curves(), steps, self.task_names, self.task_windows),
                close=True,
            ),
            exclude=_NOT_SCALAR_OUTPUTS,
        )

    def _curves(self) -> dict[str, np.ndarray]:
        curves = {"success": self.matrix("success")}
        if self.stochastic:
            curves["success (stochastic)"] = self.matrix("success_stochastic")
        return curves

    def _log_final(self, m: Mapping[str, Any]) -> None:
        scalars = {
            f"metrics/{k}": float(v)
            for k, v in m.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n_evals"
        }
        for k, v in scalars.items():
            self.logger.record(k, v)
        self._log_figures()
        if self.hparams is not None:
            metric_dict = scalars or {"eval/avg_success": float(self.matrix()[-1].mean())}
            self.logger.record(
                "hparams",
                HParam(_hparam_values(self.hparams), metric_dict),
                exclude=_NOT_SCALAR_OUTPUTS,
            )
        self.logger.dump(self.num_timesteps)

    # ------------------------------------------------------------------ files
    def save_outputs(self, run_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``success_matrix.csv`` (all matrices, long format), ``curves.png`` and
        ``matrix.png`` into ``run_dir``; returns their paths."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        steps = np.array(self.eval_steps)
        paths = {
            "csv": run_dir / "success_matrix.csv",
            "curves": run_dir / "curves.png",
            "matrix": run_dir / "matrix.png",
        }
        write_matrix_csv(
            paths["csv"], steps, self.task_names, {m: self.matrix(m) for m in MATRICES}
        )
        fig = plot_curves(self._curves(), steps, self.task_names, self.task_windows)
        _save_fig(fig, paths["curves"])
        _save_fig(plot_matrix(self.matrix("success"), steps, self.task_names), paths["matrix"])
        return paths


class InfoArrayLogger(BaseCallback):
    """Log an array from the env's step ``info`` as scalars at the end of every rollout.

    Reads ``infos[0][info_key]`` of the rollout's last step and records entry k as
    ``<prefix><k>``; e.g. the stream mixture as ``stream/weight_<k>``. ``scalar_keys`` are
    further info entries logged as ``<scalar_prefix><key>``.
    """

    def __init__(
        self,
        info_key: str = "mixture",
        prefix: str = "stream/weight_",
        scalar_keys: Sequence[str] = (),
        scalar_prefix: str = "stream/",
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.info_key = info_key
        self.prefix = prefix
        self.scalar_keys = tuple(scalar_keys)
        self.scalar_prefix = scalar_prefix

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        infos = self.locals.get("infos")
        if not infos:
            return
        value = infos[0].get(self.info_key)
        if value is not None:
            for k, w in enumerate(np.asarray(value, dtype=float).ravel()):
                self.logger.record(f"{self.prefix}{k}", float(w))
        for key in self.scalar_keys:
            if key in infos[0]:
                self.logger.record(f"{self.scalar_prefix}{key}", float(infos[0][key]))


# ---------------------------------------------------------------------- helpers
def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else x


def _hparam_values(hparams: Mapping[str, Any]) -> dict[str, bool | str | float | None]:
    """TensorBoard's hparams accept only bool/str/number; anything else becomes its str."""
    out: dict[str, bool | str | float | None] = {}
    for k, v in hparams.items():
        out[str(k)] = v if isinstance(v, (bool, str, int, float)) or v is None else str(v)
    return out


def write_matrix_csv(
    path: str | os.PathLike[str],
    eval_steps: np.ndarray,
    task_names: Sequence[str],
    matrices: Mapping[str, np.ndarray],
) -> None:
    """One row per evaluation: ``step``, then ``<matrix>/<task>`` columns. Written atomically."""
    path = Path(path)
    header = ["step"] + [f"{m}/{n}" for m in matrices for n in task_names]

    def write(f: IO[str]) -> None:
        w = csv.writer(f)
        w.writerow(header)
        for i, step in enumerate(eval_steps):
            w.writerow(
                [int(step)]
                + [
                    f"{float(matrices[m][i, k]):.6g}"
                    for m in matrices
                    for k in range(len(task_names))
                ]
            )

    atomic_write(path, write, text=True)


def _pyplot() -> Any:
    """pyplot, on the non-interactive Agg backend unless the user already chose one."""
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_fig(fig: MplFigure, path: Path) -> None:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)


def plot_matrix(S: np.ndarray, eval_steps: np.ndarray, task_names: Sequence[str]) -> MplFigure:
    """Heatmap of a success matrix: rows = evaluations (time, downwards), columns = tasks.

    ``S``: (n_evals, n_tasks), ``eval_steps``: (n_evals,).
    """
    plt = _pyplot()

    n_evals, n_tasks = S.shape
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * n_tasks, 1.5 + 0.18 * n_evals))
    im = ax.imshow(S, aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(n_tasks), labels=list(task_names), rotation=30, ha="right")
    ticks = np.unique(np.linspace(0, n_evals - 1, min(n_evals, 10)).astype(int))
    ax.set_yticks(ticks, labels=[f"{int(eval_steps[i]):,}" for i in ticks])
    ax.set_ylabel("env steps at evaluation")
    ax.set_title("success S[eval, task]")
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig


def plot_curves(
    curves: Mapping[str, np.ndarray],
    eval_steps: np.ndarray,
    task_names: Sequence[str],
    task_windows: Sequence[tuple[int, int]] | None = None,
) -> MplFigure:
    """Per-task curves over env steps, one panel per entry of ``curves`` (name -> S of shape
    (n_evals, n_tasks)); each task's own training window is shaded in its colour."""
    plt = _pyplot()

    n = len(curves)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.6 * n), sharex=True, squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (title, S) in zip(axes[:, 0], curves.items(), strict=True):
        for k, name in enumerate(task_names):
            c = colours(k % 10)
            if task_windows is not None:
                a, b = task_windows[k]
                ax.axvspan(a, b, color=c, alpha=0.08, lw=0)
            ax.plot(eval_steps, S[:, k], color=c, marker=".", label=name)
        ax.plot(eval_steps, S.mean(axis=1), color="k", ls="--", lw=1, label="mean")
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes[-1, 0].set_xlabel("env steps")
    fig.tight_layout()
    return fig
