"""Small NumPy k-means (k-means++ seeding, Lloyd iterations) and cluster assignment helpers.

Kept in NumPy on purpose: the routers need nothing more than this, and it keeps the
dependency surface to NumPy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["assign", "kmeans", "memberships", "sq_distances"]


def sq_distances(x: NDArray[np.floating], centroids: NDArray[np.floating]) -> NDArray[np.float64]:
    """Squared Euclidean distances, shape ``(n, k)``, clipped at 0."""
    x64 = np.asarray(x, dtype=np.float64)
    c64 = np.asarray(centroids, dtype=np.float64)
    d = (x64 * x64).sum(1)[:, None] - 2.0 * (x64 @ c64.T) + (c64 * c64).sum(1)[None, :]
    return np.maximum(d, 0.0)


def assign(x: NDArray[np.floating], centroids: NDArray[np.floating]) -> NDArray[np.intp]:
    """Index of the nearest centroid of each row of `x`."""
    return np.argmin(sq_distances(x, centroids), axis=1)


def memberships(x: NDArray[np.floating], centroids: NDArray[np.floating], temperature: float) -> NDArray[np.float64]:
    """Cluster memberships, rows summing to 1.

    ``temperature == 0`` gives the one-hot nearest centroid; otherwise the softmax of
    ``-squared_distance / temperature``.
    """
    d = sq_distances(x, centroids)
    if temperature <= 0:
        out = np.zeros_like(d)
        out[np.arange(d.shape[0]), np.argmin(d, axis=1)] = 1.0
        return out
    z = -(d - d.min(axis=1, keepdims=True)) / temperature
    w = np.exp(z)
    return w / w.sum(axis=1, keepdims=True)


def _plus_plus(
    x: NDArray[np.float32], xn: NDArray[np.float32], k: int, rng: np.random.Generator
) -> NDArray[np.float32]:
    n = x.shape[0]
    centers = np.empty((k, x.shape[1]), dtype=x.dtype)
    centers[0] = x[rng.integers(n)]
    closest = np.maximum(xn - 2.0 * (x @ centers[0]) + float(centers[0] @ centers[0]), 0.0)
    for i in range(1, k):
        cum = np.cumsum(closest, dtype=np.float64)
        total = float(cum[-1])
        idx = int(rng.integers(n)) if total <= 0 else min(int(np.searchsorted(cum, rng.random() * total)), n - 1)
        centers[i] = x[idx]
        dist = np.maximum(xn - 2.0 * (x @ centers[i]) + float(centers[i] @ centers[i]), 0.0)
        np.minimum(closest, dist, out=closest)
    return centers


def kmeans(
    x: NDArray[np.floating],
    k: int,
    rng: np.random.Generator,
    *,
    max_iter: int = 30,
    tol: float = 1e-4,
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Lloyd's k-means with k-means++ seeding (float32 arithmetic, float64 centroids out).

    Args:
        x: ``(n, d)`` points.
        k: Number of clusters (capped at ``n``).
        rng: Random generator (seeding and empty-cluster restarts).
        max_iter: Maximum Lloyd iterations.
        tol: Stop when the relative decrease of the inertia falls below this.

    Returns:
        ``(centroids, labels)`` with centroids of shape ``(k', d)``, ``k' = min(k, n)``.
    """
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    n = x32.shape[0]
    k = max(1, min(int(k), n))
    xn = (x32 * x32).sum(1)
    centers = _plus_plus(x32, xn, k, rng)
    labels = np.zeros(n, dtype=np.intp)
    prev = np.inf
    rows = np.arange(n)
    for _ in range(max_iter):
        d = xn[:, None] - 2.0 * (x32 @ centers.T) + (centers * centers).sum(1)[None, :]
        labels = np.argmin(d, axis=1)
        best = np.maximum(d[rows, labels], 0.0)
        inertia = float(best.sum(dtype=np.float64))
        counts = np.bincount(labels, minlength=k)
        onehot = np.zeros((n, k), dtype=np.float32)
        onehot[rows, labels] = 1.0
        sums = onehot.T @ x32
        empty = counts == 0
        centers = np.where(empty[:, None], centers, sums / np.maximum(counts, 1)[:, None].astype(np.float32))
        if empty.any():  # restart empty clusters on the worst-fitted points
            far = np.argsort(-best)[: int(empty.sum())]
            centers[np.flatnonzero(empty)] = x32[far]
        if prev - inertia <= tol * max(prev, 1e-12) and not empty.any():
            break
        prev = inertia
    centers64 = centers.astype(np.float64)
    return centers64, assign(x32, centers64)
