"""The dynamic-pool evaluation protocol: splits, one trial, and the loop over seeds.

One trial with seed ``s`` (``shared/data/README.md``):

1. ``unseen`` protocol: a random third of the models (rounded half up, at least 2) are
   unseen, the rest are training models. ``seen`` protocol: every model is a training model.
2. Prompts are split at random 60 % train / 10 % validation (the probe set) / 30 % test.
3. The router is fitted on (train + validation prompts) x training models with the
   validation prompts as its probes; unseen models join through `Router.add_model` from
   their validation outcomes only, with no refit. The test pool is the unseen models
   (``seen``: every model).
4. On the test prompts answered by every test-pool model (at least `MIN_TEST_PROMPTS`), each
   cost trade-off ``lambda`` routes every prompt: one point (mean realised cost, mean score).
5. Costs are normalised by the mean realised cost of the most expensive test-pool model;
   see `routed_llm.evaluation.metrics` for the hull and the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ..data import RoutingDataset
from ..embeddings import Embedder, get_embedder
from ..errors import ConfigError, DataError
from ..types import ModelProfile
from .metrics import area, qnc, upper_hull

__all__ = [
    "DEFAULT_LAMBDAS",
    "MIN_TEST_PROMPTS",
    "REFERENCE_ROUTERS",
    "Curve",
    "Protocol",
    "RouterSpec",
    "Split",
    "Trial",
    "embed_all",
    "make_split",
    "resolve_embedder",
    "resolve_routers",
    "run_trial",
    "subsample",
    "sweep",
]

Protocol = Literal["unseen", "seen"]

MIN_TEST_PROMPTS = 100
"""A trial with fewer test prompts answered by every test-pool model is an error."""

DEFAULT_LAMBDAS: tuple[float, ...] = (0.0, *(float(v) for v in np.logspace(-3, 3, 48)), math.inf)
"""Cost weights swept per trial: 0 (quality only), a log grid, and inf ("cheapest")."""

REFERENCE_ROUTERS = {
    "zero": "convex hull of the single test-pool models (no fitting; random mixing achieves it)",
    "oracle": "clairvoyant: routes with the true test scores and realised costs (reference only)",
}
"""Router names the harness computes itself; every other name comes from `ROUTERS`."""

SPLIT_FRACTIONS = (0.6, 0.1, 0.3)
"""Train / validation (probe) / test shares of the prompts."""


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """The random model and prompt split of one trial.

    Attributes:
        seed: The trial's seed.
        protocol: ``"unseen"`` or ``"seen"``.
        training_models: Models the router is fitted on.
        test_pool: Models routed between on the test prompts (unseen ones, or all).
        train_rows: Dataset rows of the training prompts.
        val_rows: Dataset rows of the validation prompts (the probe set).
        test_rows: Dataset rows of the test split that every test-pool model answered.
        n_test_split: Size of the test split before dropping incomplete prompts.
    """

    seed: int
    protocol: str
    training_models: tuple[str, ...]
    test_pool: tuple[str, ...]
    train_rows: NDArray[np.intp]
    val_rows: NDArray[np.intp]
    test_rows: NDArray[np.intp]
    n_test_split: int

    @property
    def unseen_models(self) -> tuple[str, ...]:
        """Test-pool models that are not training models (empty for ``seen``)."""
        return tuple(m for m in self.test_pool if m not in self.training_models)


def make_split(
    data: RoutingDataset, seed: int, protocol: Protocol = "unseen", *, min_test: int = MIN_TEST_PROMPTS
) -> Split:
    """Draw the model and prompt split of trial `seed`.

    Raises:
        ConfigError: Unknown protocol.
        DataError: Too few models, or fewer than `min_test` usable test prompts.
    """
    if protocol not in ("unseen", "seen"):
        msg = f"protocol must be 'unseen' or 'seen', got {protocol!r}"
        raise ConfigError(msg)
    rng = np.random.default_rng(seed)
    n_models = data.n_models
    if protocol == "unseen":
        n_unseen = max(2, _round_half_up(n_models / 3))
        if n_models - n_unseen < 1:
            msg = f"the unseen protocol needs at least 3 models (2 unseen + 1 training), {data.name!r} has {n_models}"
            raise DataError(msg)
        perm = rng.permutation(n_models)
        unseen = np.sort(perm[:n_unseen])
        train = np.sort(perm[n_unseen:])
        training_models = tuple(data.models[i] for i in train)
        test_pool = tuple(data.models[i] for i in unseen)
    else:
        if n_models < 2:
            msg = f"routing needs at least 2 models, {data.name!r} has {n_models}"
            raise DataError(msg)
        training_models = test_pool = tuple(data.models)
    n = data.n_prompts
    n_train = _round_half_up(n * SPLIT_FRACTIONS[0])
    n_val = _round_half_up(n * SPLIT_FRACTIONS[1])
    perm = rng.permutation(n)
    train_rows = np.sort(perm[:n_train])
    val_rows = np.sort(perm[n_train : n_train + n_val])
    test_split = np.sort(perm[n_train + n_val :])
    cols = data.model_index(test_pool)
    complete = ~np.isnan(data.scores[np.ix_(test_split, cols)]).any(axis=1)
    complete &= ~np.isnan(data.costs[np.ix_(test_split, cols)]).any(axis=1)
    test_rows = test_split[complete]
    if test_rows.size < min_test:
        msg = (
            f"trial seed={seed} ({protocol}) on {data.name!r}: only {test_rows.size} of {test_split.size} test prompts "
            f"have an outcome for every test-pool model (need at least {min_test}); use a dataset with more prompts, "
            "fewer missing outcomes, or a larger --max-prompts"
        )
        raise DataError(msg)
    return Split(
        seed=seed,
        protocol=protocol,
        training_models=training_models,
        test_pool=test_pool,
        train_rows=train_rows,
        val_rows=val_rows,
        test_rows=test_rows,
        n_test_split=int(test_split.size),
    )


# --------------------------------------------------------------------------- routers


@dataclass(frozen=True, slots=True)
class RouterSpec:
    """A router to evaluate: a name and, unless it is a reference router, a factory.

    Attributes:
        name: Report name (a `ROUTERS` name, ``zero`` or ``oracle``, or a custom one).
        factory: ``seed -> unfitted Router``; None for the reference routers.
    """

    name: str
    factory: Callable[[int], Any] | None = None


def resolve_routers(
    routers: Sequence[Any],
    *,
    embedder: Embedder,
    router_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[RouterSpec]:
    """Turn names (``"knn"``), ``"name:key=value,..."`` strings or `Router` instances into specs.

    Each fitted router gets ``random_state=seed`` and, unless it has its own, the harness's
    `embedder`, so every prompt is embedded once per machine.

    Raises:
        ConfigError: Unknown name, bad parameter, duplicate name, or no router.
    """
    from ..routers import ROUTERS, Router, get_router_class

    params = {k: dict(v) for k, v in (router_params or {}).items()}
    specs: list[RouterSpec] = []
    for item in routers:
        if isinstance(item, Router):
            specs.append(RouterSpec(_unique_name(item.name, specs), _instance_factory(item, embedder)))
            continue
        if not isinstance(item, str) or not item.strip():
            msg = f"routers must be names or Router instances, got {item!r}"
            raise ConfigError(msg)
        name, inline = _parse_router_arg(item.strip())
        if name in REFERENCE_ROUTERS:
            if inline or params.get(name):
                msg = f"router {name!r} takes no parameters"
                raise ConfigError(msg)
            specs.append(RouterSpec(_unique_name(name, specs)))
            continue
        if name not in ROUTERS:
            valid = sorted([*ROUTERS, *REFERENCE_ROUTERS])
            msg = f"unknown router {name!r}; valid routers: {valid}"
            raise ConfigError(msg)
        try:
            cls = get_router_class(name)
        except ImportError as exc:
            msg = f"router {name!r} is registered but cannot be imported ({exc}); is it implemented and installed?"
            raise ConfigError(msg) from exc
        kwargs = {**params.get(name, {}), **inline}
        if not _accepts(cls, kwargs):
            msg = f"router {name!r} does not accept parameters {sorted(kwargs)}; valid: {cls._param_names()}"
            raise ConfigError(msg)
        label = item.strip() if inline else name
        specs.append(RouterSpec(_unique_name(label, specs), _class_factory(cls, kwargs, embedder)))
    if not specs:
        msg = "no router to evaluate; give at least one, e.g. routers=['zero', 'knn']"
        raise ConfigError(msg)
    return specs


def _unique_name(name: str, specs: Sequence[RouterSpec]) -> str:
    if any(s.name == name for s in specs):
        msg = f"router {name!r} is listed twice"
        raise ConfigError(msg)
    return name


def _accepts(cls: Any, kwargs: Mapping[str, Any]) -> bool:
    return all(k in cls._param_names() for k in kwargs)


def _parse_router_arg(text: str) -> tuple[str, dict[str, Any]]:
    """``"knn:k=20,prior_strength=0"`` -> ``("knn", {"k": 20, "prior_strength": 0})``."""
    import json

    name, _, rest = text.partition(":")
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = part.partition("=")
        if not eq or not key.strip():
            msg = f"router parameter {part!r} in {text!r} must look like key=value"
            raise ConfigError(msg)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return name.strip(), out


def _class_factory(cls: Any, kwargs: Mapping[str, Any], embedder: Embedder) -> Callable[[int], Any]:
    names = cls._param_names()

    def build(seed: int) -> Any:
        kw = dict(kwargs)
        if "random_state" in names:
            kw.setdefault("random_state", seed)
        if "embedder" in names and kw.get("embedder") is None:
            kw["embedder"] = embedder
        return cls(**kw)

    return build


def _instance_factory(router: Any, embedder: Embedder) -> Callable[[int], Any]:
    def build(seed: int) -> Any:
        fresh = router.clone()
        names = fresh._param_names()
        if "random_state" in names:
            fresh.set_params(random_state=seed)
        if "embedder" in names and fresh.get_params().get("embedder") is None:
            fresh.set_params(embedder=embedder)
        return fresh

    return build


# --------------------------------------------------------------------------- one trial


@dataclass(frozen=True, slots=True, kw_only=True)
class Curve:
    """One router's cost/quality points in a trial, their hull and the metrics.

    Attributes:
        lambdas: Cost weight of each point (empty for the zero router, whose points are
            the single models).
        costs: Normalised mean realised cost of each point.
        scores: Mean score of each point.
        hull_costs: Hull vertex costs.
        hull_scores: Hull vertex scores.
        area: Area under the hull over [0, 1].
        area_50: Area under the hull over [0, 0.5].
        qnc: Quality-neutral cost (``inf`` when never reached).
        max_quality_accuracy: Mean score at ``lambda = 0``.
    """

    lambdas: tuple[float, ...]
    costs: NDArray[np.float64] = field(repr=False)
    scores: NDArray[np.float64] = field(repr=False)
    hull_costs: NDArray[np.float64] = field(repr=False)
    hull_scores: NDArray[np.float64] = field(repr=False)
    area: float
    area_50: float
    qnc: float
    max_quality_accuracy: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Trial:
    """Everything measured in one trial.

    Attributes:
        split: The split used.
        cost_scale: Mean realised cost of the most expensive test-pool model (the unit).
        single_models: Test-pool model names.
        single_costs: Their normalised mean realised costs on the test prompts.
        single_scores: Their accuracies on the test prompts.
        best_single_model: The most accurate test-pool model (cheapest among ties).
        best_single_accuracy: Its accuracy.
        best_single_cost: Its normalised cost.
        oracle_accuracy: Mean over test prompts of the best score of any test-pool model.
        oracle_cost: Normalised mean cost of the oracle (cheapest among the best per prompt).
        curves: Per router name, its `Curve`.
    """

    split: Split
    cost_scale: float
    single_models: tuple[str, ...]
    single_costs: NDArray[np.float64] = field(repr=False)
    single_scores: NDArray[np.float64] = field(repr=False)
    best_single_model: str
    best_single_accuracy: float
    best_single_cost: float
    oracle_accuracy: float
    oracle_cost: float
    curves: dict[str, Curve]


def _make_curve(
    costs: NDArray[np.float64],
    scores: NDArray[np.float64],
    lambdas: Sequence[float],
    max_quality: float,
    target: tuple[float, float],
) -> Curve:
    hull = upper_hull(costs, scores)
    return Curve(
        lambdas=tuple(float(v) for v in lambdas),
        costs=costs,
        scores=scores,
        hull_costs=hull[0],
        hull_scores=hull[1],
        area=area(hull, 1.0),
        area_50=area(hull, 0.5),
        qnc=qnc(hull, target[0], target[1]),
        max_quality_accuracy=float(max_quality),
    )


def sweep(
    proba: NDArray[np.float64],
    decision_costs: NDArray[np.float64],
    scores: NDArray[np.float64],
    costs: NDArray[np.float64],
    lambdas: Sequence[float],
    cost_scale: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Route every prompt for each lambda; return (normalised mean cost, mean score) per lambda.

    Args:
        proba: ``(n, m)`` predicted P(correct) on the test prompts, test-pool columns.
        decision_costs: ``(m,)`` expected costs the router decides with (or ``(n, m)``).
        scores: ``(n, m)`` true scores, the same columns.
        costs: ``(n, m)`` realised costs, the same columns.
        lambdas: Cost weights.
        cost_scale: The normalisation unit.
    """
    from ..routers import choose

    rows = np.arange(proba.shape[0])
    out_c = np.empty(len(lambdas))
    out_s = np.empty(len(lambdas))
    for i, lam in enumerate(lambdas):
        pick = choose(proba, decision_costs, float(lam))
        out_c[i] = costs[rows, pick].mean() / cost_scale
        out_s[i] = scores[rows, pick].mean()
    return out_c, out_s


def run_trial(
    data: RoutingDataset,
    split: Split,
    specs: Sequence[RouterSpec],
    embeddings: NDArray[np.float32],
    *,
    embedder_id: str,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    on_router: Callable[[str], None] | None = None,
) -> Trial:
    """Fit, extend and sweep every router on one split.

    Args:
        data: The full dataset.
        split: From `make_split`.
        specs: From `resolve_routers`.
        embeddings: ``(n_prompts, dim)`` embeddings of every prompt of `data`, by the
            harness embedder (used for the test prompts when a router shares it).
        embedder_id: Id of the embedder that produced `embeddings`; a router fitted with
            another embedder embeds the test prompts itself.
        lambdas: Cost weights to sweep; must start at 0 so ``max_quality_accuracy`` is defined.
        on_router: Called with each router's name before it runs (progress display).
    """
    if not lambdas or lambdas[0] != 0:
        msg = f"lambdas must start with 0 (max_quality_accuracy is the score at lambda=0), got {list(lambdas)[:3]}"
        raise ConfigError(msg)
    pool_cols = data.model_index(split.test_pool)
    rows = split.test_rows
    test_scores = data.scores[np.ix_(rows, pool_cols)]
    test_costs = data.costs[np.ix_(rows, pool_cols)]
    mean_cost = test_costs.mean(axis=0)
    cost_scale = float(mean_cost.max())
    if not cost_scale > 0:
        msg = f"trial seed={split.seed}: every test-pool model has zero cost; cost normalisation is undefined"
        raise DataError(msg)
    acc = test_scores.mean(axis=0)
    norm_cost = mean_cost / cost_scale
    best = int(np.lexsort((norm_cost, -acc))[0])  # most accurate, cheapest among ties
    target = (float(acc[best]), float(norm_cost[best]))
    # oracle reference: per prompt the cheapest of the models with the highest score
    top = test_scores.max(axis=1, keepdims=True)
    oracle_cost = np.where(test_scores == top, test_costs, np.inf).min(axis=1)
    curves: dict[str, Curve] = {}
    for spec in specs:
        if on_router is not None:
            on_router(spec.name)
        if spec.name == "zero" and spec.factory is None:
            curves[spec.name] = _make_curve(norm_cost, acc, (), float(acc.max()), target)
            continue
        if spec.name == "oracle" and spec.factory is None:
            c, s = sweep(test_scores, test_costs, test_scores, test_costs, lambdas, cost_scale)
            curves[spec.name] = _make_curve(c, s, lambdas, float(s[0]), target)
            continue
        assert spec.factory is not None
        proba, decision_costs = _fitted_predictions(data, split, spec, embeddings, embedder_id)
        c, s = sweep(proba, decision_costs, test_scores, test_costs, lambdas, cost_scale)
        curves[spec.name] = _make_curve(c, s, lambdas, float(s[0]), target)
    return Trial(
        split=split,
        cost_scale=cost_scale,
        single_models=split.test_pool,
        single_costs=norm_cost,
        single_scores=acc,
        best_single_model=split.test_pool[best],
        best_single_accuracy=target[0],
        best_single_cost=target[1],
        oracle_accuracy=float(top.mean()),
        oracle_cost=float(oracle_cost.mean() / cost_scale),
        curves=curves,
    )


def _fitted_predictions(
    data: RoutingDataset, split: Split, spec: RouterSpec, embeddings: NDArray[np.float32], embedder_id: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Fit the router of `spec` per the protocol; P(correct) and expected costs of the pool."""
    assert spec.factory is not None
    router = spec.factory(split.seed)
    fit_rows = np.sort(np.concatenate([split.train_rows, split.val_rows]))
    val_ids = [data.prompt_ids[i] for i in split.val_rows]
    router.fit(data.subset(rows=fit_rows, models=split.training_models), probe_ids=val_ids)
    for m in split.unseen_models:
        router.add_model(ModelProfile.from_dataset(data, m, val_ids))
    missing = [m for m in split.test_pool if m not in router.models_]
    if missing:
        msg = f"router {spec.name!r} lost test-pool models {missing} after fit/add_model"
        raise DataError(msg)
    idx = np.array([router.models_.index(m) for m in split.test_pool], dtype=np.intp)
    if router.embedder_id_ == embedder_id:
        e_test = embeddings[split.test_rows]
    else:
        e_test = router.embed([data.prompts[i] for i in split.test_rows])
    proba = router.predict_proba_embedded(e_test)[:, idx]
    return proba, np.asarray(router.expected_costs_, dtype=np.float64)[idx]


def resolve_embedder(embedder: Embedder | str | None) -> Embedder:
    """The harness embedder: an `Embedder`, or a `get_embedder` name (None = ``"minilm"``)."""
    emb = get_embedder(embedder or "minilm") if embedder is None or isinstance(embedder, str) else embedder
    if not isinstance(emb, Embedder):
        msg = f"embedder must be an Embedder or a name ('minilm', 'static'), got {embedder!r}"
        raise ConfigError(msg)
    return emb


def embed_all(data: RoutingDataset, embedder: Embedder) -> NDArray[np.float32]:
    """Embed every prompt of `data` once (this fills the on-disk cache for the routers' fits)."""
    return np.asarray(embedder.embed(list(data.prompts)), dtype=np.float32)


def subsample(data: RoutingDataset, max_prompts: int | None, *, seed: int = 0) -> RoutingDataset:
    """A deterministic random subset of at most `max_prompts` prompts (all of them if None)."""
    if max_prompts is None or max_prompts >= data.n_prompts:
        return data
    if max_prompts < 1:
        msg = f"max_prompts must be >= 1, got {max_prompts}"
        raise ConfigError(msg)
    rows = np.sort(np.random.default_rng(seed).choice(data.n_prompts, size=max_prompts, replace=False))
    return data.subset(rows=rows)
