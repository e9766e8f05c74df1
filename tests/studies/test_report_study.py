"""studies.report for the learning study: relative near-best width, the lr x strength
heatmap and the detector-quality table, on synthetic run folders (no training)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_runs import PNG_MAGIC, write_run

from studies import report as rep
from studies.report.__main__ import main as report_main


def make_config(
    lr: float = 3e-4,
    c: float = 1.0,
    normalize: str | None = None,
    trigger: str = "boundary",
    blur: int = 8192,
    phases: Sequence[tuple[str, int]] = (("north", 32768), ("southwest", 32768), ("east", 32768)),
    seed: int = 0,
) -> dict:
    """The parts of train.py's resolved config that the report reads, plus bookkeeping."""
    return {
        "stream": {
            "name": "sensitivity",
            "schedule": [{"task": t, "steps": s} for t, s in phases],
            "blur": blur,
            "ramp": "sigmoid",
            "joint": False,
        },
        "agent": {"algo": "ppo", "learning_rate": lr, "n_steps": 128, "torch_threads": 1},
        "continual": {
            "name": "x",
            "regulariser": "si",
            "trigger": trigger,
            "c": c,
            "normalize": normalize,
            "adaptive_target": None,
        },
        "seed": seed,
        "total_steps": None,
        "run_dir": f"/somewhere/{seed}",
        "progress_bar": True,
    }


def write_events(
    run_dir: Path,
    settled: Sequence[int],
    shift: Sequence[int],
    end: int,
    every: int = 2048,
    start: int = 2048,
    stamp: int = 1_700_000_000,
    tags: tuple[str, str] = ("continual/event_settled", "continual/event_shift"),
    counters: bool = False,
) -> Path:
    """A TensorBoard event file as ContinualCallback writes it: each tag once per rollout,
    1 at an event (or, with ``counters``, the cumulative counts)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir = run_dir / "tb" / "run_1"
    logdir.mkdir(parents=True, exist_ok=True)
    before = set(logdir.iterdir())
    writer = EventFileWriter(str(logdir))
    n_settled = n_shift = 0
    for step in range(start, end + 1, every):
        n_settled += step in settled
        n_shift += step in shift
        values = (
            (n_settled, n_shift) if counters else (float(step in settled), float(step in shift))
        )
        summary = summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag=tag, simple_value=float(v))
                for tag, v in zip(tags, values, strict=True)
            ]
        )
        writer.add_event(event_pb2.Event(step=step, wall_time=float(step), summary=summary))
    writer.close()
    (new,) = set(logdir.iterdir()) - before
    # Control the creation time in the name, as a resumed run's later file would have.
    target = logdir / f"events.out.tfevents.{stamp}.host.1.0"
    new.rename(target)
    return target


# ---------------------------------------------------------------------------------------------
# 1. Relative near-best width


def test_relative_width_is_the_contiguous_range_within_a_fraction_of_the_best() -> None:
    x = [1e-3, 1e-2, 1e-1, 1, 10, 100]
    y = [0.30, 0.62, 0.70, 0.66, 0.64, 0.20]
    rule = rep.NearBestRule(frac=0.9)  # >= 0.63
    assert rep.near_best_range(x, y, rule) == (0.1, 10.0, pytest.approx(2.0))
    # the boundary value itself counts (>=)
    assert rep.near_best_range(x, [0.3, 0.63, 0.7, 0.3, 0.3, 0.3], rule)[:2] == (0.01, 0.1)
    # order of the input does not matter
    assert rep.near_best_range(x[::-1], y[::-1], rule) == rep.near_best_range(x, y, rule)
    # absolute rule, same function
    assert rep.near_best_range(x, y, rep.NearBestRule(tol=0.05))[:2] == (0.1, 1.0)


def test_relative_width_edge_cases() -> None:
    rule = rep.NearBestRule(frac=0.9)
    assert rep.near_best_range([3.0], [0.5], rule) == (3.0, 3.0, 0.0)  # one point: width 0
    for best_le_0 in ([0.0, 0.0], [-0.2, -0.1]):
        assert all(math.isnan(v) for v in rep.near_best_range([1, 10], best_le_0, rule))
    # the absolute rule is defined there
    assert rep.near_best_range([1, 10], [-0.2, -0.1], rep.NearBestRule(tol=0.2))[:2] == (1, 10)
    # a NaN mean fails the rule and ends the range; an all-NaN line has no range
    assert rep.near_best_range([1, 10, 100, 1000], [0.8, 0.8, math.nan, 0.8], rule)[:2] == (1, 10)
    assert all(math.isnan(v) for v in rep.near_best_range([1, 10], [math.nan] * 2, rule))
    # a strength of 0 has no log: range given, width NaN
    low, high, dec = rep.near_best_range([0, 1], [0.8, 0.8], rule)
    assert (low, high) == (0, 1) and math.isnan(dec)
    with pytest.raises(ValueError, match="one length"):
        rep.near_best_range([1, 2], [0.5], rule)


def test_near_best_rule_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        rep.NearBestRule()
    with pytest.raises(ValueError, match="exactly one"):
        rep.NearBestRule(tol=0.1, frac=0.9)
    for bad in (0.0, 1.5, -0.1, math.nan):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
            rep.NearBestRule(frac=bad)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        rep.NearBestRule(tol=-1)


def sweep_study(root: Path) -> Path:
    """si over c = 0.01 ... 100 (2 seeds): means 0.30, 0.70, 0.65, 0.60, 0.10."""
    job = 0
    for c, m in [(0.01, 0.30), (0.1, 0.70), (1.0, 0.65), (10.0, 0.60), (100.0, 0.10)]:
        for seed in (0, 1):
            write_run(root / str(job), "si", seed, m, (f"continual.c={c}",), c)
            job += 1
    return root


def test_sensitivity_line_relative_and_absolute(tmp_path: Path) -> None:
    (ln,) = rep.sensitivity(rep.load_runs([sweep_study(tmp_path / "s")]).runs, n_boot=50)
    assert ln.near_best_range(0.05)[:2] == (0.1, 1.0)  # positional tol still works
    assert ln.near_best_range(frac=0.9) == (0.1, 1.0, pytest.approx(1.0))  # >= 0.63
    assert ln.near_best_range(frac=0.85) == (0.1, 10.0, pytest.approx(2.0))  # >= 0.595


def test_report_states_the_near_best_rule(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = sweep_study(tmp_path / "s")
    r = rep.write_report([study], out_dir=tmp_path / "abs", n_boot=50)
    md = r.markdown.read_text()
    assert "within 0.05 of the best mean (absolute rule, `--tol 0.05`)" in md
    assert "| 0.700 at 0.1 | 0.1 - 1 | 1.000 |" in md
    assert r.near_best == rep.NearBestRule(tol=0.05)

    assert (
        report_main(
            [str(study), "--out", str(tmp_path / "rel"), "--n-boot", "50", "--near-best", "0.85"]
        )
        == 0
    )
    md = (tmp_path / "rel" / "report.md").read_text()
    assert ">= 0.85 x the best mean (relative rule, `--near-best 0.85`)" in md
    assert "| near-best range | width (decades) |" in md
    assert "| 0.700 at 0.1 | 0.1 - 10 | 2.000 |" in md

    assert report_main([str(study), "--out", str(tmp_path / "t"), "--tol", "0.1"]) == 0
    assert "| 0.1 - 10 | 2.000 |" in (tmp_path / "t" / "report.md").read_text()
    capsys.readouterr()
    assert report_main([str(study), "--near-best", "1.5"]) == 2
    assert "fraction must be in (0, 1], got 1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one rule at a time
        report_main([str(study), "--tol", "0.1", "--near-best", "0.9"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_report_says_when_the_relative_rule_is_undefined(tmp_path: Path) -> None:
    for job, c in enumerate((0.1, 1.0)):
        write_run(tmp_path / "s" / str(job), "si", 0, 0.0, (f"continual.c={c}",), c)
    r = rep.write_report([tmp_path / "s"], out_dir=tmp_path / "o", n_boot=20, near_best=0.9)
    assert "| n/a (best <= 0) | n/a |" in r.markdown.read_text()


# ---------------------------------------------------------------------------------------------
# 2. lr x strength heatmap

GRID = {  # (lr, c) -> mean final average success
    (1e-4, 0.01): 0.2,
    (1e-4, 0.1): 0.4,
    (1e-4, 1.0): 0.5,
    (1e-3, 0.01): 0.3,
    (1e-3, 0.1): 0.9,
    (1e-3, 1.0): 0.6,
}


def test_heatmap_of_learning_rate_and_strength(tmp_path: Path) -> None:
    root = tmp_path / "grid"
    job = 0
    for (lr, c), m in GRID.items():
        for seed in (0, 1):
            ovr = (f"agent.learning_rate={lr}", f"continual.c={c}", "n_envs=4")
            write_run(root / str(job), "si", seed, m + 0.02 * seed, ovr, c)
            job += 1
    # one extra seed in one cell: the counts differ per cell
    write_run(
        root / "extra",
        "si",
        2,
        0.94,
        ("agent.learning_rate=0.001", "continual.c=0.1", "n_envs=4"),
        0.1,
    )
    # another setting of the same method: crossed too, so its own map, never in these cells
    for lr, c in GRID:
        ovr = (f"agent.learning_rate={lr}", f"continual.c={c}", "n_envs=8")
        write_run(root / f"n8_{job}", "si", 0, 0.0, ovr, c)
        job += 1
    # a method with a strength sweep only, and one without a strength: no map
    for c in (0.1, 1.0):
        write_run(root / f"l2_{c}", "l2", 0, 0.5, (f"continual.c={c}", "n_envs=4"), c)
    write_run(root / "ft", "finetune", 0, 0.1, ("agent.learning_rate=0.001", "n_envs=4"))

    maps = rep.heatmaps(rep.load_runs([root]).runs)
    assert [(m.method, m.axis_key, m.setting) for m in maps] == [
        ("si", "agent.learning_rate", "n_envs=4"),
        ("si", "agent.learning_rate", "n_envs=8"),
    ]
    m = maps[0]
    assert m.strength_name == "c" and m.strengths.tolist() == [0.01, 0.1, 1.0]
    assert m.axis_values == [1e-4, 1e-3]
    np.testing.assert_allclose(m.mean, [[0.21, 0.41, 0.51], [0.31, (0.9 + 0.92 + 0.94) / 3, 0.61]])
    assert m.n_runs.tolist() == [[2, 2, 2], [2, 3, 2]]
    assert (maps[1].mean == 0).all()

    r = rep.write_report([root], out_dir=tmp_path / "out", n_boot=50)
    assert r.plots["heatmap"].read_bytes()[:8] == PNG_MAGIC
    assert r.plots["heatmap"].name == "heatmap.png"
    md = r.markdown.read_text()
    assert "## Strength x second swept setting" in md and "(heatmap.png)" in md
    assert "**si [n_envs=4]**: agent.learning_rate x c" in md
    assert "| agent.learning_rate \\ c | 0.01 | 0.1 | 1 |" in md
    assert "| 1e-4 | 0.210 (2) | 0.410 (2) | 0.510 (2) |" in md
    assert "| 1e-3 | 0.310 (2) | **0.920 (3)** | 0.610 (2) |" in md


def test_heatmap_joins_sweeps_that_share_a_config(tmp_path: Path) -> None:
    """sweep=strength (c at the default lr) + sweep=strength_lr (lr x c) make one map; a
    strength sweep with another config (normalised importance) stays out of its cells."""
    job = 0

    def add(sweep: str, c: float, lr: float | None, m: float, normalize: str | None = None):
        nonlocal job
        ovr = [f"sweep={sweep}", f"continual.c={c}"]
        if lr is not None:
            ovr.insert(1, f"agent.learning_rate={lr}")
        cfg = make_config(lr=3e-4 if lr is None else lr, c=c, normalize=normalize, seed=job)
        write_run(tmp_path / sweep / str(job), "si_boundary", 0, m, ovr, c, config=cfg)
        job += 1

    for c in (0.1, 1.0, 10.0):
        add("strength", c, None, 0.5)
        add("strength_normalised", c, None, 0.0, normalize="mean")
        for lr in (1e-4, 1e-3):
            add("strength_lr", c, lr, 0.7)
    loaded = rep.load_runs(
        [tmp_path / "strength", tmp_path / "strength_lr", tmp_path / "strength_normalised"]
    )
    (m,) = rep.heatmaps(loaded.runs)
    assert m.axis_key == "agent.learning_rate"
    assert m.axis_values == [1e-4, 3e-4, 1e-3]  # 3e-4 read from the configs
    np.testing.assert_allclose(m.mean, [[0.7] * 3, [0.5] * 3, [0.7] * 3])
    assert (m.n_runs == 1).all()
    assert m.setting == "sweep=strength; sweep=strength_lr"


def test_heatmap_joins_runs_made_before_a_config_field_existed(tmp_path: Path) -> None:
    """A field added to the schema later is in the newer configs only: not a difference."""
    for job, c in enumerate((0.1, 1.0)):
        for lr, newer in ((3e-4, False), (1e-3, True)):
            cfg = make_config(lr=lr, c=c, seed=job)
            if newer:
                cfg["continual"]["adaptive_signal"] = "gradient_ratio"
            ovr = ("sweep=strength", f"agent.learning_rate={lr}", f"continual.c={c}")
            write_run(tmp_path / str(lr) / str(job), "si", 0, 0.5, ovr, c, config=cfg)
    (m,) = rep.heatmaps(rep.load_runs([tmp_path]).runs)
    assert m.axis_values == [3e-4, 1e-3]
    assert (m.n_runs == 1).all()


def test_heatmap_keeps_apart_runs_that_override_a_newer_config_field(tmp_path: Path) -> None:
    """Older configs lack continual.keep_top; newer runs that set it are another setting,
    newer runs that leave it at its default are not."""
    for job, c in enumerate((0.1, 1.0)):
        for lr in (3e-4, 1e-3):
            old = make_config(lr=lr, c=c, seed=job)
            ovr = ["sweep=strength", f"agent.learning_rate={lr}", f"continual.c={c}"]
            write_run(tmp_path / "old" / f"{lr}_{job}", "si", 0, 0.5, ovr, c, config=old)
        kept = make_config(c=c, seed=job)
        kept["continual"]["keep_top"] = 0.5
        ovr = ["sweep=strength", f"continual.c={c}", "continual.keep_top=0.5"]
        write_run(tmp_path / "kept" / str(job), "si", 0, 0.9, ovr, c, config=kept)
        plain = make_config(c=c, seed=job)
        plain["continual"]["keep_top"] = None
        ovr = ["sweep=strength", f"continual.c={c}"]
        write_run(tmp_path / "plain" / str(job), "si", 0, 0.5, ovr, c, config=plain)
    (m,) = rep.heatmaps(rep.load_runs([tmp_path]).runs)
    assert m.axis_key == "agent.learning_rate" and m.axis_values == [3e-4, 1e-3]
    np.testing.assert_allclose(m.mean, 0.5)  # the keep_top runs (0.9) are in no cell
    np.testing.assert_array_equal(m.n_runs, [[2, 2], [1, 1]])


def test_heatmap_without_configs_keeps_sweeps_apart(tmp_path: Path) -> None:
    for job, c in enumerate((0.1, 1.0)):
        write_run(
            tmp_path / "a" / str(job), "si", 0, 0.5, ("sweep=strength", f"continual.c={c}"), c
        )
        write_run(
            tmp_path / "b" / str(job),
            "si",
            0,
            0.7,
            ("sweep=strength_lr", "agent.learning_rate=0.001", f"continual.c={c}"),
            c,
        )
    # without configs the default lr is unknown and the sweeps may differ in anything: no map
    assert rep.heatmaps(rep.load_runs([tmp_path]).runs) == []


def test_a_tuning_study_is_not_a_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for job in range(8):
        c, lr = 10 ** rng.uniform(-2, 1), 10 ** rng.uniform(-4, -3)
        write_run(
            tmp_path / str(job), "si", 0, 0.5, (f"continual.c={c}", f"agent.learning_rate={lr}"), c
        )
    assert rep.heatmaps(rep.load_runs([tmp_path]).runs) == []


# ---------------------------------------------------------------------------------------------
# 3. Detector quality


def test_stream_truth_from_config() -> None:
    truth = rep.config_stream_truth(make_config(blur=8192))
    assert truth.boundaries.tolist() == [32768, 65536]
    assert truth.phase_lengths.tolist() == [32768, 32768]
    assert truth.blur == 8192 and truth.end == 98304 and truth.n_phases == 3
    # a repeated task is one phase; the run's end cuts the schedule
    cfg = make_config(phases=[("a", 100), ("a", 100), ("b", 300), ("c", 100)])
    truth = rep.config_stream_truth(cfg, end=450)
    assert truth.boundaries.tolist() == [200] and truth.phase_lengths.tolist() == [250]
    # [task, steps] pairs, and total_steps from the config
    cfg["stream"]["schedule"] = [["a", 100], ["b", 100]]
    cfg["total_steps"] = 150
    assert rep.config_stream_truth(cfg).end == 150
    # a joint stream has no switch: every shift on it is false
    cfg["stream"]["joint"] = True
    truth = rep.config_stream_truth(cfg)
    assert truth.boundaries.size == 0 and truth.n_phases == 1 and truth.end == 150
    score = rep.score_detector(
        rep.RunEvents(np.array([40.0]), np.array([60.0, 90.0]), source="test"), truth
    )
    assert score.false_shifts == 2 and math.isnan(score.detected)
    with pytest.raises(ValueError, match=r"stream\.schedule: missing"):
        rep.config_stream_truth({"stream": {}})


def test_stream_truth_from_the_record() -> None:
    stream = recorded_stream(blur=8192)
    truth = rep.stream_truth(stream)
    assert truth.boundaries.tolist() == [32768, 65536]
    assert truth.phase_lengths.tolist() == [32768, 32768]
    assert truth.blur == 8192 and truth.end == 98304 and truth.n_phases == 3
    # the run's end cuts the stream
    truth = rep.stream_truth(stream, end=50000)
    assert truth.boundaries.tolist() == [32768] and truth.phase_lengths.tolist() == [50000 - 32768]
    joint = rep.stream_truth({**stream, "boundaries": [], "joint": True}, end=1000)
    assert joint.boundaries.size == 0 and joint.end == 1000
    with pytest.raises(ValueError, match="unreadable record block"):
        rep.stream_truth({"blur": 0})


def test_score_detector_lags_misses_and_false_shifts() -> None:
    truth = rep.StreamTruth(
        boundaries=np.array([1000.0, 2000.0, 3000.0]),
        phase_lengths=np.array([1000.0, 1000.0, 1000.0]),
        blur=200.0,
        end=4000.0,
    )
    events = rep.RunEvents(
        settled=np.array([500.0, 1300.0, 1350.0, 3950.0, 4100.0]),
        shift=np.array([300.0, 950.0, 1100.0, 2700.0, 4000.0]),
        source="test",
    )
    score = rep.score_detector(events, truth)
    # switch 1: window [900, 1900): first shift 950 (within the blur: -50), settled 1300
    # switch 2: window [1900, 2900): shift 2700 (late: +700), no consolidation
    # switch 3: window [2900, 3900): nothing (3950 is after the window; 4000+ after the end)
    np.testing.assert_array_equal(score.shift_lags, [-50.0, 700.0, np.nan])
    np.testing.assert_array_equal(score.consolidation_lags, [300.0, np.nan, np.nan])
    assert score.detected == pytest.approx(2 / 3) and score.consolidated == pytest.approx(1 / 3)
    # false: 300 (before any switch's window) and 1100 (a repeat in switch 1's window)
    assert score.false_shifts == 2
    assert score.n_consolidations == 4 and score.consolidations_per_phase == 1.0


def test_switches_to_an_unsolved_task_are_scored_apart() -> None:
    """A revisit of a task the agent still solves needs no shift: the detector is also scored
    on the switches whose incoming task was below 0.8 when its window opened."""
    cfg = make_config(phases=[("a", 1000), ("b", 1000), ("a", 1000), ("b", 1000)], blur=200)
    truth = rep.config_stream_truth(cfg)
    assert truth.boundaries.tolist() == [1000, 2000, 3000]
    run = rep.RunRecord(
        path=Path("r"),
        method="m",
        seed=0,
        setting="",
        base_setting="",
        strength=None,
        strength_name=None,
        metrics={},
        tasks=["a", "b"],
        eval_steps=np.array([0.0, 800.0, 1800.0, 2800.0, 3900.0]),
        # b unsolved at 800; a solved at 1800; b still solved at 2800
        success=np.array([[0, 0], [1, 0], [1, 1], [0.5, 1], [1, 1]], dtype=float),
    )
    unsolved = rep.unsolved_at_switches(run, cfg, truth)
    # windows open at 900, 1900, 2900: b (0 at 800), a (1 at 1800), b (1 at 2800)
    assert unsolved.tolist() == [True, False, False]
    events = rep.RunEvents(np.array([]), np.array([1200.0]), source="test")
    score = rep.score_detector(events, truth, unsolved)
    assert score.detected == pytest.approx(1 / 3) and score.detected_unsolved == 1.0
    assert math.isnan(rep.score_detector(events, truth).detected_unsolved)  # unknown
    # tasks of another kind than the schedule's names: unknown, not guessed
    other = rep.RunRecord(**{**run.__dict__, "tasks": ["x", "y"]})
    assert rep.unsolved_at_switches(other, cfg, truth) is None


def test_read_events_from_tensorboard_metrics_and_counters(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", "si_plateau", 0, 0.5)
    write_events(run, settled=[20480, 61440], shift=[36864], end=98304)
    ev = rep.read_events(run)
    assert ev.source == "tensorboard"
    assert ev.settled.tolist() == [20480, 61440] and ev.shift.tolist() == [36864]

    # a resumed run: the later file replaces the earlier one's values from its first step on
    write_events(run, settled=[71680], shift=[], end=98304, start=53248, stamp=1_800_000_000)
    ev = rep.read_events(run)
    assert ev.settled.tolist() == [20480, 71680] and ev.shift.tolist() == [36864]

    # logs from before the event scalars: the counters' increments
    old = write_run(tmp_path / "old", "si_plateau", 0, 0.5)
    write_events(
        old,
        settled=[4096, 8192],
        shift=[6144],
        end=10240,
        counters=True,
        tags=("continual/consolidations", "continual/shifts"),
    )
    ev = rep.read_events(old)
    assert ev.settled.tolist() == [4096, 8192] and ev.shift.tolist() == [6144]

    # event steps in metrics.json come first
    listed = write_run(
        tmp_path / "m",
        "si_plateau",
        0,
        0.5,
        run_extra={"consolidation_steps": [5, 1], "shift_steps": [3]},
    )
    ev = rep.read_events(listed)
    assert ev.source == "metrics.json" and ev.settled.tolist() == [1, 5]

    with pytest.raises(ValueError, match="no TensorBoard files"):
        rep.read_events(write_run(tmp_path / "none", "si_plateau", 0, 0.5))


PHASES = (("north", 32768), ("southwest", 32768), ("east", 32768))


def recorded_stream(blur: int) -> dict:
    """The record's stream block of :data:`PHASES`."""
    return {
        "tasks": [t for t, _ in PHASES],
        "windows": [[0, 32768], [32768, 65536], [65536, 98304]],
        "boundaries": [32768, 65536],
        "blur": blur,
        "joint": False,
    }


def blur_study(root: Path, recorded: bool = False) -> Path:
    """si_plateau over stream.blur (2 seeds each) plus an oracle run; 3 phases of 32768.

    ``recorded``: the runs' records hold the stream (as train.py writes them now), and their
    configs' streams are wrong (one phase, no blur), so only the record gives the switches.
    """

    def config(trigger: str, blur: int, seed: int = 0) -> dict:
        if recorded:
            return make_config(trigger=trigger, blur=0, seed=seed, phases=[("north", 98304)])
        return make_config(trigger=trigger, blur=blur, seed=seed, phases=PHASES)

    def stream(blur: int) -> dict | None:
        return recorded_stream(blur) if recorded else None

    job = 0
    events = {  # (blur, seed) -> (settled, shift)
        (0, 0): ([20480, 55296], [34816, 77824]),  # lags 2048, 12288
        (0, 1): ([20480], [40960]),  # lag 8192; second switch missed
        (8192, 0): ([20480, 51200, 90112], [30720, 69632]),  # -2048, 4096
        (8192, 1): ([20480, 45056], [30720, 34816, 92160]),  # -2048, 26624 (late)
    }
    for (blur, seed), (settled, shift) in events.items():
        d = write_run(
            root / str(job),
            "si_plateau",
            seed,
            0.5,
            (f"stream.blur={blur}",),
            1.0,
            config=config("plateau", blur, seed),
            run_extra={"num_timesteps": 98304},
            stream=stream(blur),
        )
        write_events(d, settled, shift, end=98304)
        job += 1
    oracle = write_run(
        root / str(job),
        "si_boundary",
        0,
        0.5,
        ("stream.blur=0",),
        1.0,
        config=config("boundary", 0),
        stream=stream(0),
    )
    write_events(oracle, [34816, 67584], [34816, 67584], end=98304)
    # a plateau run whose TensorBoard files are gone: listed, not fatal
    write_run(
        root / "lost",
        "si_plateau",
        2,
        0.5,
        ("stream.blur=0",),
        1.0,
        config=config("plateau", 0),
        stream=stream(0),
    )
    return root


@pytest.mark.parametrize("recorded", [False, True], ids=["config", "record"])
def test_detector_quality_per_blur(tmp_path: Path, recorded: bool) -> None:
    res = rep.detector_quality(rep.load_runs([blur_study(tmp_path / "s", recorded)]).runs)
    assert [p.name for p, _ in res.skipped] == ["lost"]
    assert len(res.per_run) == 4 and set(res.per_run.trigger) == {"plateau"}
    t = res.table.set_index("setting")
    assert list(t.index) == ["stream.blur=0", "stream.blur=8192"]
    b0, b8 = t.loc["stream.blur=0"], t.loc["stream.blur=8192"]
    assert (b0.n_runs, b0.blur, b0.switches) == (2, 0, 2)
    # per run: detected 1.0 and 0.5; shift lags (median of 2048, 12288) = 7168 and 8192
    assert (b0.detected_median, b0.detected_min, b0.detected_max) == (0.75, 0.5, 1.0)
    assert (b0.shift_lag_median, b0.shift_lag_min, b0.shift_lag_max) == (7680, 7168, 8192)
    # consolidations: run 0 at 55296 (lag 22528), run 1 none after a switch
    assert (b0.consolidation_lag_median, b0.consolidated_min) == (22528, 0.0)
    assert b0.false_shifts_max == 0
    assert b0.consolidations_per_phase_median == pytest.approx((2 / 3 + 1 / 3) / 2)
    # run 0: lags -2048 (within the blur) and 4096; run 1: -2048 and 26624 (92160, more
    # than half a phase late but the first in its window: a late detection, not a false one;
    # 34816 repeats the first switch's detection: false)
    assert (b8.shift_lag_min, b8.shift_lag_max) == (1024, 12288)
    assert b8.detected_min == 1.0
    assert (b8.false_shifts_min, b8.false_shifts_max) == (0, 1)

    both = rep.detector_quality(rep.load_runs([tmp_path / "s"]).runs, ["plateau", "boundary"])
    oracle = both.table[both.table.trigger == "boundary"].iloc[0]
    assert oracle.shift_lag_median == 2048 and oracle.detected_median == 1.0


def test_report_writes_the_detector_table(tmp_path: Path) -> None:
    study = blur_study(tmp_path / "s")
    r = rep.write_report([study], out_dir=tmp_path / "o", n_boot=50)
    assert r.detector is not None
    csv = pd.read_csv(r.out_dir / "detector.csv")
    assert len(csv) == 2 and {"shift_lag_median", "false_shifts_max"} <= set(csv)
    md = r.markdown.read_text()
    assert "## Detector quality" in md and "Runs with trigger `plateau`" in md
    assert (
        "| si_plateau (plateau) | `stream.blur=0` | 2 | 0 | 2 | 0.75 [0.50, 1.00] | "
        "7680 [7168, 8192] |"
    ) in md
    assert "- not scored: `" in md and "no TensorBoard files" in md
    assert "![detector against its targets](detector.png)" in md
    assert r.plots["detector"].read_bytes().startswith(PNG_MAGIC)
    # the CLI chooses the triggers; none at all drops the section
    assert (
        report_main(
            [
                str(study),
                "--out",
                str(tmp_path / "c"),
                "--n-boot",
                "20",
                "--detector-triggers",
                "plateau,boundary",
            ]
        )
        == 0
    )
    assert len(pd.read_csv(tmp_path / "c" / "detector.csv")) == 3
    assert (
        report_main(
            [str(study), "--out", str(tmp_path / "n"), "--n-boot", "20", "--detector-triggers", ""]
        )
        == 0
    )
    assert not (tmp_path / "n" / "detector.csv").exists()
    assert "Detector quality" not in (tmp_path / "n" / "report.md").read_text()


def test_runs_without_config_or_task_free_trigger_have_no_detector_table(
    tmp_path: Path,
) -> None:
    r = rep.write_report([sweep_study(tmp_path / "s")], out_dir=tmp_path / "o", n_boot=20)
    assert r.detector is None and not (r.out_dir / "detector.csv").exists()
