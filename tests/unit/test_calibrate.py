"""`calibrate`: the cost knob for a mean-cost or share target, on the user's prompts."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import pytest

from routed_llm.calibration import calibrate, routed_choices
from routed_llm.data import RoutingDataset
from routed_llm.errors import ConfigError, DataError, NotFittedError, RoutingError
from routed_llm.routers import Router, make_router

TOPICS = {
    "math": ["solve", "equation", "integer", "polynomial", "root"],
    "law": ["court", "contract", "statute", "plaintiff", "appeal"],
}
SKILL = {"cheap": (0.3, 0.3), "mid": (0.8, 0.4), "premium": (0.9, 0.9), "dud": (0.05, 0.05)}
PRICE = {"cheap": 0.1, "mid": 1.0, "premium": 10.0, "dud": 5.0}


class HashEmbedder:
    """Deterministic bag-of-words embedder (a unit-test fake)."""

    @property
    def id(self) -> str:
        return "test:hash-bow-32"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 32), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in text.split():
                seed = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[i] += np.random.default_rng(seed).standard_normal(32).astype(np.float32)
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


def make_dataset(seed: int, n: int = 120) -> RoutingDataset:
    rng = np.random.default_rng(seed)
    prompts, outcomes = [], []
    for t, (topic, words) in enumerate(TOPICS.items()):
        for i in range(n):
            pid = f"{seed}-{topic}-{i}"
            text = " ".join(rng.choice(words, 4)) + f" n{seed}x{i}"
            prompts.append({"prompt_id": pid, "task": topic, "prompt": text})
            outcomes += [{"prompt_id": pid, "model": m, "score": float(rng.random() < SKILL[m][t])} for m in SKILL]
    models = [{"model": m, "price_in_per_1m": PRICE[m], "price_out_per_1m": PRICE[m]} for m in SKILL]
    return RoutingDataset.from_records(name="calib", prompts=prompts, outcomes=outcomes, models=models)


@pytest.fixture(scope="module")
def router() -> Router:
    return make_router("knn", k=5, embedder=HashEmbedder()).fit(make_dataset(0))


@pytest.fixture(scope="module")
def sample() -> list[str]:
    return list(make_dataset(1, n=60).prompts)


def mean_cost(router: Router, prompts: list[str], lam: float) -> float:
    picks = [router.models_.index(router.route(p, cost_weight=lam).model) for p in prompts]
    return float(np.mean(router.expected_costs_[picks]))


def share(router: Router, prompts: list[str], lam: float, model: str) -> float:
    return float(np.mean([router.route(p, cost_weight=lam).model == model for p in prompts]))


def test_mean_cost_target_is_met_with_the_smallest_weight(router: Router, sample: list[str]) -> None:
    top, floor = mean_cost(router, sample, 0.0), mean_cost(router, sample, math.inf)
    assert floor < top
    target = floor + 0.4 * (top - floor)
    lam = calibrate(router, sample, target_mean_cost=target)
    assert 0 < lam < math.inf
    assert mean_cost(router, sample, lam) <= target  # route() agrees with calibrate
    assert mean_cost(router, sample, lam * 0.98) > target  # and no smaller weight would do


def test_generous_budget_means_quality_only(router: Router, sample: list[str]) -> None:
    assert calibrate(router, sample, target_mean_cost=1e9) == 0.0


def test_unreachable_budget_is_a_config_error(router: Router, sample: list[str]) -> None:
    floor = mean_cost(router, sample, math.inf)
    with pytest.raises(ConfigError, match="unreachable"):
        calibrate(router, sample, target_mean_cost=floor / 2)
    with pytest.raises(ConfigError):
        calibrate(router, sample, target_mean_cost=-1.0)


def test_share_target(router: Router, sample: list[str]) -> None:
    lam = calibrate(router, sample, target_share=("premium", 0.5))
    got = share(router, sample, lam, "premium")
    reachable = [share(router, sample, float(x), "premium") for x in np.logspace(-3, 2, 60)]
    assert 0 < got < 1
    assert abs(got - 0.5) <= min(abs(r - 0.5) for r in reachable) + 1e-9  # the closest reachable share
    lam_all = calibrate(router, sample, target_share=("cheap", 1.0))
    assert share(router, sample, lam_all, "cheap") == 1.0
    assert share(router, sample, lam_all / 2, "cheap") < 1.0  # the smallest such weight
    assert calibrate(router, sample, target_share=("premium", 1.0)) == 0.0


def test_unreachable_share_is_a_config_error(router: Router, sample: list[str]) -> None:
    # "dud" is worse and dearer than "cheap": no cost weight ever routes to it
    with pytest.raises(ConfigError, match="unreachable"):
        calibrate(router, sample, target_share=("dud", 0.5))


def test_candidates_restrict_the_choice(router: Router, sample: list[str]) -> None:
    lam = calibrate(router, sample, target_share=("mid", 0.5), candidates=["mid", "premium"])
    picks = [router.route(p, candidates=["mid", "premium"], cost_weight=lam).model for p in sample]
    assert 0 < np.mean([p == "mid" for p in picks]) < 1
    with pytest.raises(RoutingError):
        calibrate(router, sample, target_share=("cheap", 0.5), candidates=["mid", "premium"])
    with pytest.raises(RoutingError):
        calibrate(router, sample, target_mean_cost=1.0, candidates=["mid", "gpt-imaginary"])


def test_bad_calls(router: Router, sample: list[str]) -> None:
    with pytest.raises(ConfigError):
        calibrate(router, sample)
    with pytest.raises(ConfigError):
        calibrate(router, sample, target_mean_cost=1.0, target_share=("mid", 0.5))
    with pytest.raises(ConfigError):
        calibrate(router, sample, target_share=("mid", 1.5))
    with pytest.raises(DataError):
        calibrate(router, [], target_mean_cost=1.0)
    with pytest.raises(NotFittedError):
        calibrate(make_router("knn"), sample, target_mean_cost=1.0)


def test_routed_choices_matches_route(router: Router, sample: list[str]) -> None:
    proba = router.predict_proba(sample)
    for lam in (0.0, 0.05, 0.5, math.inf):
        picks = routed_choices(proba, router.expected_costs_, lam)
        assert [router.models_[j] for j in picks] == [router.route(p, cost_weight=lam).model for p in sample]
