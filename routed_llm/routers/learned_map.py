"""UniRoute (LearnedMap): a softmax cluster map fitted on the training models' outcomes.

Same clusters and same per-cluster probe profiles Psi(h) as `ClusterRouter`, but the
prompt map is learned: ``Phi(x) = softmax(theta x + b)`` and
``P(correct | x, h) = Phi(x)^T Psi(h)``. Theta is fitted by full-batch Adam on the log loss
over training prompts x training models, with the training models' Psi estimated on the
probe prompts exactly as an unseen model's will be (the paper's section 5.2). It starts from
the softened K-means assignment and stops early on a held-out slice of training prompts.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from .base import FitContext
from .cluster import ClusterRouter, cluster_accuracy

__all__ = ["LearnedMapRouter", "softmax"]

_EPS = 1e-4


def softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise softmax."""
    z = z - z.max(axis=1, keepdims=True)
    w = np.exp(z)
    return w / w.sum(axis=1, keepdims=True)


class _Adam:
    """Minimal Adam over a list of arrays (updated in place)."""

    def __init__(self, params: list[NDArray[np.float64]], lr: float) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[NDArray[np.float64]]) -> None:
        self.t += 1
        b1, b2 = 0.9, 0.999
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            mhat = m / (1 - b1**self.t)
            vhat = v / (1 - b2**self.t)
            p -= self.lr * mhat / (np.sqrt(vhat) + 1e-8)


class LearnedMapRouter(ClusterRouter):
    """UniRoute LearnedMap router: a learned softmax map onto K-means clusters.

    Args:
        n_clusters: Number of clusters K, or ``"auto"`` (chosen as in `ClusterRouter`).
        cluster_grid: Candidate K values for ``"auto"``.
        prior_strength: Pseudo-counts shrinking per-cluster probe accuracies (Psi).
        temperature: Assignment of the *probe* prompts when building Psi (0 = hard, or
            ``"auto"``, chosen as in `ClusterRouter`).
        temperature_grid: Candidate temperatures for ``"auto"``.
        init_temperature: Softness of the K-means warm start of the map,
            ``logits = -squared_distance / init_temperature``.
        learning_rate: Adam step size.
        max_epochs: Maximum full-batch steps.
        patience: Stop after this many steps without a better held-out loss.
        l2: L2 penalty on the map's weights, relative to the warm start.
        holdout_fraction: Share of training prompts held out for early stopping.
        selection_splits: Random pseudo splits averaged when choosing K.
        max_iter: Lloyd iterations of K-means.
        embedder: An `Embedder`, a name or None (MiniLM).
        cost_weight: Default quality/cost trade-off used by `route`.
        random_state: Seed for every random choice.

    Attributes:
        theta_: ``(K, dim)`` map weights; bias_: ``(K,)`` map biases.
        epochs_: Steps taken; holdout_loss_: best held-out log loss.
        features_: ``(n_models, K)`` per-cluster probe accuracy of each model (Psi).
    """

    name = "learned-map"
    _array_state: ClassVar[tuple[str, ...]] = ("centroids_", "probe_weights_", "theta_", "bias_")
    _json_state: ClassVar[tuple[str, ...]] = ("n_clusters_", "temperature_", "selection_", "epochs_", "holdout_loss_")

    def __init__(
        self,
        *,
        n_clusters: int | str = "auto",
        cluster_grid: tuple[int, ...] | list[int] = (5, 10, 20, 40, 80),
        prior_strength: float = 2.0,
        temperature: float | str = "auto",
        temperature_grid: tuple[float, ...] | list[float] = (0.0, 0.01, 0.02, 0.05),
        init_temperature: float = 0.05,
        learning_rate: float = 0.2,
        max_epochs: int = 200,
        patience: int = 10,
        l2: float = 1e-4,
        holdout_fraction: float = 0.1,
        selection_splits: int = 3,
        max_iter: int = 25,
        embedder: Any = None,
        cost_weight: float = 0.0,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            n_clusters=n_clusters,
            cluster_grid=cluster_grid,
            prior_strength=prior_strength,
            temperature=temperature,
            temperature_grid=temperature_grid,
            selection_splits=selection_splits,
            max_iter=max_iter,
            embedder=embedder,
            cost_weight=cost_weight,
            random_state=random_state,
        )
        self.init_temperature = init_temperature
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.patience = patience
        self.l2 = l2
        self.holdout_fraction = holdout_fraction

    def _validate_params(self) -> None:
        super()._validate_params()
        self._check_float("init_temperature", 1e-9)
        self._check_float("learning_rate", 1e-9)
        self._check_int("max_epochs", 0)
        self._check_int("patience", 1)
        self._check_float("l2", 0.0)
        self._check_float("holdout_fraction", 0.0, 0.9)

    def _fit_prompts(self, ctx: FitContext) -> None:
        super()._fit_prompts(ctx)
        c = self.centroids_.astype(np.float64)
        theta0 = 2.0 * c / self.init_temperature
        bias0 = -(c * c).sum(1) / self.init_temperature
        psi = cluster_accuracy(self.probe_weights_, ctx.probe_scores, self.prior_strength)  # (K, m)
        emb = ctx.train_embeddings.astype(np.float64)
        y = ctx.train_scores
        n = emb.shape[0]
        n_hold = round(n * self.holdout_fraction) if n >= 10 else 0
        perm = ctx.rng.permutation(n)
        hold, tr = perm[:n_hold], perm[n_hold:]
        theta, bias = theta0.copy(), bias0.copy()
        best = (math.inf, theta.copy(), bias.copy(), 0)
        opt = _Adam([theta, bias], self.learning_rate)
        e_tr, y_tr = emb[tr], y[tr]
        obs_tr = ~np.isnan(y_tr)
        y0 = np.where(obs_tr, y_tr, 0.0)
        n_obs = max(int(obs_tr.sum()), 1)
        waited = 0
        epoch = 0
        for epoch in range(1, self.max_epochs + 1):
            phi = softmax(e_tr @ theta.T + bias)
            p = np.clip(phi @ psi, _EPS, 1 - _EPS)
            dp = np.where(obs_tr, (p - y0) / (p * (1 - p)), 0.0) / n_obs
            dphi = dp @ psi.T
            dz = phi * (dphi - (dphi * phi).sum(1, keepdims=True))
            g_theta = dz.T @ e_tr + self.l2 * (theta - theta0)
            g_bias = dz.sum(0)
            opt.step([g_theta, g_bias])
            if n_hold:
                loss = self._loss(emb[hold], y[hold], theta, bias, psi)
                if loss < best[0] - 1e-6:
                    best = (loss, theta.copy(), bias.copy(), epoch)
                    waited = 0
                else:
                    waited += 1
                    if waited >= self.patience:
                        break
        if n_hold:
            loss, theta, bias, epoch = best
            if not math.isfinite(loss):
                theta, bias = theta0, bias0
                loss = self._loss(emb[hold], y[hold], theta, bias, psi)
        else:
            loss = math.nan
        self.theta_ = theta
        self.bias_ = bias
        self.epochs_ = int(epoch)
        self.holdout_loss_ = None if math.isnan(loss) else float(loss)

    @staticmethod
    def _loss(
        emb: NDArray[np.float64],
        y: NDArray[np.float64],
        theta: NDArray[np.float64],
        bias: NDArray[np.float64],
        psi: NDArray[np.float64],
    ) -> float:
        from .cluster import masked_log_loss

        return masked_log_loss(softmax(emb @ theta.T + bias) @ psi, y)

    def _prompt_map(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        return softmax(embeddings.astype(np.float64) @ self.theta_.T + self.bias_)
