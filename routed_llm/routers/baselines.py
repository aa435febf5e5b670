"""Prompt-independent baselines: the best single model, and random choice."""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray

from .base import Router

__all__ = ["BestSingleRouter", "RandomRouter"]


class BestSingleRouter(Router):
    """Predicts each model's overall probe accuracy for every prompt.

    With ``cost_weight=0`` it always picks the most accurate model; sweeping the cost
    weight walks through single models from the best to the cheapest.

    Args:
        embedder: Embedder used for `predict_proba` inputs (unused by the prediction).
        cost_weight: Default trade-off.
        random_state: Seed for the probe split when `fit` picks probes itself.
    """

    name = "best-single"
    uses_training_models = False

    def __init__(self, *, embedder: object | None = None, cost_weight: float = 0.0, random_state: int = 0) -> None:
        self.embedder = embedder  # type: ignore[assignment]
        self.cost_weight = cost_weight
        self.random_state = random_state

    def _model_features(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.array([np.nanmean(scores)])

    def _predict(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        return np.tile(self.features_[:, 0], (embeddings.shape[0], 1))


class RandomRouter(Router):
    """Predicts uniform random P(correct): a floor every real router must beat.

    Predictions are a deterministic function of the prompt embedding and `random_state`,
    so the same prompt is routed the same way each time.
    """

    name = "random"
    uses_training_models = False

    def __init__(self, *, embedder: object | None = None, cost_weight: float = 0.0, random_state: int = 0) -> None:
        self.embedder = embedder  # type: ignore[assignment]
        self.cost_weight = cost_weight
        self.random_state = random_state

    def _model_features(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.array([0.0])

    def _predict(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        n, m = embeddings.shape[0], self.features_.shape[0]
        out = np.empty((n, m))
        for i, e in enumerate(embeddings):
            digest = hashlib.blake2b(np.round(e * 1e4).astype(np.int32).tobytes(), digest_size=8).digest()
            out[i] = np.random.default_rng([int.from_bytes(digest, "little"), self.random_state]).random(m)
        return out
