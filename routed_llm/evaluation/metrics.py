"""Cost/quality metrics of the routing evaluation protocol (pure NumPy).

Conventions (see ``docs/evaluation.md`` and ``shared/data/README.md``):

* A router gives one point ``(normalised mean cost, mean score)`` per cost trade-off.
* `upper_hull` keeps the non-decreasing upper convex hull of the points. As a function of
  cost it is extended flat to the left of its cheapest vertex and flat to the right of its
  most accurate vertex (`hull_value`, which is `numpy.interp`).
* `area` integrates that function over ``[0, upto]`` (not rescaled: ``area_50`` of a
  router that is perfect everywhere is 0.5).
* `qnc` is the smallest cost, no lower than the cheapest vertex, at which the hull reaches
  a target accuracy, divided by a reference cost; ``inf`` when never reached.
* `sign_test` is the exact two-sided binomial sign test used to compare routers seed by seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["QNC_TOL", "area", "hull_value", "qnc", "sign_test", "upper_hull"]

QNC_TOL = 1e-12
"""Tolerance when testing whether the hull reaches the target accuracy."""

FloatArray = NDArray[np.float64]


def upper_hull(costs: ArrayLike, scores: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Vertices of the non-decreasing upper convex hull of the points ``(costs, scores)``.

    A point is kept only if no cheaper-or-equal point is at least as accurate (Pareto
    front), and then only if it lies strictly above the chord of its hull neighbours.

    Args:
        costs: Cost of each point (any finite values; normalised cost in the protocol).
        scores: Score (accuracy) of each point.

    Returns:
        ``(x, y)``: vertex costs strictly increasing, vertex scores strictly increasing,
        slopes strictly decreasing. At least one vertex.

    Raises:
        ValueError: No point, shapes differ, or a value is not finite.
    """
    x = np.asarray(costs, dtype=np.float64).ravel()
    y = np.asarray(scores, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        msg = f"upper_hull needs as many costs as scores (at least one), got {x.size} and {y.size}"
        raise ValueError(msg)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        msg = "upper_hull needs finite costs and scores"
        raise ValueError(msg)
    order = np.lexsort((-y, x))  # cheapest first; among equal costs the most accurate first
    front: list[tuple[float, float]] = []
    for i in order:
        xi, yi = float(x[i]), float(y[i])
        if front and yi <= front[-1][1]:
            continue  # dominated: a cheaper (or equally cheap) point is at least as accurate
        front.append((xi, yi))
    hull: list[tuple[float, float]] = []
    for p in front:
        while len(hull) >= 2 and _not_below_chord(hull[-2], hull[-1], p):
            hull.pop()
        hull.append(p)
    hx = np.array([p[0] for p in hull])
    hy = np.array([p[1] for p in hull])
    return hx, hy


def _not_below_chord(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> bool:
    """True when `b` lies on or below the segment from `a` to `c` (so `b` is not a vertex)."""
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return cross >= 0.0


def hull_value(hull: tuple[FloatArray, FloatArray], cost: ArrayLike) -> FloatArray:
    """The hull as a function of cost: linear between vertices, flat beyond both ends."""
    hx, hy = hull
    return np.interp(np.asarray(cost, dtype=np.float64), hx, hy)


def area(hull: tuple[FloatArray, FloatArray], upto: float = 1.0) -> float:
    """Area under `hull_value` over normalised cost ``[0, upto]`` (exact, piecewise linear).

    Args:
        hull: Vertices from `upper_hull`.
        upto: Right end of the integration range (1.0 for ``area``, 0.5 for ``area_50``).
    """
    if not upto > 0:
        msg = f"upto must be > 0, got {upto!r}"
        raise ValueError(msg)
    hx, _ = hull
    inner = hx[(hx > 0.0) & (hx < upto)]
    grid = np.concatenate([[0.0], inner, [upto]])
    vals = hull_value(hull, grid)
    return float(np.sum((grid[1:] - grid[:-1]) * (vals[1:] + vals[:-1]) / 2.0))


def qnc(hull: tuple[FloatArray, FloatArray], target_score: float, reference_cost: float) -> float:
    """Quality-neutral cost: where the hull first reaches `target_score`, over `reference_cost`.

    The cost searched is never below the hull's cheapest vertex (the flat extension to its
    left is an area convention, not a reachable operating point).

    Args:
        hull: Vertices from `upper_hull`.
        target_score: Accuracy of the most accurate test-pool model.
        reference_cost: That model's normalised cost.

    Returns:
        The ratio, or ``inf`` when the hull never reaches `target_score` (within `QNC_TOL`).
    """
    hx, hy = hull
    goal = target_score - QNC_TOL
    if hy[-1] < goal:
        return math.inf
    i = int(np.argmax(hy >= goal))  # first vertex at or above the goal (hy is increasing)
    if i == 0:
        cost = float(hx[0])
    else:
        x0, y0, x1, y1 = float(hx[i - 1]), float(hy[i - 1]), float(hx[i]), float(hy[i])
        cost = x0 + (target_score - y0) * (x1 - x0) / (y1 - y0)
        cost = min(max(cost, x0), x1)
    if reference_cost > 0:
        return cost / reference_cost
    return 0.0 if cost <= 0 else math.inf


def sign_test(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool = True) -> dict[str, float | int]:
    """Exact two-sided paired sign test of `a` against `b` (same seeds, same order).

    Ties (including two infinities) are dropped. The p-value is
    ``min(1, 2 * P(X <= min(wins, losses)))`` with ``X ~ Binomial(wins + losses, 1/2)``.

    Returns:
        ``{"wins", "losses", "ties", "p_value"}`` where a win means `a` is better.
    """
    if len(a) != len(b):
        msg = f"sign_test needs paired values, got {len(a)} and {len(b)}"
        raise ValueError(msg)
    wins = losses = ties = 0
    for u, v in zip(a, b, strict=True):
        if u == v or (math.isnan(u) and math.isnan(v)):
            ties += 1
        elif (u > v) == higher_is_better:
            wins += 1
        else:
            losses += 1
    n = wins + losses
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 1.0
    return {"wins": wins, "losses": losses, "ties": ties, "p_value": min(1.0, 2.0 * tail)}
