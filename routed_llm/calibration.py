"""Pick a router's cost knob (`cost_weight`, lambda) for a budget, on the user's own prompts.

Every router routes by ``P(correct) - cost_weight * expected_cost / max(expected_cost)``, so
one number trades quality for cost. `calibrate` finds the number that meets a target on a
sample of prompts:

* ``target_mean_cost``: the smallest cost weight (hence the best quality) whose mean expected
  cost per call is at most the target. The chosen model's cost never increases with the
  cost weight, so a grid plus bisection finds it exactly.
* ``target_share=(model, share)``: the cost weight whose share of calls routed to `model` is
  closest to `share` (the smallest such weight on ties).

Example:
    >>> lam = calibrate(router, my_prompts, target_mean_cost=0.002)  # doctest: +SKIP
    >>> router.set_params(cost_weight=lam)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .errors import ConfigError, DataError, RoutingError

if TYPE_CHECKING:
    from .routers.base import Router

__all__ = ["calibrate", "routed_choices"]

_GRID = np.concatenate([[0.0], np.logspace(-4, 3, 141)])
_BISECT_STEPS = 40


def routed_choices(proba: NDArray[np.float64], costs: NDArray[np.float64], cost_weight: float) -> NDArray[np.intp]:
    """Column chosen for each row of `proba` at `cost_weight` (same rule as `Router.route`)."""
    from .routers.base import utilities

    util = utilities(proba, costs, cost_weight)
    # ties go to the cheaper model, as in Router.decide (lexsort on cost)
    order = np.lexsort((np.broadcast_to(costs, util.shape), -util), axis=1)
    return order[:, 0]


def calibrate(
    router: Router,
    prompts: Sequence[str],
    *,
    target_mean_cost: float | None = None,
    target_share: tuple[str, float] | None = None,
    candidates: Collection[str] | None = None,
) -> float:
    """The `cost_weight` that meets a budget target on `prompts`.

    Args:
        router: A fitted router.
        prompts: A sample of your own prompts (a few hundred is plenty).
        target_mean_cost: Mean expected cost per call to stay under (the router's cost unit,
            USD for priced datasets).
        target_share: ``(model, share)``: route this share of calls (0..1) to `model`.
        candidates: Models you will route among (default: every model of the router).

    Returns:
        The cost weight; pass it to ``router.set_params(cost_weight=...)`` or to `route`.

    Raises:
        ConfigError: Not exactly one target is given, or the target cannot be reached with
            these candidates (the message gives the reachable range).
        DataError: `prompts` is empty or not a list of strings.
        RoutingError: A candidate (or the target model) has no profile in the router.
        NotFittedError: The router is not fitted.
    """
    router.check_is_fitted()
    if (target_mean_cost is None) == (target_share is None):
        msg = "give exactly one of target_mean_cost=... or target_share=(model, share)"
        raise ConfigError(msg)
    if isinstance(prompts, str) or len(prompts) == 0:
        msg = "calibrate() needs a non-empty list of prompts (a sample of your own traffic)"
        raise DataError(msg)
    names = list(router.models_) if candidates is None else list(dict.fromkeys(candidates))
    unknown = [c for c in names if c not in router.profiles_]
    if unknown or not names:
        msg = f"no profile for candidates {unknown}; profiled models: {router.models_}" if unknown else "no candidate"
        raise RoutingError(msg, excluded={c: "no profile" for c in unknown})
    idx = np.array([router.models_.index(c) for c in names], dtype=np.intp)
    proba = router.predict_proba(list(prompts))[:, idx]
    costs = router.expected_costs_[idx].astype(np.float64)
    if target_mean_cost is not None:
        return _for_mean_cost(proba, costs, float(target_mean_cost), router.cost_unit_)
    assert target_share is not None
    return _for_share(proba, costs, names, target_share)


def _mean_cost(proba: NDArray[np.float64], costs: NDArray[np.float64], lam: float) -> float:
    return float(costs[routed_choices(proba, costs, lam)].mean())


def _for_mean_cost(proba: NDArray[np.float64], costs: NDArray[np.float64], target: float, unit: str) -> float:
    if not isinstance(target, float) or math.isnan(target) or target < 0:
        msg = f"target_mean_cost must be a number >= 0, got {target!r}"
        raise ConfigError(msg)
    floor = _mean_cost(proba, costs, math.inf)
    top = _mean_cost(proba, costs, 0.0)
    if target >= top:
        return 0.0
    if target < floor * (1 - 1e-12):
        msg = (
            f"target_mean_cost {target:g} {unit} is unreachable: always routing to the cheapest "
            f"candidate costs {floor:g} {unit} per call on these prompts (quality-only routing costs "
            f"{top:g}); raise the target or add a cheaper model"
        )
        raise ConfigError(msg)
    costs_on_grid = [_mean_cost(proba, costs, float(lam)) for lam in _GRID]
    ok = [i for i, c in enumerate(costs_on_grid) if c <= target]
    if not ok:  # only "always cheapest" meets it: the grid's top is not large enough
        lo, hi = float(_GRID[-1]), float(_GRID[-1]) * 1e6
        if _mean_cost(proba, costs, hi) > target:
            return math.inf
    else:
        i = ok[0]
        if i == 0:
            return 0.0
        lo, hi = float(_GRID[i - 1]), float(_GRID[i])
    for _ in range(_BISECT_STEPS):  # invariant: cost(lo) > target >= cost(hi)
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if _mean_cost(proba, costs, mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def _for_share(
    proba: NDArray[np.float64], costs: NDArray[np.float64], names: list[str], target: tuple[str, float]
) -> float:
    if not (isinstance(target, tuple | list) and len(target) == 2):
        msg = f"target_share must be (model, share), got {target!r}"
        raise ConfigError(msg)
    model, share = target
    if model not in names:
        msg = f"target_share model {model!r} is not among the candidates {names}"
        raise RoutingError(msg, excluded={model: "not a candidate"})
    if not isinstance(share, int | float) or isinstance(share, bool) or not 0.0 <= share <= 1.0:
        msg = f"target_share share must be a number in [0, 1], got {share!r}"
        raise ConfigError(msg)
    j = names.index(model)
    lams = np.concatenate([_GRID, [math.inf]])
    shares = np.array([(routed_choices(proba, costs, float(lam)) == j).mean() for lam in lams])
    lo, hi = float(shares.min()), float(shares.max())
    tol = 0.5 / proba.shape[0] + 1e-12
    if share < lo - tol - 0.02 or share > hi + tol + 0.02:
        msg = (
            f"target_share {share:g} for {model!r} is unreachable: over all cost weights it gets "
            f"between {lo:.3f} and {hi:.3f} of these prompts"
        )
        raise ConfigError(msg)
    best = int(np.argmin(np.abs(shares - share)))  # first (smallest lambda) among ties
    return float(lams[best])
