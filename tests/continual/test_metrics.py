"""Continual-learning metrics on hand-made success matrices with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from continual.metrics import (
    auc,
    average_forgetting,
    average_performance,
    forgetting,
    forward_transfer,
    plasticity,
    relearn,
    steps_to_threshold,
    summarize,
    window_end_index,
)

# Three tasks trained in windows [0,100), [100,200), [200,300); evaluations every 50 steps.
STEPS = np.array([0, 50, 100, 150, 200, 250, 300])
WINDOWS = [(0, 100), (100, 200), (200, 300)]
#              A    B    C
S = np.array(
    [
        [0.0, 0.0, 0.0],  # 0
        [0.5, 0.0, 0.0],  # 50
        [1.0, 0.0, 0.0],  # 100  end of A's window
        [0.5, 0.5, 0.0],  # 150
        [0.0, 1.0, 0.2],  # 200  end of B's window
        [0.0, 0.5, 0.6],  # 250
        [0.2, 0.5, 1.0],
    ]
)  # 300  end of C's window = final


def test_average_performance_is_mean_of_final_row() -> None:
    assert average_performance(S) == pytest.approx((0.2 + 0.5 + 1.0) / 3)


def test_window_end_index_takes_last_eval_at_or_before_end() -> None:
    assert window_end_index(STEPS, 100) == 2
    assert window_end_index(STEPS, 120) == 2
    assert window_end_index(STEPS, 300) == 6
    assert window_end_index(STEPS, -5) == 0


def test_plasticity_is_success_at_end_of_own_window() -> None:
    np.testing.assert_allclose(plasticity(S, STEPS, WINDOWS), [1.0, 1.0, 1.0])


def test_forgetting_excludes_task_without_later_training() -> None:
    f = forgetting(S, STEPS, WINDOWS)
    np.testing.assert_allclose(f[:2], [1.0 - 0.2, 1.0 - 0.5])
    assert math.isnan(f[2])
    assert average_forgetting(S, STEPS, WINDOWS) == pytest.approx((0.8 + 0.5) / 2)


def test_joint_run_has_no_forgetting() -> None:
    w = [(0, 300)] * 3
    assert np.all(np.isnan(forgetting(S, STEPS, w)))
    assert math.isnan(average_forgetting(S, STEPS, w))


def test_auc_trapezoid_whole_run_and_own_window() -> None:
    # Task A over [0, 300]: trapezoids of widths 50: (0+.5)+(.5+1)+(1+.5)+(.5+0)+(0+0)+(0+.2)
    # = 4.2 -> area 4.2*25 = 105 -> /300.
    a = auc(S, STEPS)
    assert a[0] == pytest.approx(105 / 300)
    # Constant curve has AUC equal to its value.
    assert auc(np.full((3, 1), 0.7), np.array([0, 10, 20]))[0] == pytest.approx(0.7)
    # Own windows: A over [0,100]: (0+.5+.5+1)*25/100 = 0.5; B over [100,200]: 0.5;
    # C over [200,300]: (.2+.6+.6+1)*25/100 = 0.6.
    own = auc(S, STEPS, [0, 100, 200], [100, 200, 300])
    np.testing.assert_allclose(own, [0.5, 0.5, 0.6])


def test_auc_interpolates_inside_interval_between_evals() -> None:
    # Linear 0 -> 1 over [0, 100]; AUC over [25, 75] is the value at 50.
    s = np.array([[0.0], [1.0]])
    assert auc(s, np.array([0, 100]), 25, 75)[0] == pytest.approx(0.5)
    assert auc(s, np.array([0, 100]), 50, 50)[0] == pytest.approx(0.5)


def test_forward_transfer_normalised_against_reference() -> None:
    ft = forward_transfer(np.array([0.5, 0.5, 0.6]), np.array([0.5, 0.0, 1.0]))
    assert ft[0] == pytest.approx(0.0)
    assert ft[1] == pytest.approx(0.5)
    assert math.isnan(ft[2])
    # Worse than the reference is negative.
    assert forward_transfer(np.array([0.25]), np.array([0.5]))[0] == pytest.approx(-0.5)


def test_summarize_is_json_ready_with_reference() -> None:
    m = summarize(S, STEPS, WINDOWS, ["A", "B", "C"], reference_auc={"A": 0.5, "B": 0.0})
    json.dumps(m)  # NaN must have become None
    assert m["average_performance"] == pytest.approx(1.7 / 3)
    assert m["average_forgetting"] == pytest.approx(0.65)
    assert m["average_plasticity"] == pytest.approx(1.0)
    assert m["per_task"]["C"]["forgetting"] is None
    assert m["per_task"]["B"]["forward_transfer"] == pytest.approx(0.5)
    assert m["per_task"]["C"]["forward_transfer"] is None
    assert m["forward_transfer"] == pytest.approx(0.25)
    assert summarize(S, STEPS, WINDOWS, ["A", "B", "C"])["forward_transfer"] is None


@pytest.mark.parametrize(
    ("s", "steps", "match"),
    [
        (np.zeros((3,)), np.arange(3), "S must have shape"),
        (np.zeros((3, 2)), np.arange(2), "eval_steps must have shape"),
        (np.zeros((3, 2)), np.array([0, 2, 1]), "strictly increasing"),
    ],
)
def test_bad_shapes_raise(s: np.ndarray, steps: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plasticity(s, steps, [(0, 1)] * (s.shape[1] if s.ndim == 2 else 1))


def test_bad_windows_raise() -> None:
    with pytest.raises(ValueError, match="windows must have shape"):
        forgetting(S, STEPS, [(0, 1)])


def test_steps_to_threshold_counts_from_the_window_start_within_the_window() -> None:
    steps = np.array([0, 10, 20, 30, 40, 50, 60])
    S = np.array(
        [
            [0.0, 0.0, 0.0],
            [0.5, 0.0, 0.0],
            [0.9, 0.0, 0.0],  # task a learned 20 steps into [0, 20)
            [0.9, 0.5, 0.0],
            [0.0, 1.0, 0.0],  # task b learned 20 steps into [20, 40)
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.9],  # task c: only after its window [40, 50) ended
        ]
    )
    windows = [(0, 20), (20, 40), (40, 50)]
    got = steps_to_threshold(S, steps, windows, threshold=0.8)
    np.testing.assert_array_equal(got[:2], [20.0, 20.0])
    assert np.isnan(got[2])


def test_relearn_cost_against_the_first_task_and_against_a_reference() -> None:
    steps = np.arange(0, 130, 10)
    S = np.zeros((len(steps), 3))
    S[1:, 0] = 1.0  # a: 10 steps from scratch, in [0, 40)
    S[8:, 1] = 1.0  # b: 40 steps into [40, 80): cost 4
    S[10:, 2] = 1.0  # c: 20 steps into [80, 120): cost 2
    windows = [(0, 40), (40, 80), (80, 120)]
    r = relearn(S, steps, windows, ["a", "b", "c"])
    assert r["scratch"] == "a" and r["steps_to_threshold"] == {"a": 10.0, "b": 40.0, "c": 20.0}
    assert r["cost"] == {"a": 1.0, "b": 4.0, "c": 2.0}
    assert r["cost_by_position"] == [1.0, 4.0, 2.0]
    assert r["median_cost"] == 3.0 and r["unlearned"] == []
    ref = relearn(S, steps, windows, ["a", "b", "c"], scratch_steps={"a": 5, "b": 20, "c": 40})
    assert ref["scratch"] == "reference"
    assert ref["cost"] == {"a": 2.0, "b": 2.0, "c": 0.5} and ref["median_cost"] == 1.25


def test_an_unlearned_task_counts_as_infinitely_costly_in_the_median() -> None:
    steps = np.arange(0, 130, 10)
    S = np.zeros((len(steps), 3))
    S[1:, 0] = 1.0
    S[6:, 1] = 1.0  # b: 20 steps into its window: cost 2
    windows = [(0, 40), (40, 80), (80, 120)]  # c is never learned
    r = relearn(S, steps, windows, ["a", "b", "c"])
    assert r["unlearned"] == ["c"] and r["cost"]["c"] is None
    assert r["median_cost"] is None  # the median of [2, inf] is inf
    S[12, 2] = 1.0  # c learned at the last evaluation, 40 steps in
    assert relearn(S, steps, windows, ["a", "b", "c"])["median_cost"] == 3.0
    with pytest.raises(ValueError, match="threshold"):
        relearn(S, steps, windows, ["a", "b", "c"], threshold=0.0)


def test_a_revisit_costs_its_steps_to_the_threshold_and_a_kept_task_costs_nothing() -> None:
    """A B A B: the first visits give the relearn cost, the later ones the revisit cost."""
    steps = np.arange(0, 170, 10)
    S = np.zeros((len(steps), 2))
    S[2:, 0] = 1.0  # a: 20 steps from scratch in [0, 40), kept through its revisit [80, 120)
    S[6:, 1] = 1.0  # b: 20 steps into [40, 80): cost 1
    S[12:, 1] = 0.0  # b forgotten during a's revisit, ...
    S[15:, 1] = 1.0  # ... re-learned 30 steps into its revisit [120, 160): cost 1.5
    visits = [("a", 0, 40), ("b", 40, 80), ("a", 80, 120), ("b", 120, 160)]
    r = relearn(S, steps, [(80, 120), (120, 160)], ["a", "b"], visits=visits)
    assert r["steps_to_threshold"] == {"a": 20.0, "b": 20.0}
    assert r["cost"] == {"a": 1.0, "b": 1.0} and r["median_cost"] == 1.0
    assert [(v["task"], v["start"], v["steps_to_threshold"]) for v in r["revisits"]] == [
        ("a", 80, 0.0),
        ("b", 120, 30.0),
    ]
    assert [v["cost"] for v in r["revisits"]] == [0.0, 1.5]
    assert r["median_revisit_cost"] == 0.75
    S[15:, 1] = 0.0  # b never re-learned: its revisit counts as infinitely costly
    r = relearn(S, steps, [(80, 120), (120, 160)], ["a", "b"], visits=visits)
    assert r["revisits"][1]["cost"] is None and r["median_revisit_cost"] is None
    first_windows = [(0, 40), (40, 80)]
    without = relearn(S, steps, first_windows, ["a", "b"])
    assert without["revisits"] == [] and without["median_revisit_cost"] is None
    assert without["cost"] == r["cost"]
    with pytest.raises(ValueError, match="not in task_names"):
        relearn(S, steps, first_windows, ["a", "b"], visits=[("c", 0, 10)])
