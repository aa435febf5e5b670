"""UniRoute (K-means): route by a model's accuracy in the prompt's cluster.

Jitkrittum et al., "Universal Model Routing for Efficient LLM Inference": K-means runs on
the *training* prompts' embeddings; a model's feature vector Psi(h) is its accuracy per
cluster on the probe prompts (S_val); P(correct | x, h) is Psi(h) at x's cluster. Any new
model joins with one pass over the probe prompts and no refitting.

K is picked with the training models only (``n_clusters="auto"``): the training prompts are
split into a pseudo-probe part (as large as the real probe set) and a pseudo-test part,
half the training models are drawn as a pseudo-unseen pool, and each K of the grid is
scored by the log loss of that pool's predicted outcomes; this is repeated over a few
random splits. The test pool's labels are never seen.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from ._kmeans import kmeans, memberships
from .base import FitContext, Router

__all__ = ["ClusterRouter", "cluster_accuracy", "masked_log_loss"]

_EPS = 1e-4


def cluster_accuracy(
    weights: NDArray[np.float64], scores: NDArray[np.float64], prior_strength: float
) -> NDArray[np.float64]:
    """Per-cluster accuracy of each model, shrunk toward its overall accuracy.

    Args:
        weights: ``(n_probe, k)`` cluster memberships of the probe prompts.
        scores: ``(n_probe, m)`` probe scores, NaN = missing.
        prior_strength: Pseudo-counts pulling each cluster toward the model's global mean.

    Returns:
        ``(k, m)`` accuracies.
    """
    obs = ~np.isnan(scores)
    s0 = np.where(obs, scores, 0.0)
    num = weights.T @ s0
    den = weights.T @ obs.astype(np.float64)
    glob = s0.sum(0) / np.maximum(obs.sum(0), 1)
    a = float(prior_strength)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (num + a * glob[None, :]) / (den + a)
    return np.where(den + a > 0, acc, glob[None, :])


def masked_log_loss(pred: NDArray[np.float64], target: NDArray[np.float64]) -> float:
    """Mean binary log loss over the non-NaN cells of `target`."""
    obs = ~np.isnan(target)
    if not obs.any():
        return math.nan
    p = np.clip(pred[obs], _EPS, 1 - _EPS)
    y = target[obs]
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


class ClusterRouter(Router):
    """UniRoute K-means router: per-cluster probe accuracy of each model.

    Args:
        n_clusters: Number of clusters K, or ``"auto"`` to pick it from `cluster_grid` with
            the training models only (see the module docstring).
        cluster_grid: Candidate K values for ``"auto"``.
        prior_strength: Pseudo-counts shrinking a small or empty cluster's accuracy toward
            the model's overall probe accuracy.
        temperature: 0 = hard (nearest-centroid) assignment, as in the paper; > 0 = soft
            assignment ``softmax(-squared_distance / temperature)`` for prompts and probes;
            ``"auto"`` = chosen from `temperature_grid` together with K.
        temperature_grid: Candidate temperatures for ``"auto"``.
        selection_splits: Random pseudo splits averaged when choosing K.
        max_iter: Lloyd iterations of K-means.
        embedder: An `Embedder`, a name (``"minilm"``, ``"static"``) or None (MiniLM).
        cost_weight: Default quality/cost trade-off used by `route`.
        random_state: Seed for the probe split, K-means and the K selection.

    Attributes:
        centroids_: ``(K, dim)`` cluster centres fitted on the training prompts.
        probe_weights_: ``(n_probe, K)`` cluster memberships of the probe prompts.
        n_clusters_: The K in use; temperature_: the temperature in use.
        selection_: Mean pseudo-test log loss per candidate (empty if nothing was chosen).
        features_: ``(n_models, K)`` per-cluster probe accuracy of each model (Psi).
    """

    name = "cluster"
    _array_state: ClassVar[tuple[str, ...]] = ("centroids_", "probe_weights_")
    _json_state: ClassVar[tuple[str, ...]] = ("n_clusters_", "temperature_", "selection_")

    def __init__(
        self,
        *,
        n_clusters: int | str = "auto",
        cluster_grid: tuple[int, ...] | list[int] = (5, 10, 20, 40, 80),
        prior_strength: float = 2.0,
        temperature: float | str = "auto",
        temperature_grid: tuple[float, ...] | list[float] = (0.0, 0.01, 0.02, 0.05),
        selection_splits: int = 3,
        max_iter: int = 25,
        embedder: Any = None,
        cost_weight: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.cluster_grid = cluster_grid
        self.prior_strength = prior_strength
        self.temperature = temperature
        self.temperature_grid = temperature_grid
        self.selection_splits = selection_splits
        self.max_iter = max_iter
        self.embedder = embedder
        self.cost_weight = cost_weight
        self.random_state = random_state

    # ------------------------------------------------------------------ params
    def _validate_params(self) -> None:
        super()._validate_params()
        self._check_int("n_clusters", 1, allow=("auto",))
        grid = self.cluster_grid
        if (
            not isinstance(grid, tuple | list)
            or not grid
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in grid)
        ):
            msg = f"cluster_grid must be a non-empty list of ints >= 1, got {grid!r}"
            raise ConfigError(msg)
        self._check_float("prior_strength", 0.0)
        if self.temperature != "auto":
            self._check_float("temperature", 0.0)
        tgrid = self.temperature_grid
        if (
            not isinstance(tgrid, tuple | list)
            or not tgrid
            or not all(isinstance(t, int | float) and not isinstance(t, bool) and 0 <= t < math.inf for t in tgrid)
        ):
            msg = f"temperature_grid must be a non-empty list of numbers >= 0, got {tgrid!r}"
            raise ConfigError(msg)
        self._check_int("selection_splits", 1)
        self._check_int("max_iter", 1)

    # ------------------------------------------------------------------ fit
    def _cluster(self, emb: NDArray[np.float32], k: int, rng: np.random.Generator) -> NDArray[np.float64]:
        centroids, _ = kmeans(emb, k, rng, max_iter=self.max_iter)
        return centroids

    def _select(self, ctx: FitContext) -> tuple[int, float, dict[str, float], dict[int, NDArray[np.float64]]]:
        """Pick K and/or the temperature with the training models only.

        Returns (K, temperature, mean pseudo-test log loss per candidate, fitted centroids).
        """
        emb, scores = ctx.train_embeddings, ctx.train_scores
        n, m = scores.shape
        ks = self.cluster_grid if self.n_clusters == "auto" else [self.n_clusters]
        grid = sorted({min(int(k), max(1, n // 4)) for k in ks})
        temps = (
            sorted({float(t) for t in self.temperature_grid})
            if self.temperature == "auto"
            else [float(self.temperature)]
        )
        fitted = {k: self._cluster(emb, k, ctx.rng) for k in grid}
        cands = [(k, float(t)) for k in grid for t in temps]
        if len(cands) == 1:
            return cands[0][0], cands[0][1], {}, fitted
        n_val = int(min(max(ctx.probe_embeddings.shape[0], 2), n // 2))
        losses: dict[tuple[int, float], list[float]] = {c: [] for c in cands}
        member = {(k, t): memberships(emb, fitted[k], t) for k, t in cands}
        for _ in range(self.selection_splits):
            perm = ctx.rng.permutation(n)
            pv, pt = perm[:n_val], perm[n_val:]
            pool = ctx.rng.permutation(m)[: max(1, m // 2)] if m > 1 else np.arange(m)
            target = scores[np.ix_(pt, pool)]
            for c in cands:
                w = member[c]
                acc = cluster_accuracy(w[pv], scores[np.ix_(pv, pool)], self.prior_strength)
                losses[c].append(masked_log_loss(w[pt] @ acc, target))
        mean = {c: float(np.nanmean(v)) for c, v in losses.items()}
        best = min(cands, key=lambda c: (mean[c] if not math.isnan(mean[c]) else math.inf, c))
        return best[0], best[1], {f"K={k},T={t:g}": v for (k, t), v in mean.items()}, fitted

    def _fit_prompts(self, ctx: FitContext) -> None:
        if self.n_clusters == "auto" or self.temperature == "auto":
            k, temp, self.selection_, fitted = self._select(ctx)
            centroids = fitted[k]
        else:
            self.selection_ = {}
            temp = float(self.temperature)
            centroids = self._cluster(ctx.train_embeddings, int(self.n_clusters), ctx.rng)
        self.centroids_ = centroids.astype(np.float32)
        self.n_clusters_ = int(self.centroids_.shape[0])
        self.temperature_ = temp
        self.probe_weights_ = memberships(ctx.probe_embeddings, self.centroids_, self.temperature_)

    # ------------------------------------------------------------------ hooks
    def _model_features(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        return cluster_accuracy(self.probe_weights_, scores[:, None], self.prior_strength)[:, 0]

    def _prompt_map(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        """Phi(x): ``(n, K)`` cluster memberships of the prompts."""
        return memberships(embeddings, self.centroids_, self.temperature_)

    def _predict(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        return self._prompt_map(embeddings) @ self.features_.T
