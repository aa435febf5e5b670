"""The evaluation protocol on a small synthetic dataset, with a deterministic fake embedder.

The embedder is a fake (unit tests must not load torch): it maps a prompt to a one-hot of
its task plus hash noise, so prompts of one task are neighbours and K-NN has something real
to learn. Everything else (dataset, routers, splits, metrics, JSON) is the real code.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from routed_llm.data import RoutingDataset
from routed_llm.errors import ConfigError, DataError
from routed_llm.evaluation import DEFAULT_LAMBDAS, area, evaluate, make_split, upper_hull
from routed_llm.evaluation.protocol import subsample
from routed_llm.routers.base import FitContext
from routed_llm.routers.knn import KNNRouter
from routed_llm.types import ModelProfile

TASKS = ("algebra", "biology", "law", "poetry")


class TaskHashEmbedder:
    """Deterministic fake: one-hot of the ``[task]`` prefix plus hash noise, L2-normalised."""

    id = "test:task-hash"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        out = np.zeros((len(texts), len(TASKS) + 12), dtype=np.float32)
        for i, t in enumerate(texts):
            task = t[1 : t.index("]")]
            out[i, TASKS.index(task)] = 1.0
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            out[i, len(TASKS) :] = 0.3 * np.random.default_rng(seed).normal(size=12)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def make_data(n_prompts: int = 400, n_models: int = 9, *, missing: float = 0.0, seed: int = 0) -> RoutingDataset:
    """Each model is strong on one task and weak elsewhere, at rising prices; optionally missing outcomes."""
    rng = np.random.default_rng(seed)
    skill = rng.uniform(0.1, 0.4, size=(n_models, len(TASKS)))
    skill[np.arange(n_models), np.arange(n_models) % len(TASKS)] = 0.9
    prompts = [
        {"prompt_id": f"p{i}", "task": TASKS[i % 4], "prompt": f"[{TASKS[i % 4]}] question number {i}"}
        for i in range(n_prompts)
    ]
    models = [
        {"model": f"m{j}", "price_in_per_1m": 0.1 * (j + 1), "price_out_per_1m": 0.3 * (j + 1) ** 2}
        for j in range(n_models)
    ]
    outcomes = []
    for i in range(n_prompts):
        for j in range(n_models):
            if rng.random() < missing:
                continue
            score = float(rng.random() < skill[j, i % 4])
            outcomes.append({"prompt_id": f"p{i}", "model": f"m{j}", "score": score, "output_chars": 80 + 7 * j})
    return RoutingDataset.from_records(name="synthetic", prompts=prompts, outcomes=outcomes, models=models)


@pytest.fixture(scope="module")
def data() -> RoutingDataset:
    return make_data()


# --------------------------------------------------------------------------- splits


def test_split_sizes_and_disjointness(data: RoutingDataset) -> None:
    s = make_split(data, 0, "unseen")
    # 9 models: a third = 3 unseen, 6 training. 400 prompts: 240 / 40 / 120.
    assert len(s.test_pool) == 3 and len(s.training_models) == 6
    assert set(s.test_pool).isdisjoint(s.training_models)
    assert set(s.test_pool) | set(s.training_models) == set(data.models)
    assert s.unseen_models == s.test_pool
    assert (s.train_rows.size, s.val_rows.size, s.n_test_split) == (240, 40, 120)
    assert s.test_rows.size == 120  # no missing outcome in this dataset
    rows = np.concatenate([s.train_rows, s.val_rows, s.test_rows])
    assert np.unique(rows).size == 400


def test_split_is_deterministic_per_seed(data: RoutingDataset) -> None:
    a, b, c = make_split(data, 3), make_split(data, 3), make_split(data, 4)
    assert a.test_pool == b.test_pool and np.array_equal(a.val_rows, b.val_rows)
    assert a.test_pool != c.test_pool or not np.array_equal(a.val_rows, c.val_rows)


@pytest.mark.parametrize(("n_models", "n_unseen"), [(3, 2), (4, 2), (5, 2), (9, 3), (10, 3), (32, 11)])
def test_unseen_count_is_a_rounded_third_at_least_two(n_models: int, n_unseen: int) -> None:
    # 5/3 = 1.67 -> 2; 10/3 = 3.33 -> 3; 32/3 = 10.67 -> 11; 4/3 = 1.33 -> 1 -> at least 2.
    s = make_split(make_data(n_prompts=340, n_models=n_models), 0, "unseen")
    assert len(s.test_pool) == n_unseen


def test_unseen_needs_three_models() -> None:
    with pytest.raises(DataError, match="at least 3 models"):
        make_split(make_data(n_prompts=340, n_models=2), 0, "unseen")


def test_seen_protocol_pool_is_every_model(data: RoutingDataset) -> None:
    s = make_split(data, 0, "seen")
    assert s.test_pool == s.training_models == data.models
    assert s.unseen_models == ()


def test_too_few_test_prompts_is_an_error() -> None:
    # 300 prompts: the test split has 90 < 100 prompts.
    with pytest.raises(DataError, match=r"only 90 of 90 test prompts .* \(need at least 100\)"):
        make_split(make_data(n_prompts=300), 0)
    # Enough prompts, but half of all outcomes missing: few test prompts are complete.
    with pytest.raises(DataError, match="have an outcome for every test-pool model"):
        make_split(make_data(n_prompts=400, missing=0.5), 0)


def test_unknown_protocol(data: RoutingDataset) -> None:
    with pytest.raises(ConfigError, match="'unseen' or 'seen'"):
        make_split(data, 0, "both")  # type: ignore[arg-type]


def test_subsample_is_deterministic(data: RoutingDataset) -> None:
    a, b = subsample(data, 150), subsample(data, 150)
    assert a.n_prompts == 150 and a.prompt_ids == b.prompt_ids
    assert subsample(data, None) is data and subsample(data, 10_000) is data


# --------------------------------------------------------------------------- unseen models


class SpyRouter(KNNRouter):
    """K-NN that records what `fit` saw and which models arrived through `add_model`."""

    name = "spy"
    uses_training_models = True  # so that fit passes the training prompts to _fit_prompts
    log: ClassVar[list[tuple[Any, ...]]] = []

    def _fit_prompts(self, ctx: FitContext) -> None:
        SpyRouter.log.append(("fit", ctx.models, ctx.train_scores.shape[0] + ctx.probe_scores.shape[0]))

    def add_model(self, profile: ModelProfile) -> SpyRouter:
        SpyRouter.log.append(("add", profile.model, profile.probe_ids))
        return super().add_model(profile)


def test_unseen_models_join_through_add_model_only(data: RoutingDataset) -> None:
    SpyRouter.log.clear()
    report = evaluate(data, [SpyRouter(k=5)], seeds=2, embedder=TaskHashEmbedder(), progress=False)
    assert report.routers == ("spy",)
    fits = [e for e in SpyRouter.log if e[0] == "fit"]
    adds = [e for e in SpyRouter.log if e[0] == "add"]
    assert len(fits) == 2
    for trial, fit in zip(report.trials, fits, strict=True):
        s = trial.split
        assert fit[1] == s.training_models  # fit saw training models only
        assert not set(fit[1]) & set(s.test_pool)
        assert fit[2] == s.train_rows.size + s.val_rows.size  # never a test prompt
        mine = [a for a in adds if a[1] in s.test_pool][: len(s.test_pool)]
        assert [a[1] for a in mine] == list(s.test_pool)
        val_ids = tuple(data.prompt_ids[i] for i in s.val_rows)
        assert all(a[2] == val_ids for a in mine)  # profiled on the validation prompts only
    assert len(adds) == sum(len(t.split.test_pool) for t in report.trials)


def test_seen_protocol_adds_no_model(data: RoutingDataset) -> None:
    SpyRouter.log.clear()
    evaluate(data, [SpyRouter(k=5)], protocol="seen", seeds=1, embedder=TaskHashEmbedder(), progress=False)
    assert [e[0] for e in SpyRouter.log] == ["fit"]
    assert SpyRouter.log[0][1] == data.models


# --------------------------------------------------------------------------- full run and JSON


@pytest.fixture(scope="module")
def report(data: RoutingDataset) -> Any:
    rep = evaluate(
        data,
        ["zero", "random", "oracle", "best-single", "knn"],
        seeds=4,
        router_params={"knn": {"k": 5}},
        embedder=TaskHashEmbedder(),
        progress=False,
    )
    return rep


def test_test_prompts_are_embedded_once_up_front(data: RoutingDataset) -> None:
    embedder = TaskHashEmbedder()
    rep = evaluate(data, ["knn", "best-single"], seeds=[2], embedder=embedder, progress=False)
    test_texts = {data.prompts[i] for i in rep.trials[0].split.test_rows}
    assert embedder.seen[: data.n_prompts] == list(data.prompts)  # one up-front pass over every prompt
    later = embedder.seen[data.n_prompts :]
    assert later  # routers embed their own probe (and training) prompts when fitting
    assert not test_texts & set(later)  # ... but the test prompts are never embedded again


def test_json_shape(report: Any) -> None:
    rep = report
    doc = json.loads(rep.to_json())
    assert doc["dataset"] == "synthetic" and doc["protocol"] == "unseen" and doc["seeds"] == 4
    assert set(doc["routers"]) == {"zero", "random", "oracle", "best-single", "knn"}
    for name, entry in doc["routers"].items():
        for metric in ("area", "area_50", "qnc", "max_quality_accuracy"):
            s = entry[metric]
            assert {"mean", "std", "per_seed"} <= set(s)
            assert len(s["per_seed"]) == 4
            assert all(v is None or isinstance(v, float) for v in s["per_seed"])
        assert isinstance(entry["qnc_unreached"], int)
        assert entry["qnc_unreached"] == sum(v is None for v in entry["qnc"]["per_seed"])
        if name != "knn":
            vs = entry["vs_knn"]["area"]
            assert vs["wins"] + vs["losses"] + vs["ties"] == 4 and 0 < vs["p_value"] <= 1
    assert "vs_knn" not in doc["routers"]["knn"]
    for ref in ("best_single_accuracy", "oracle_accuracy"):
        assert len(doc["reference"][ref]["per_seed"]) == 4
    assert set(doc["seed0"]["curves"]) == set(doc["routers"])


def test_metrics_are_consistent(report: Any) -> None:
    rep = report
    for t in rep.trials:
        c = t.curves
        for curve in c.values():
            assert 0 <= curve.area <= 1 and 0 <= curve.area_50 <= 0.5
        # zero router = hull of the single models' test points
        zero = upper_hull(t.single_costs, t.single_scores)
        assert c["zero"].area == pytest.approx(area(zero))
        assert c["zero"].max_quality_accuracy == pytest.approx(t.best_single_accuracy)
        assert c["zero"].qnc <= 1.0 + 1e-9  # the best model itself is on the zero hull
        # the most expensive test-pool model has normalised cost 1
        assert t.single_costs.max() == pytest.approx(1.0)
        # the oracle routes with the true scores: its lambda=0 accuracy is the oracle accuracy
        assert c["oracle"].max_quality_accuracy == pytest.approx(t.oracle_accuracy)
        assert c["oracle"].area >= max(v.area for v in c.values()) - 1e-12
        assert t.oracle_accuracy >= t.best_single_accuracy
        # each swept router gives one point per lambda
        assert len(c["knn"].costs) == len(DEFAULT_LAMBDAS)


def test_knn_learns_the_task_structure(report: Any) -> None:
    rep = report
    # Per-task skills + task-aware embeddings: K-NN must beat random choice and the zero
    # router on every seed, and stay below the oracle.
    knn, rnd, zero = rep.values("knn", "area"), rep.values("random", "area"), rep.values("zero", "area")
    assert all(k > r for k, r in zip(knn, rnd, strict=True))
    assert all(k > z for k, z in zip(knn, zero, strict=True))
    assert all(k < o for k, o in zip(knn, rep.values("oracle", "area"), strict=True))


def test_table_lists_every_router(report: Any) -> None:
    rep = report
    table = rep.table()
    for name in rep.routers:
        assert f"\n{name} " in table
    assert "oracle accuracy" in table and "vs knn" in table


def test_router_parameters(data: RoutingDataset) -> None:
    rep = evaluate(
        data,
        ["knn:k=3", "best-single"],
        seeds=1,
        embedder=TaskHashEmbedder(),
        router_params={"best-single": {"random_state": 5}},
        progress=False,
    )
    assert rep.routers == ("knn:k=3", "best-single")
    with pytest.raises(ConfigError, match="unknown router 'nope'"):
        evaluate(data, ["nope"], seeds=1, embedder=TaskHashEmbedder(), progress=False)
    with pytest.raises(ConfigError, match="does not accept"):
        evaluate(data, ["knn:bogus=1"], seeds=1, embedder=TaskHashEmbedder(), progress=False)
    with pytest.raises(ConfigError, match="listed twice"):
        evaluate(data, ["knn", "knn"], seeds=1, embedder=TaskHashEmbedder(), progress=False)
    with pytest.raises(ConfigError, match="start with 0"):
        evaluate(data, ["knn"], seeds=1, embedder=TaskHashEmbedder(), lambdas=[1.0, math.inf], progress=False)
    with pytest.raises(ConfigError, match="seeds"):
        evaluate(data, ["knn"], seeds=0, embedder=TaskHashEmbedder(), progress=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("zero,knn", ["zero", "knn"]),
        (" zero , knn ,", ["zero", "knn"]),
        ("knn:k=20:prior_strength=0,zero", ["knn:k=20,prior_strength=0", "zero"]),
        ("knn:k=20,prior_strength=0,zero", ["knn:k=20,prior_strength=0", "zero"]),
    ],
)
def test_cli_router_list_parsing(text: str, expected: list[str]) -> None:
    from routed_llm.cli._eval import parse_routers

    assert parse_routers(text) == expected


def test_cli_router_list_must_not_be_empty() -> None:
    from routed_llm.cli._eval import parse_routers

    with pytest.raises(ConfigError, match="--routers is empty"):
        parse_routers(" , ")


@pytest.mark.slow  # imports matplotlib
def test_plot_writes_a_png(report: Any, tmp_path: Any) -> None:
    from routed_llm.evaluation.plot import plot_report

    out = plot_report(report, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000  # a real figure, not an empty canvas
