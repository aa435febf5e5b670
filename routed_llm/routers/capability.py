"""InferenceDynamics-style capability and knowledge profiling, without an LLM annotator.

Shi et al., "InferenceDynamics" (arXiv 2505.16303) tag every query with a ranked list of
required *capabilities* and *knowledge domains* (by prompting gpt-4o-mini), weight the
element at rank j by ``alpha^(j-1) / sum_m alpha^(m-1)``, profile each model per element
from its outcomes on an index set, and route by the weighted sum of capability and
knowledge scores.

What is kept: ranked top-r lists, the ``alpha^(rank-1)`` weights, per-element profile scores
built from probe outcomes, and the additive capability + knowledge score.
What is a CPU substitute (no LLM call):

* capabilities are ranked by cosine similarity to embedded keyword descriptions of the
  paper's capability list, refined by one k-means step on the training prompts;
* knowledge domains are ranked by similarity to the centroids of the training prompts of
  each ``task`` label (or of K-means clusters when the data has too few task labels);
* a profile score is the alpha-weighted *mean* probe score of the prompts tagged with the
  element (the paper divides by the unweighted count), shrunk toward the model's overall
  accuracy, so the routing score is a probability;
* cost enters through ``cost_weight`` at routing time (shared by every router), not
  through the paper's beta inside the profile.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from ._kmeans import kmeans
from .base import FitContext, Router
from .cluster import cluster_accuracy

__all__ = ["CAPABILITIES", "CapabilityRouter", "rank_weights"]

CAPABILITIES: dict[str, str] = {
    "reasoning": "Reasoning: multi-step logical reasoning and deduction; which conclusion follows; argue why.",
    "math": "Mathematical computation: calculate the numerical value, solve the equation, apply the formula, units.",
    "knowledge retrieval": "Knowledge retrieval: recall facts, definitions, names, dates and terminology.",
    "comprehension": "Comprehension: read the long passage or scenario and answer questions about the text.",
    "instruction following": "Instruction following: respect several format constraints, lengths and styles.",
    "coding": "Coding: write or debug a program, Python function, algorithm, data structure, complexity.",
    "multilingual": "Multilingual: text in a language other than English, translation between languages.",
    "agentic": "Agentic: plan a sequence of actions and tool calls to complete a task step by step.",
}
"""The paper's capability list (in-context learning dropped, as in its normalisation code)."""


def rank_weights(sims: NDArray[np.float64], top: int, alpha: float) -> NDArray[np.float64]:
    """Rows with ``alpha^(j-1)/sum`` on the `top` most similar columns (rank j), 0 elsewhere."""
    n, k = sims.shape
    r = max(1, min(top, k))
    order = np.argsort(-sims, axis=1)[:, :r]
    w = alpha ** np.arange(r, dtype=np.float64)
    w /= w.sum()
    out = np.zeros((n, k))
    out[np.arange(n)[:, None], order] = w[None, :]
    return out


def _normalise(x: NDArray[np.floating]) -> NDArray[np.float64]:
    x64 = np.asarray(x, dtype=np.float64)
    return x64 / np.maximum(np.linalg.norm(x64, axis=1, keepdims=True), 1e-12)


class CapabilityRouter(Router):
    """Capability + knowledge profile router (InferenceDynamics, CPU variant).

    Args:
        alpha: Rank decay of the tag weights, ``alpha^(rank-1)``.
        top_capabilities: Capabilities kept per prompt (r).
        top_domains: Knowledge domains kept per prompt.
        knowledge: ``"task"`` (one domain per task label), ``"cluster"`` (K-means domains)
            or ``"auto"`` (tasks when there are at least 3 labels with 5 training prompts).
        n_domains: Number of K-means domains when clusters are used.
        capability_weight: Share of the capability score in the routing score (the rest is
            the knowledge score); 0.5 equals the paper's sum up to a factor 2.
        refine_capabilities: Move each capability prototype to the mean of the training
            prompts it ranks first (one k-means step from the keyword descriptions).
        prior_strength: Pseudo-counts shrinking each profile score toward the model's
            overall probe accuracy.
        embedder: An `Embedder`, a name or None (MiniLM).
        cost_weight: Default quality/cost trade-off used by `route`.
        random_state: Seed for the probe split and clustering.

    Attributes:
        capability_names_, domain_names_: The tags.
        capability_protos_, domain_protos_: Their embedding prototypes.
        features_: ``(n_models, n_capabilities + n_domains)`` profile scores.
    """

    name = "capability"
    _array_state: ClassVar[tuple[str, ...]] = (
        "capability_protos_",
        "domain_protos_",
        "probe_cap_weights_",
        "probe_domain_weights_",
    )
    _json_state: ClassVar[tuple[str, ...]] = ("capability_names_", "domain_names_")

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        top_capabilities: int = 3,
        top_domains: int = 3,
        knowledge: str = "auto",
        n_domains: int = 20,
        capability_weight: float = 0.5,
        refine_capabilities: bool = True,
        prior_strength: float = 2.0,
        embedder: Any = None,
        cost_weight: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.alpha = alpha
        self.top_capabilities = top_capabilities
        self.top_domains = top_domains
        self.knowledge = knowledge
        self.n_domains = n_domains
        self.capability_weight = capability_weight
        self.refine_capabilities = refine_capabilities
        self.prior_strength = prior_strength
        self.embedder = embedder
        self.cost_weight = cost_weight
        self.random_state = random_state

    def _validate_params(self) -> None:
        super()._validate_params()
        self._check_float("alpha", 1e-6, 1.0)
        self._check_int("top_capabilities", 1)
        self._check_int("top_domains", 1)
        self._check_int("n_domains", 1)
        self._check_float("capability_weight", 0.0, 1.0)
        self._check_float("prior_strength", 0.0)
        if self.knowledge not in ("auto", "task", "cluster"):
            msg = f"knowledge must be 'auto', 'task' or 'cluster', got {self.knowledge!r}"
            raise ConfigError(msg)
        if not isinstance(self.refine_capabilities, bool):
            msg = f"refine_capabilities must be True or False, got {self.refine_capabilities!r}"
            raise ConfigError(msg)

    # ------------------------------------------------------------------ fit
    def _capability_prototypes(self, train: NDArray[np.float64]) -> NDArray[np.float64]:
        names = list(CAPABILITIES)
        protos = _normalise(self._embedder.embed([CAPABILITIES[c] for c in names]))
        if self.refine_capabilities:
            top = np.argmax(train @ protos.T, axis=1)
            for c in range(len(names)):
                members = train[top == c]
                if members.shape[0] >= 5:
                    protos[c] = members.mean(0)
            protos = _normalise(protos)
        return protos

    def _domain_prototypes(self, ctx: FitContext, train: NDArray[np.float64]) -> tuple[list[str], NDArray[np.float64]]:
        counts = Counter(ctx.train_tasks)
        usable = sorted(t for t, c in counts.items() if c >= 5)
        use_tasks = self.knowledge == "task" or (self.knowledge == "auto" and len(usable) >= 3)
        if use_tasks and usable:
            labels = np.array(ctx.train_tasks)
            protos = np.stack([train[labels == t].mean(0) for t in usable])
            return usable, _normalise(protos)
        centroids, _ = kmeans(train, self.n_domains, ctx.rng)
        return [f"cluster-{i}" for i in range(centroids.shape[0])], _normalise(centroids)

    def _fit_prompts(self, ctx: FitContext) -> None:
        train = _normalise(ctx.train_embeddings)
        self.capability_names_ = list(CAPABILITIES)
        self.capability_protos_ = self._capability_prototypes(train).astype(np.float32)
        self.domain_names_, domains = self._domain_prototypes(ctx, train)
        self.domain_protos_ = domains.astype(np.float32)
        self.probe_cap_weights_, self.probe_domain_weights_ = self._tags(ctx.probe_embeddings)

    def _tags(self, embeddings: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        e = _normalise(embeddings)
        cap = rank_weights(e @ self.capability_protos_.T.astype(np.float64), self.top_capabilities, self.alpha)
        dom = rank_weights(e @ self.domain_protos_.T.astype(np.float64), self.top_domains, self.alpha)
        return cap, dom

    def tag(self, prompt: str) -> dict[str, dict[str, float]]:
        """The weighted capability and knowledge tags of `prompt` (for inspection)."""
        cap, dom = self._tags(self.embed([prompt]))
        return {
            "capabilities": {self.capability_names_[j]: float(cap[0, j]) for j in np.flatnonzero(cap[0])},
            "knowledge": {self.domain_names_[j]: float(dom[0, j]) for j in np.flatnonzero(dom[0])},
        }

    # ------------------------------------------------------------------ hooks
    def _model_features(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        col = scores[:, None]
        cap = cluster_accuracy(self.probe_cap_weights_, col, self.prior_strength)[:, 0]
        dom = cluster_accuracy(self.probe_domain_weights_, col, self.prior_strength)[:, 0]
        return np.concatenate([cap, dom])

    def _predict(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        cap, dom = self._tags(embeddings)
        n_cap = cap.shape[1]
        w = float(self.capability_weight)
        return w * (cap @ self.features_[:, :n_cap].T) + (1 - w) * (dom @ self.features_[:, n_cap:].T)
