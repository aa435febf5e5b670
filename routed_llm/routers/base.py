"""`Router`: the estimator base class every router derives from.

Subclasses implement three hooks and nothing else:

* `_fit_prompts(ctx)` learns the prompt side (clusters, maps, scorers) from the training
  prompts and the training models' outcomes;
* `_model_features(scores)` turns one model's probe outcomes into its feature vector (its
  profile, Psi in UniRoute's notation);
* `_predict(embeddings)` gives P(correct) for each prompt and each known model.

Because a model enters only through `_model_features`, `add_model` works for every router
with no refitting. The base class owns `fit`, `predict_proba`, `route`, `add_model`,
persistence and the sklearn-style parameter handling.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from ..data import RoutingDataset
from ..embeddings import Embedder, get_embedder
from ..errors import ConfigError, DataError, NotFittedError, RoutingError
from ..types import ModelProfile, RouteDecision

__all__ = ["FitContext", "Router", "choose", "utilities"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FitContext:
    """What `_fit_prompts` sees: training prompts with training-model outcomes, and probes."""

    train_embeddings: NDArray[np.float32]
    train_scores: NDArray[np.float64]  # (n_train, n_models), NaN = missing
    train_tasks: tuple[str, ...]
    probe_embeddings: NDArray[np.float32]
    probe_scores: NDArray[np.float64]  # (n_probe, n_models)
    probe_tasks: tuple[str, ...]
    models: tuple[str, ...]
    rng: np.random.Generator


def utilities(proba: NDArray[np.float64], costs: NDArray[np.float64], cost_weight: float) -> NDArray[np.float64]:
    """``proba - cost_weight * costs / max(costs)``; ``inf`` means "cheapest".

    `proba` is ``(n, m)`` (or ``(m,)``), `costs` is ``(m,)``. With ``cost_weight=inf`` the
    utility is minus the normalised cost plus a tiny quality tie-break.
    """
    ref = float(np.max(costs)) if costs.size else 1.0
    norm = costs / ref if ref > 0 else np.zeros_like(costs)
    if math.isinf(cost_weight):
        return -norm + 1e-9 * proba
    return proba - cost_weight * norm


def choose(proba: NDArray[np.float64], costs: NDArray[np.float64], cost_weight: float) -> NDArray[np.intp]:
    """Index of the best-utility model per row of `proba` (ties go to the cheaper model)."""
    util = utilities(proba, costs, cost_weight)
    # stable tie-break toward cheaper models: subtract a negligible cost epsilon
    ref = float(np.max(costs)) if costs.size and np.max(costs) > 0 else 1.0
    return np.argmax(util - 1e-12 * costs / ref, axis=-1)


class Router:
    """Base class of all routers (scikit-learn estimator conventions).

    Hyperparameters are keyword-only constructor arguments stored verbatim; they are
    validated in `fit`. Fitted attributes end with an underscore.
    """

    name: ClassVar[str] = "router"
    uses_training_models: ClassVar[bool] = True
    _array_state: ClassVar[tuple[str, ...]] = ()
    _json_state: ClassVar[tuple[str, ...]] = ()

    embedder: Embedder | str | None
    cost_weight: float
    random_state: int

    # ------------------------------------------------------------------ params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to the constructor."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set hyperparameters (takes effect at the next `fit`)."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                msg = f"{type(self).__name__} has no parameter {k!r}; valid parameters: {valid}"
                raise ConfigError(msg)
            setattr(self, k, v)
        return self

    def clone(self) -> Self:
        """An unfitted router with the same hyperparameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "embedder" or v is not None)
        return f"{type(self).__name__}({args})"

    def _validate_params(self) -> None:
        if not isinstance(self.cost_weight, int | float) or self.cost_weight < 0 or math.isnan(self.cost_weight):
            msg = f"cost_weight must be a number >= 0 (0 = quality only), got {self.cost_weight!r}"
            raise ConfigError(msg)
        if not isinstance(self.random_state, int):
            msg = f"random_state must be an int, got {self.random_state!r}"
            raise ConfigError(msg)

    def _check_int(self, name: str, low: int, *, allow: Collection[Any] = ()) -> None:
        value = getattr(self, name)
        if value in allow:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            extra = f" or one of {sorted(map(str, allow))}" if allow else ""
            msg = f"{name} must be an int >= {low}{extra}, got {value!r}"
            raise ConfigError(msg)

    def _check_float(self, name: str, low: float, high: float = math.inf) -> None:
        value = getattr(self, name)
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            msg = f"{name} must be a number in [{low}, {high}], got {value!r}"
            raise ConfigError(msg)

    # ------------------------------------------------------------------ fitted state
    def _is_fitted(self) -> bool:
        return hasattr(self, "models_")

    def check_is_fitted(self) -> None:
        """Raise `NotFittedError` unless `fit` or `load` has run."""
        if not self._is_fitted():
            msg = (
                f"This {type(self).__name__} instance is not fitted yet. "
                "Call 'fit' with a dataset, or 'load' a saved router."
            )
            raise NotFittedError(msg)

    def _resolve_embedder(self) -> Embedder:
        if self.embedder is None:
            return get_embedder("minilm")
        if isinstance(self.embedder, str):
            return get_embedder(self.embedder)
        if not isinstance(self.embedder, Embedder):
            msg = f"embedder must be an Embedder, a name ('minilm', 'static') or None, got {self.embedder!r}"
            raise ConfigError(msg)
        return self.embedder

    def _reset(self) -> None:
        self._pos_cache = None
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            delattr(self, attr)

    # ------------------------------------------------------------------ fit
    def fit(
        self, data: RoutingDataset, *, probe_ids: Sequence[str] | None = None, probe_fraction: float = 1 / 7
    ) -> Self:
        """Learn from `data` and profile every model of it on the probe prompts.

        Args:
            data: Outcomes of the training models.
            probe_ids: The probe prompts ("aptitude test", S_val) that every model, old or
                new, is profiled on. Default: a random `probe_fraction` of `data`.
            probe_fraction: Share of prompts used as probes when `probe_ids` is None.

        Returns:
            self.

        Raises:
            ConfigError: A hyperparameter is invalid.
            DataError: `data` is unusable (too few prompts, unknown probe ids).
        """
        self._validate_params()
        if not isinstance(data, RoutingDataset):
            msg = f"fit() takes a RoutingDataset (see routed_llm.load_dataset), got {type(data).__name__}"
            raise DataError(msg)
        if data.n_models < 1 or data.n_prompts < 4:
            msg = f"fit() needs at least 1 model and 4 prompts, got {data.n_models} and {data.n_prompts}"
            raise DataError(msg)
        self._reset()
        rng = np.random.default_rng(self.random_state)
        if probe_ids is None:
            n_probe = max(2, round(data.n_prompts * probe_fraction))
            probe_rows = np.sort(rng.choice(data.n_prompts, size=n_probe, replace=False))
        else:
            probe_rows = data.prompt_index(list(probe_ids))
        mask = np.ones(data.n_prompts, dtype=bool)
        mask[probe_rows] = False
        train_rows = np.flatnonzero(mask)
        if train_rows.size < 2 and self.uses_training_models:
            msg = "fit() needs at least 2 training prompts besides the probe prompts"
            raise DataError(msg)
        embedder = self._resolve_embedder()
        probe_prompts = [data.prompts[i] for i in probe_rows]
        if not self.uses_training_models:
            train_rows = train_rows[:0]  # probe-only routers never look at training prompts
        emb = embedder.embed([data.prompts[i] for i in train_rows] + probe_prompts)
        train_e, probe_e = emb[: train_rows.size], emb[train_rows.size :]

        self.embedder_id_ = embedder.id
        self._embedder = embedder
        self.cost_unit_ = data.cost_unit
        self.probe_ids_ = tuple(data.prompt_ids[i] for i in probe_rows)
        self.probe_prompts_ = tuple(probe_prompts)
        self.probe_tasks_ = tuple(data.tasks[i] for i in probe_rows)
        self.probe_embeddings_ = probe_e.astype(np.float32)
        ctx = FitContext(
            train_embeddings=train_e,
            train_scores=data.scores[train_rows],
            train_tasks=tuple(data.tasks[i] for i in train_rows),
            probe_embeddings=self.probe_embeddings_,
            probe_scores=data.scores[probe_rows],
            probe_tasks=self.probe_tasks_,
            models=data.models,
            rng=rng,
        )
        self._fit_prompts(ctx)
        self.models_: list[str] = []
        self.profiles_: dict[str, ModelProfile] = {}
        self.expected_costs_ = np.zeros(0)
        self.features_ = np.zeros((0, 0))
        self._add_profiles([ModelProfile.from_dataset(data, m, self.probe_ids_) for m in data.models])
        return self

    # ------------------------------------------------------------------ models
    def add_model(self, profile: ModelProfile) -> Self:
        """Add (or replace) a model from its outcomes on this router's probe prompts.

        No refitting happens: the model's feature vector is computed from `profile` alone.

        Raises:
            NotFittedError: The router is not fitted.
            DataError: The profile answers prompts that are not this router's probes.
        """
        return self.add_models([profile])

    def add_models(self, profiles: Sequence[ModelProfile]) -> Self:
        """`add_model` for several profiles at once (one array copy instead of one per model)."""
        self.check_is_fitted()
        bad = [type(p).__name__ for p in profiles if not isinstance(p, ModelProfile)]
        if bad:
            msg = f"add_model() takes ModelProfile objects, got {bad[0]}"
            raise DataError(msg)
        self._add_profiles(profiles)
        return self

    def _aligned_scores(self, profile: ModelProfile) -> NDArray[np.float64]:
        pos = {p: i for i, p in enumerate(self.probe_ids_)}
        unknown = [p for p in profile.probe_ids if p not in pos]
        if unknown:
            msg = (
                f"profile {profile.model!r} answers {len(unknown)} prompts that are not this router's probes "
                f"(e.g. {unknown[:3]}); profile the model on router.probe_ids_ (routed-llm profile)"
            )
            raise DataError(msg)
        scores = np.full(len(self.probe_ids_), np.nan)
        for pid, s in zip(profile.probe_ids, profile.scores, strict=True):
            scores[pos[pid]] = s
        if np.isnan(scores).all():
            msg = f"profile {profile.model!r} has no graded outcome on this router's probes"
            raise DataError(msg)
        return scores

    def _add_profiles(self, profiles: Sequence[ModelProfile]) -> None:
        latest = {p.model: p for p in profiles}  # a later profile of the same model wins
        aligned = {m: self._aligned_scores(p) for m, p in latest.items()}  # validate all first
        feats = {m: np.asarray(self._model_features(s), dtype=np.float64) for m, s in aligned.items()}
        pos = self._positions()
        new = [m for m in latest if m not in pos]
        for m in latest:
            if m in pos:
                j = pos[m]
                self.features_[j] = feats[m]
                self.expected_costs_[j] = latest[m].expected_cost
                self.probe_scores_[:, j] = aligned[m]
        if new:
            stacked = np.stack([feats[m] for m in new])
            self.features_ = stacked if self.features_.size == 0 else np.vstack([self.features_, stacked])
            self.expected_costs_ = np.append(self.expected_costs_, [latest[m].expected_cost for m in new])
            prev = getattr(self, "probe_scores_", np.zeros((len(self.probe_ids_), 0)))
            self.probe_scores_ = np.column_stack([prev, *[aligned[m] for m in new]])
            self.models_.extend(new)
        self.profiles_.update(latest)

    def _positions(self) -> dict[str, int]:
        """Column of each known model (cached; rebuilt when the model list changes)."""
        key = (id(self.models_), len(self.models_), self.models_[-1] if self.models_ else None)
        cache = getattr(self, "_pos_cache", None)
        if cache is None or cache[0] != key:
            cache = (key, {m: j for j, m in enumerate(self.models_)})
            self._pos_cache = cache
        return cache[1]

    def remove_model(self, model: str) -> Self:
        """Forget `model` (no refitting)."""
        self.check_is_fitted()
        if model not in self.profiles_:
            msg = f"unknown model {model!r}; known models: {self.models_}"
            raise DataError(msg)
        j = self._positions()[model]
        self.models_.pop(j)
        self._pos_cache = None
        del self.profiles_[model]
        self.features_ = np.delete(self.features_, j, axis=0)
        self.expected_costs_ = np.delete(self.expected_costs_, j)
        self.probe_scores_ = np.delete(self.probe_scores_, j, axis=1)
        return self

    def restrict(self, models: Collection[str]) -> Self:
        """Keep only `models` (for example those you have keys for); returns self."""
        self.check_is_fitted()
        unknown = [m for m in models if m not in self.profiles_]
        if unknown:
            msg = f"unknown models {unknown}; known models: {self.models_}"
            raise DataError(msg)
        for m in [m for m in self.models_ if m not in models]:
            self.remove_model(m)
        return self

    # ------------------------------------------------------------------ predict
    def embed(self, prompts: Sequence[str]) -> NDArray[np.float32]:
        """Embed prompts with the router's embedder."""
        self.check_is_fitted()
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            msg = "prompts must be a sequence of strings"
            raise DataError(msg)
        emb = getattr(self, "_embedder", None)
        if emb is None:
            if self.embedder is None or isinstance(self.embedder, str):
                # a loaded router: the embedder it was fitted with, by its registered name
                emb = get_embedder(_EMBEDDER_NAMES.get(self.embedder_id_, "minilm"))
            else:
                emb = self._resolve_embedder()
            if emb.id != self.embedder_id_:
                msg = f"router was fitted with embedder {self.embedder_id_!r} but {emb.id!r} is configured"
                raise ConfigError(msg)
            self._embedder = emb
        return emb.embed(list(prompts))

    def predict_proba(self, prompts: Sequence[str]) -> NDArray[np.float64]:
        """P(correct) per prompt (rows) and known model (columns, in `models_` order)."""
        return self.predict_proba_embedded(self.embed(prompts))

    def predict_proba_embedded(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        """`predict_proba` for prompts already embedded with the router's embedder."""
        self.check_is_fitted()
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim != 2 or e.shape[1] != self.probe_embeddings_.shape[1]:
            msg = f"embeddings must have shape (n, {self.probe_embeddings_.shape[1]}), got {e.shape}"
            raise DataError(msg)
        out = np.asarray(self._predict(e), dtype=np.float64)
        return np.clip(out, 0.0, 1.0)

    def route(
        self,
        prompt: str,
        candidates: Collection[str] | None = None,
        cost_weight: float | None = None,
        *,
        expected_costs: Mapping[str, float] | None = None,
    ) -> RouteDecision:
        """Rank the candidates for `prompt` by ``P(correct) - cost_weight * cost / max cost``.

        Args:
            prompt: The request text.
            candidates: Models to choose from (default: every known model).
            cost_weight: Trade-off knob lambda (default: the router's `cost_weight`).
            expected_costs: Per-candidate expected call cost overriding the profiles'.

        Raises:
            NotFittedError: The router is not fitted.
            RoutingError: A candidate is unknown, or no candidate is left.
        """
        self.check_is_fitted()
        if not isinstance(prompt, str):
            msg = f"prompt must be a string, got {type(prompt).__name__}"
            raise DataError(msg)
        proba = self.predict_proba([prompt])[0]
        return self.decide(proba, candidates=candidates, cost_weight=cost_weight, expected_costs=expected_costs)

    def decide(
        self,
        proba: NDArray[np.float64],
        *,
        candidates: Collection[str] | None = None,
        cost_weight: float | None = None,
        expected_costs: Mapping[str, float] | None = None,
    ) -> RouteDecision:
        """The routing decision for one prompt's `proba` row (see `route`)."""
        lam = self.cost_weight if cost_weight is None else cost_weight
        if not isinstance(lam, int | float) or math.isnan(lam) or lam < 0:
            msg = f"cost_weight must be a number >= 0, got {lam!r}"
            raise ConfigError(msg)
        names = list(self.models_) if candidates is None else list(dict.fromkeys(candidates))
        unknown = [c for c in names if c not in self.profiles_]
        if unknown:
            msg = f"no profile for candidates {unknown}; profiled models: {self.models_}"
            raise RoutingError(msg, excluded={c: "no profile" for c in unknown})
        if not names:
            msg = "no candidate to route to"
            raise RoutingError(msg)
        pos = self._positions()
        idx = np.array([pos[c] for c in names], dtype=np.intp)
        costs = self.expected_costs_[idx].astype(np.float64)
        if expected_costs:
            costs = np.array([float(expected_costs.get(c, costs[i])) for i, c in enumerate(names)])
        p = proba[idx]
        util = utilities(p, costs, float(lam))
        order = np.lexsort((costs, -util))
        ranking = tuple(names[i] for i in order)
        best = order[0]
        reason = (
            f"{names[best]} has the best utility {util[best]:.3f} = P(correct) {p[best]:.3f} "
            f"- cost_weight {lam:g} x normalised cost {costs[best] / max(float(costs.max()), 1e-300):.3f}"
            f" among {len(names)} candidates"
        )
        return RouteDecision(
            model=names[best],
            ranking=ranking,
            scores={c: float(p[i]) for i, c in enumerate(names)},
            expected_costs={c: float(costs[i]) for i, c in enumerate(names)},
            utilities={c: float(util[i]) for i, c in enumerate(names)},
            cost_weight=float(lam),
            reason=reason,
            router=self.name,
        )

    def score(self, data: RoutingDataset, *, cost_weight: float | None = None) -> float:
        """Mean score of the routed choices on `data` (sklearn meaning: higher is better)."""
        self.check_is_fitted()
        cols = data.model_index([m for m in self.models_ if m in data.models])
        names = [data.models[c] for c in cols]
        pos = self._positions()
        idx = np.array([pos[n] for n in names], dtype=np.intp)
        proba = self.predict_proba(list(data.prompts))[:, idx]
        lam = self.cost_weight if cost_weight is None else cost_weight
        pick = choose(proba, self.expected_costs_[idx], lam)
        got = data.scores[np.arange(data.n_prompts), cols[pick]]
        return float(np.nanmean(got))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Save to folder `path` as ``router.json`` + ``arrays.npz`` (no pickle)."""
        from ._persist import save_router

        return save_router(self, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> Router:
        """Load a router saved with `save`, validating everything it reads."""
        from ._persist import load_router

        router = load_router(Path(path))
        if cls is not Router and not isinstance(router, cls):
            msg = f"{path}: holds a {type(router).__name__}, not a {cls.__name__}"
            raise DataError(msg)
        return router

    # ------------------------------------------------------------------ hooks
    def _fit_prompts(self, ctx: FitContext) -> None:
        """Learn the prompt side. Default: nothing."""

    def _model_features(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """A model's feature vector from its probe scores. Default: the raw scores."""
        return scores

    def _predict(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        raise NotImplementedError


_EMBEDDER_NAMES = {"st:all-MiniLM-L6-v2": "minilm", "m2v:all-MiniLM-L6-v2": "static"}


def nan_mean_with_prior(values: NDArray[np.float64], prior: float, strength: float = 1.0) -> float:
    """Mean of the non-NaN `values`, shrunk toward `prior` with `strength` pseudo-counts."""
    seen = values[~np.isnan(values)]
    return float((seen.sum() + strength * prior) / (seen.size + strength))
