"""Model-SAT-style router: a model is its aptitude-test accuracy vector.

Zhang, Zhan and Ye, "Capability Instruction Tuning" (AAAI 2025) describe a model by its
accuracies on an aptitude test (tasks x items) and learn one scorer
``f(instruction, model representation) -> P(correct)`` across many models, so an unseen model
is scored from its representation alone. The paper's scorer is a fine-tuned 3.8B LLM; this is
a CPU/NumPy version of the same idea:

* aptitude test = the probe prompts, grouped into tasks by their ``task`` label (or K-means
  clusters when there are too few labels); the model vector ``a(h)`` holds the logits of the
  model's shrunk per-task accuracies plus its overall accuracy;
* scorer ``z(x, h) = s * pi(x)^T a(h) + e(x)^T W a(h) + w_e^T e(x) + w_a^T a(h) + b``:
  ``pi(x)`` is a softmax classifier (fitted on the training prompts) giving the probability
  that x belongs to each aptitude task, so the first term is the model's aptitude on the
  prompt's task(s) and carries over to any model; the bilinear term lets the prompt weigh
  other aptitudes, ``w_e`` learns prompt difficulty, ``w_a`` overall strength;
* trained on training prompts x training models (their vectors measured on the probe
  prompts, like an unseen model's) with a pointwise log loss plus the listwise loss of the
  paper (groups of 1 positive and k-1 negatives). Our groups contrast *models for a fixed
  prompt* (the comparison routing makes), not instructions for a fixed model as in the
  paper; the pointwise term keeps the per-model calibration that the paper's grouping
  would teach;
* a Platt scaling step on held-out training prompts turns scores into probabilities.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from ._kmeans import assign, kmeans, memberships
from .base import FitContext, Router
from .cluster import cluster_accuracy
from .learned_map import _Adam, softmax

__all__ = ["AptitudeRouter"]

_EPS = 1e-4


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    q = np.clip(p, 0.01, 0.99)
    return np.log(q / (1 - q))


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class AptitudeRouter(Router):
    """Aptitude-vector router (Model-SAT idea, NumPy scorer).

    Args:
        aptitude_tasks: ``"task"`` (probe ``task`` labels), ``"cluster"`` (K-means on the
            training prompts) or ``"auto"`` (tasks when there are at least 3 labels).
        n_tasks: Number of clusters when clusters are used.
        prior_strength: Pseudo-counts shrinking per-task accuracies toward the overall one.
        listwise_weight: Weight of the listwise (1 positive, k-1 negatives) loss.
        group_size: k, models per listwise group.
        l2: L2 penalty on the scorer's weights.
        learning_rate: Adam step size.
        max_epochs: Maximum full-batch steps.
        patience: Early-stopping patience on the held-out log loss.
        holdout_fraction: Training prompts held out for early stopping and Platt scaling.
        embedder: An `Embedder`, a name or None (MiniLM).
        cost_weight: Default quality/cost trade-off used by `route`.
        random_state: Seed for every random choice.

    Attributes:
        task_names_: The aptitude tasks.
        task_clf_, task_bias_: The prompt -> aptitude-task classifier.
        scale_, W_, w_e_, w_a_, bias_: Scorer weights; platt_: ``[scale, offset]``.
        features_: ``(n_models, n_tasks + 1)`` aptitude vectors (logits).
    """

    name = "aptitude"
    _array_state: ClassVar[tuple[str, ...]] = (
        "probe_task_weights_",
        "centroids_",
        "task_clf_",
        "task_bias_",
        "scale_",
        "W_",
        "w_e_",
        "w_a_",
        "bias_",
        "platt_",
    )
    _json_state: ClassVar[tuple[str, ...]] = ("task_names_", "epochs_", "holdout_loss_")

    def __init__(
        self,
        *,
        aptitude_tasks: str = "auto",
        n_tasks: int = 20,
        prior_strength: float = 2.0,
        listwise_weight: float = 0.5,
        group_size: int = 4,
        l2: float = 1e-3,
        learning_rate: float = 0.01,
        max_epochs: int = 400,
        patience: int = 25,
        holdout_fraction: float = 0.15,
        embedder: Any = None,
        cost_weight: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.aptitude_tasks = aptitude_tasks
        self.n_tasks = n_tasks
        self.prior_strength = prior_strength
        self.listwise_weight = listwise_weight
        self.group_size = group_size
        self.l2 = l2
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.patience = patience
        self.holdout_fraction = holdout_fraction
        self.embedder = embedder
        self.cost_weight = cost_weight
        self.random_state = random_state

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.aptitude_tasks not in ("auto", "task", "cluster"):
            msg = f"aptitude_tasks must be 'auto', 'task' or 'cluster', got {self.aptitude_tasks!r}"
            raise ConfigError(msg)
        self._check_int("n_tasks", 1)
        self._check_float("prior_strength", 0.0)
        self._check_float("listwise_weight", 0.0)
        self._check_int("group_size", 2)
        self._check_float("l2", 0.0)
        self._check_float("learning_rate", 1e-9)
        self._check_int("max_epochs", 0)
        self._check_int("patience", 1)
        self._check_float("holdout_fraction", 0.0, 0.9)

    # ------------------------------------------------------------------ aptitude test
    def _task_weights(self, ctx: FitContext) -> NDArray[np.float64]:
        counts = Counter(ctx.probe_tasks)
        usable = sorted(t for t, c in counts.items() if c >= 3)
        use_tasks = self.aptitude_tasks == "task" or (self.aptitude_tasks == "auto" and len(usable) >= 3)
        dim = ctx.probe_embeddings.shape[1]
        if use_tasks and usable:
            self.task_names_ = usable
            self.centroids_ = np.zeros((0, dim), dtype=np.float32)
            labels = np.array(ctx.probe_tasks)
            return (labels[:, None] == np.array(usable)[None, :]).astype(np.float64)
        centroids, _ = kmeans(ctx.train_embeddings, self.n_tasks, ctx.rng)
        self.centroids_ = centroids.astype(np.float32)
        self.task_names_ = [f"cluster-{i}" for i in range(centroids.shape[0])]
        return memberships(ctx.probe_embeddings, self.centroids_, 0.0)

    def _vectors(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(m, n_tasks + 1)`` aptitude vectors of the columns of `scores`."""
        acc = cluster_accuracy(self.probe_task_weights_, scores, self.prior_strength).T
        obs = ~np.isnan(scores)
        glob = np.where(obs, scores, 0.0).sum(0) / np.maximum(obs.sum(0), 1)
        return np.column_stack([_logit(acc), _logit(glob)])

    def _model_features(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._vectors(scores[:, None])[0]

    # ------------------------------------------------------------------ scorer
    def _task_posterior(self, embeddings: NDArray[np.floating]) -> NDArray[np.float64]:
        """``(n, n_tasks)`` P(aptitude task | prompt) from the fitted softmax classifier."""
        return softmax(np.asarray(embeddings, dtype=np.float64) @ self.task_clf_.T + self.task_bias_)

    def _fit_task_classifier(self, emb: NDArray[np.float64], labels: NDArray[np.intp], n_classes: int) -> None:
        """Softmax regression embedding -> aptitude task, on the training prompts (Adam, float32)."""
        x = emb.astype(np.float32)
        onehot = np.zeros((x.shape[0], n_classes), dtype=np.float32)
        onehot[np.arange(x.shape[0]), labels] = 1.0
        w, b = np.zeros((n_classes, x.shape[1]), dtype=np.float32), np.zeros(n_classes, dtype=np.float32)
        opt = _Adam([w, b], 0.2)
        for _ in range(60):
            g = (softmax(x @ w.T + b).astype(np.float32) - onehot) / x.shape[0]
            opt.step([g.T @ x + 1e-4 * w, g.sum(0)])
        self.task_clf_, self.task_bias_ = w.astype(np.float64), b.astype(np.float64)

    def _raw(
        self, e: NDArray[np.float64], v: NDArray[np.float64], params: list[NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Scores before Platt scaling, ``(n_prompts, n_models)``."""
        matched = self._task_posterior(e) @ v[:, :-1].T  # aptitude on the prompt's task(s)
        return self._linear(e, matched, v, params)

    @staticmethod
    def _linear(
        e: NDArray[np.float64], matched: NDArray[np.float64], v: NDArray[np.float64], params: list[NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        s, w, w_e, w_a, b = params
        return s[0] * matched + (e @ w) @ v.T + (e @ w_e)[:, None] + (v @ w_a)[None, :] + b[0]

    def _fit_prompts(self, ctx: FitContext) -> None:
        self.probe_task_weights_ = self._task_weights(ctx)
        emb = ctx.train_embeddings.astype(np.float64)
        self._fit_task_classifier(emb, self._train_task_labels(ctx), len(self.task_names_))
        v = self._vectors(ctx.probe_scores)  # (m, d) training models, measured on the probes
        y = ctx.train_scores
        n, dim = emb.shape
        rng = ctx.rng
        n_hold = round(n * self.holdout_fraction) if n >= 20 else 0
        perm = rng.permutation(n)
        hold, tr = perm[:n_hold], perm[n_hold:]
        d = v.shape[1]
        params = [np.ones(1), np.zeros((dim, d)), np.zeros(dim), np.zeros(d), np.zeros(1)]
        opt = _Adam(params, self.learning_rate)
        e_tr, y_tr = emb[tr], y[tr]
        matched_tr = self._task_posterior(e_tr) @ v[:, :-1].T
        e_hold, y_hold = emb[hold], y[hold]
        matched_hold = self._task_posterior(e_hold) @ v[:, :-1].T
        obs = ~np.isnan(y_tr)
        y0 = np.where(obs, y_tr, 0.0)
        n_obs = max(int(obs.sum()), 1)
        pos_rows = np.flatnonzero(((y0 > 0.5) & obs).any(1) & ((y0 <= 0.5) & obs).any(1))
        best = (math.inf, [p.copy() for p in params], 0)
        waited, epoch = 0, 0
        for epoch in range(1, self.max_epochs + 1):
            _, w, w_e, w_a, _ = params
            z = self._linear(e_tr, matched_tr, v, params)
            g = np.where(obs, _sigmoid(z) - y0, 0.0) / n_obs
            if self.listwise_weight > 0 and pos_rows.size:
                g = g + self.listwise_weight * self._listwise_grad(z, y0, obs, pos_rows, rng)
            grads = [
                np.array([(g * matched_tr).sum()]),
                e_tr.T @ (g @ v) + self.l2 * w,
                e_tr.T @ g.sum(1) + self.l2 * w_e,
                v.T @ g.sum(0) + self.l2 * w_a,
                np.array([g.sum()]),
            ]
            opt.step(grads)
            if n_hold:
                loss = self._log_loss(self._linear(e_hold, matched_hold, v, params), y_hold)
                if loss < best[0] - 1e-6:
                    best = (loss, [p.copy() for p in params], epoch)
                    waited = 0
                else:
                    waited += 1
                    if waited >= self.patience:
                        break
        if n_hold and math.isfinite(best[0]):
            _, params, epoch = best
        self.scale_, self.W_, self.w_e_, self.w_a_, self.bias_ = params
        self.epochs_ = int(epoch)
        self.platt_ = np.array([1.0, 0.0])
        self.holdout_loss_: float | None = None
        if n_hold:
            z_hold = self._raw(emb[hold], v, params)
            self.platt_ = self._platt(z_hold, y[hold])
            self.holdout_loss_ = self._log_loss(self.platt_[0] * z_hold + self.platt_[1], y[hold])

    def _train_task_labels(self, ctx: FitContext) -> NDArray[np.intp]:
        """Aptitude-task label of each training prompt (its cluster, or its task label)."""
        if self.centroids_.shape[0]:
            return assign(ctx.train_embeddings, self.centroids_)
        pos = {t: i for i, t in enumerate(self.task_names_)}
        labels = np.array([pos.get(t, -1) for t in ctx.train_tasks], dtype=np.intp)
        unknown = labels < 0
        if unknown.any():  # a task with too few probes: label those prompts by the nearest known task
            dim = ctx.train_embeddings.shape[1]
            cent = np.stack(
                [
                    ctx.train_embeddings[labels == i].mean(0) if (labels == i).any() else np.full(dim, np.inf)
                    for i in range(len(self.task_names_))
                ]
            )
            cent = np.where(np.isfinite(cent), cent, 1e6)
            labels[unknown] = assign(ctx.train_embeddings[unknown], cent)
        return labels

    def _listwise_grad(
        self,
        z: NDArray[np.float64],
        y0: NDArray[np.float64],
        obs: NDArray[np.bool_],
        rows: NDArray[np.intp],
        rng: np.random.Generator,
    ) -> NDArray[np.float64]:
        """Gradient of the mean softmax loss over groups (1 correct, k-1 wrong models)."""
        k = self.group_size
        pos_mask = (y0[rows] > 0.5) & obs[rows]
        neg_mask = (y0[rows] <= 0.5) & obs[rows]
        # sample one positive and k-1 negatives per row via random keys
        keys = rng.random(pos_mask.shape)
        pos = np.argmax(np.where(pos_mask, keys, -1.0), axis=1)
        neg_keys = rng.random((rows.size, k - 1, pos_mask.shape[1]))
        negs = np.argmax(np.where(neg_mask[:, None, :], neg_keys, -1.0), axis=2)  # with replacement
        cols = np.column_stack([pos, negs])  # (r, k)
        zz = z[rows[:, None], cols]
        zz = zz - zz.max(1, keepdims=True)
        soft = np.exp(zz)
        soft /= soft.sum(1, keepdims=True)
        soft[:, 0] -= 1.0
        flat = np.repeat(rows, k) * z.shape[1] + cols.ravel()
        return np.bincount(flat, weights=soft.ravel() / rows.size, minlength=z.size).reshape(z.shape)

    @staticmethod
    def _log_loss(z: NDArray[np.float64], y: NDArray[np.float64]) -> float:
        obs = ~np.isnan(y)
        p = np.clip(_sigmoid(z[obs]), _EPS, 1 - _EPS)
        t = y[obs]
        return float(-(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()) if t.size else math.nan

    @staticmethod
    def _platt(z: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Fit ``sigmoid(a z + c)`` to held-out outcomes by Newton steps."""
        obs = ~np.isnan(y)
        x, t = z[obs], y[obs]
        a, c = 1.0, 0.0
        for _ in range(50):
            p = _sigmoid(a * x + c)
            r = p - t
            s = np.maximum(p * (1 - p), 1e-9)
            g = np.array([(r * x).sum(), r.sum()])
            h = np.array([[(s * x * x).sum(), (s * x).sum()], [(s * x).sum(), s.sum()]]) + 1e-6 * np.eye(2)
            step = np.linalg.solve(h, g)
            a, c = a - step[0], c - step[1]
            if np.abs(step).max() < 1e-8:
                break
        if not (math.isfinite(a) and math.isfinite(c)) or a <= 0:
            return np.array([1.0, 0.0])
        return np.array([a, c])

    def _predict(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        params = [self.scale_, self.W_, self.w_e_, self.w_a_, self.bias_]
        z = self._raw(embeddings.astype(np.float64), self.features_, params)
        return _sigmoid(self.platt_[0] * z + self.platt_[1])
