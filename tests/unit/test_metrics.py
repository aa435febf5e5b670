"""Metrics of the evaluation protocol, each checked on small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from routed_llm.evaluation.metrics import area, hull_value, qnc, sign_test, upper_hull
from routed_llm.evaluation.report import summarise


def _hull(points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*points, strict=True)
    return upper_hull(xs, ys)


# Points used by several tests:
#   A=(0.2, 0.4)  B=(0.4, 0.5)  C=(0.6, 0.8)
#   D=(0.5, 0.3)  dominated by B (costlier and worse)
#   E=(0.8, 0.7)  dominated by C
#   F=(0.2, 0.35) same cost as A, worse
# Pareto front: A, B, C. The chord A-C at x=0.4 is 0.4 + (0.8-0.4) * (0.2/0.4) = 0.6 > 0.5,
# so B is under the chord and the hull is A, C.
MIXED = [(0.5, 0.3), (0.4, 0.5), (0.8, 0.7), (0.6, 0.8), (0.2, 0.35), (0.2, 0.4)]


def test_hull_drops_dominated_and_non_convex_points() -> None:
    hx, hy = _hull(MIXED)
    assert hx.tolist() == [0.2, 0.6]
    assert hy.tolist() == [0.4, 0.8]


def test_hull_keeps_a_point_above_the_chord() -> None:
    # B'=(0.4, 0.65) is above the chord A-C (0.6 at x=0.4), so it stays a vertex.
    hx, hy = _hull([(0.2, 0.4), (0.4, 0.65), (0.6, 0.8)])
    assert hx.tolist() == [0.2, 0.4, 0.6]
    assert hy.tolist() == [0.4, 0.65, 0.8]


def test_hull_drops_collinear_middle_point() -> None:
    # (0.5, 0.5) lies on the segment (0,0)-(1,1): not a vertex; the area is unchanged (0.5).
    hull = _hull([(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)])
    assert hull[0].tolist() == [0.0, 1.0]
    assert area(hull) == pytest.approx(0.5)


def test_hull_is_non_decreasing_and_cut_after_the_most_accurate_point() -> None:
    # (0.9, 0.5) is dearer and worse than (0.3, 0.7): the hull stops at 0.7 and stays flat.
    hull = _hull([(0.1, 0.2), (0.3, 0.7), (0.9, 0.5)])
    assert hull[0].tolist() == [0.1, 0.3]
    assert hull_value(hull, [0.0, 0.05, 0.2, 0.3, 0.9, 1.0]).tolist() == pytest.approx(
        [0.2, 0.2, 0.45, 0.7, 0.7, 0.7]  # 0.2 flat left; at 0.2 halfway from 0.2 to 0.7 = 0.45
    )


def test_area_and_area_50_with_flat_extensions() -> None:
    hull = _hull(MIXED)  # vertices (0.2, 0.4), (0.6, 0.8)
    # [0, 0.2] flat at 0.4: 0.2 * 0.4 = 0.08
    # [0.2, 0.6] trapezoid: 0.4 * (0.4 + 0.8) / 2 = 0.24
    # [0.6, 1] flat at 0.8: 0.4 * 0.8 = 0.32          total 0.64
    assert area(hull) == pytest.approx(0.64)
    # area_50: 0.08 + [0.2, 0.5] with value at 0.5 = 0.4 + 0.4 * 0.3/0.4 = 0.7:
    # 0.3 * (0.4 + 0.7) / 2 = 0.165                   total 0.245 (not rescaled)
    assert area(hull, 0.5) == pytest.approx(0.245)


def test_area_of_a_single_point_is_flat_everywhere() -> None:
    hull = _hull([(0.3, 0.6)])
    assert area(hull) == pytest.approx(0.6)  # 1.0 * 0.6
    assert area(hull, 0.5) == pytest.approx(0.3)  # 0.5 * 0.6


def test_area_clips_points_costlier_than_the_unit() -> None:
    # Hull (0.5, 0.5)-(1.5, 1.0); at cost 1 it is 0.5 + 0.5 * 0.5/1.0 = 0.75.
    # 0.5 * 0.5 (flat) + 0.5 * (0.5 + 0.75) / 2 = 0.25 + 0.3125 = 0.5625
    assert area(_hull([(0.5, 0.5), (1.5, 1.0)])) == pytest.approx(0.5625)


def test_qnc_at_the_best_models_own_point() -> None:
    # The best model is C (accuracy 0.8 at cost 0.6); the hull reaches 0.8 at 0.6: 0.6/0.6.
    assert qnc(_hull(MIXED), 0.8, 0.6) == pytest.approx(1.0)


def test_qnc_interpolates_along_a_hull_segment() -> None:
    # Target 0.6 on segment (0.2, 0.4)-(0.6, 0.8): x = 0.2 + (0.6-0.4) * 0.4/0.4 = 0.4; 0.4/0.6.
    assert qnc(_hull(MIXED), 0.6, 0.6) == pytest.approx(0.4 / 0.6)


def test_qnc_reached_before_the_best_models_cost() -> None:
    # Router hull (0.1, 0.5)-(0.3, 0.9); best model: accuracy 0.8 at cost 0.5.
    # x = 0.1 + (0.8-0.5) * 0.2/0.4 = 0.25, so qnc = 0.25 / 0.5 = 0.5.
    assert qnc(_hull([(0.1, 0.5), (0.3, 0.9)]), 0.8, 0.5) == pytest.approx(0.5)


def test_qnc_unreached_is_infinite() -> None:
    # The hull tops out at 0.8 < 0.85.
    assert qnc(_hull(MIXED), 0.85, 0.6) == math.inf


def test_qnc_tolerance_counts_a_float_tie_as_reached() -> None:
    hull = _hull([(0.1, 0.1 + 0.2), (0.5, 0.7)])  # 0.1 + 0.2 = 0.30000000000000004
    assert qnc(hull, 0.3, 0.5) == pytest.approx(0.1 / 0.5)
    assert qnc(_hull([(0.2, 0.8 - 1e-13)]), 0.8, 0.4) == pytest.approx(0.5)
    assert qnc(_hull([(0.2, 0.8 - 1e-9)]), 0.8, 0.4) == math.inf


def test_qnc_is_not_below_the_cheapest_vertex() -> None:
    # The cheapest point (0.2, 0.9) already beats the target 0.8: the cost is 0.2, not the
    # flat extension's 0: 0.2 / 0.5 = 0.4.
    assert qnc(_hull([(0.2, 0.9)]), 0.8, 0.5) == pytest.approx(0.4)


def test_upper_hull_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        upper_hull([], [])
    with pytest.raises(ValueError, match="finite"):
        upper_hull([0.1, np.nan], [0.2, 0.3])


def test_sign_test_exact_binomial() -> None:
    a = [1.0] * 8 + [0.0] * 2 + [0.5]
    b = [0.0] * 8 + [1.0] * 2 + [0.5]
    # 8 wins, 2 losses, 1 tie: n=10, P(X <= 2) = (1 + 10 + 45) / 1024 = 56/1024; p = 2 * that.
    out = sign_test(a, b)
    assert (out["wins"], out["losses"], out["ties"]) == (8, 2, 1)
    assert out["p_value"] == pytest.approx(112 / 1024)
    # 5 wins, 0 losses: p = 2 / 32 = 0.0625.
    assert sign_test([1.0] * 5, [0.0] * 5)["p_value"] == pytest.approx(0.0625)
    # Only ties: p = 1.
    assert sign_test([1.0, 2.0], [1.0, 2.0]) == {"wins": 0, "losses": 0, "ties": 2, "p_value": 1.0}


def test_sign_test_lower_is_better_and_infinities() -> None:
    # qnc: a = 0.3 beats b = 0.5; inf vs inf is a tie; inf vs 0.4 is a loss.
    out = sign_test([0.3, math.inf, math.inf], [0.5, math.inf, 0.4], higher_is_better=False)
    assert (out["wins"], out["losses"], out["ties"]) == (1, 1, 1)
    assert out["p_value"] == pytest.approx(1.0)  # n=2, k=1: 2 * (1 + 2) / 4 capped at 1


@pytest.mark.slow  # importing scipy takes seconds
def test_sign_test_matches_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.random(17), rng.random(17)
    ours = sign_test(list(a), list(b))
    ref = scipy_stats.binomtest(ours["wins"], ours["wins"] + ours["losses"], 0.5).pvalue
    assert ours["p_value"] == pytest.approx(ref)


def test_summarise_counts_unreached_as_the_largest_finite_value() -> None:
    s = summarise([0.5, math.inf, 0.3])
    # inf -> 0.5: values 0.5, 0.5, 0.3; mean 1.3/3; sample std: deviations 1/15, 1/15, -2/15,
    # squares sum 6/225, / 2 = 3/225, sqrt = 0.11547
    assert s["per_seed"] == [0.5, None, 0.3]
    assert s["mean"] == pytest.approx(1.3 / 3)
    assert s["std"] == pytest.approx(math.sqrt(3 / 225))
    assert s["unreached"] == 1
    assert s["unreached_as"] == 0.5
    assert summarise([math.inf, math.inf])["mean"] is None
    one = summarise([0.25])
    assert one == {"mean": 0.25, "std": 0.0, "per_seed": [0.25]}
