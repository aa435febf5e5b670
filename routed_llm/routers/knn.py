"""K-NN router: P(correct) is a model's mean score on the prompt's nearest probe prompts.

This is the K-NN baseline of UniRoute (and RouterBench): Phi(x) is the indicator of x's
k nearest probe prompts, Psi(h) the model's raw probe outcomes. Only probe prompts are used,
so the training prompts and training models play no part.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .base import Router

__all__ = ["KNNRouter"]


class KNNRouter(Router):
    """K-nearest-neighbour router over the probe prompts (the UniRoute baseline).

    Args:
        k: Number of nearest probe prompts (cosine similarity) to average over.
        prior_strength: Pseudo-counts shrinking each estimate toward the model's overall
            probe accuracy (0 = plain mean).
        embedder: An `Embedder`, a name (``"minilm"``, ``"static"``) or None (MiniLM).
        cost_weight: Default quality/cost trade-off used by `route`.
        random_state: Seed for the probe split when `fit` picks probes itself.

    Attributes:
        models_: Known models, in column order.
        probe_ids_: Ids of the probe prompts.
        features_: ``(n_models, 2 * n_probe + 1)``: probe scores (missing as 0), the
            observed mask, and the overall probe accuracy.
    """

    name = "knn"
    uses_training_models = False

    def __init__(
        self,
        *,
        k: int = 40,
        prior_strength: float = 1.0,
        embedder: object | None = None,
        cost_weight: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.k = k
        self.prior_strength = prior_strength
        self.embedder = embedder  # type: ignore[assignment]
        self.cost_weight = cost_weight
        self.random_state = random_state

    def _validate_params(self) -> None:
        super()._validate_params()
        self._check_int("k", 1)
        self._check_float("prior_strength", 0.0)

    def _model_features(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        # [scores with NaN as 0 | observed mask | overall accuracy]: prediction needs no NaN work
        seen = ~np.isnan(scores)
        return np.concatenate([np.where(seen, scores, 0.0), seen.astype(np.float64), [np.nanmean(scores)]])

    def _predict(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        n_probe = self.probe_embeddings_.shape[0]
        k = min(self.k, n_probe)
        sims = embeddings @ self.probe_embeddings_.T
        nn = (
            np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < n_probe else np.tile(np.arange(n_probe), (len(sims), 1))
        )
        filled = self.features_[:, :n_probe]  # (m, n_probe)
        seen = self.features_[:, n_probe : 2 * n_probe]
        prior = self.features_[:, -1]
        total = filled[:, nn].sum(axis=2).T  # (n, m)
        count = seen[:, nn].sum(axis=2).T
        a = self.prior_strength
        return (total + a * prior[None, :]) / np.maximum(count + a, 1e-12)
