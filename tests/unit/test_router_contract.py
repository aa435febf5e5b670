"""One conformance suite over every router in `routed_llm.routers.ROUTERS`.

The data is synthetic on purpose (fast, offline): the prompt text names its task, the
embedder is a deterministic bag-of-words hash (a fake, unit tests only), and each task has
one model that is right on it, so a router that reads the prompt must beat random choice.
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from routed_llm.data import RoutingDataset
from routed_llm.errors import ArtifactError, ConfigError, DataError, NotFittedError, RoutingError
from routed_llm.routers import ROUTERS, Router, make_router
from routed_llm.types import ModelProfile

ALL = sorted(ROUTERS)
TASKS = ("algebra", "history", "chemistry", "law")
VOCAB = {
    "algebra": ["solve", "equation", "integer", "polynomial", "root", "variable", "sum", "product"],
    "history": ["empire", "war", "king", "century", "treaty", "dynasty", "revolution", "ancient"],
    "chemistry": ["molecule", "reaction", "acid", "bond", "electron", "compound", "oxidation", "gas"],
    "law": ["court", "contract", "statute", "plaintiff", "liability", "judge", "appeal", "tort"],
}
FILLER = ["the", "a", "of", "which", "what", "is", "following", "true", "about", "given", "best"]
# model -> accuracy per task; "wide" is a mediocre generalist, "weak" is poor everywhere
SKILL = {
    "alg-expert": (0.95, 0.15, 0.15, 0.15),
    "hist-expert": (0.15, 0.95, 0.15, 0.15),
    "chem-expert": (0.15, 0.15, 0.95, 0.15),
    "law-expert": (0.15, 0.15, 0.15, 0.95),
    "wide": (0.5, 0.5, 0.5, 0.5),
    "weak": (0.2, 0.2, 0.2, 0.2),
}
PRICE = {"alg-expert": 1.0, "hist-expert": 1.0, "chem-expert": 1.0, "law-expert": 1.0, "wide": 3.0, "weak": 0.1}

# hyperparameters that differ from the defaults (stored verbatim) and invalid ones (fit fails)
CUSTOM: dict[str, dict[str, Any]] = {
    "knn": {"k": 7, "prior_strength": 0.5},
    "cluster": {"n_clusters": 4, "prior_strength": 1.5, "cluster_grid": [2, 4]},
    "learned-map": {"n_clusters": 4, "max_epochs": 50, "learning_rate": 0.05},
    "capability": {"alpha": 0.7, "top_domains": 2, "knowledge": "task"},
    "aptitude": {"group_size": 3, "max_epochs": 100, "l2": 0.01},
    "best-single": {"cost_weight": 0.5},
    "random": {"cost_weight": 0.25},
}
BAD: dict[str, dict[str, Any]] = {
    "knn": {"k": 0},
    "cluster": {"n_clusters": "many"},
    "learned-map": {"learning_rate": -1.0},
    "capability": {"alpha": 2.0},
    "aptitude": {"group_size": 1},
    "best-single": {"cost_weight": -1.0},
    "random": {"random_state": "x"},
}
PROMPT_BLIND = {"best-single", "random"}  # predictions do not depend on the prompt
# settings for the quality checks on this small data (the default k=40 of knn spans every probe)
QUALITY: dict[str, dict[str, Any]] = {"knn": {"k": 5}}


class HashEmbedder:
    """Deterministic bag-of-words embedder (a test fake; real code uses MiniLM)."""

    dim = 48

    @property
    def id(self) -> str:
        return "test:hash-bow-48"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in text.lower().split():
                seed = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[i] += np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


EMBEDDER = HashEmbedder()


def make_dataset(seed: int, n_per_task: int = 80, models: Sequence[str] = tuple(SKILL)) -> RoutingDataset:
    """Prompts whose words reveal their task; outcomes drawn from `SKILL`."""
    rng = np.random.default_rng(seed)
    prompts, outcomes = [], []
    for t, task in enumerate(TASKS):
        for i in range(n_per_task):
            words = list(rng.choice(VOCAB[task], size=4)) + list(rng.choice(FILLER, size=3))
            rng.shuffle(words)
            pid = f"s{seed}-{task}-{i}"
            prompts.append({"prompt_id": pid, "task": task, "prompt": " ".join(words) + f" q{seed}x{t}x{i}"})
            for m in models:
                outcomes.append({"prompt_id": pid, "model": m, "score": float(rng.random() < SKILL[m][t])})
    rows = [{"model": m, "price_in_per_1m": PRICE[m], "price_out_per_1m": PRICE[m]} for m in models]
    return RoutingDataset.from_records(name=f"synthetic-{seed}", prompts=prompts, outcomes=outcomes, models=rows)


@pytest.fixture(scope="module")
def data() -> RoutingDataset:
    return make_dataset(0)


@pytest.fixture(scope="module")
def heldout() -> RoutingDataset:
    return make_dataset(1, n_per_task=40)


def build(name: str, **params: Any) -> Router:
    return make_router(name, embedder=EMBEDDER, **params)


def fitted(name: str, data: RoutingDataset, **params: Any) -> Router:
    return build(name, **params).fit(data)


def prompt_state(router: Router) -> dict[str, Any]:
    """Copies of the prompt-side fitted state (everything a new model must not touch)."""
    state: dict[str, Any] = {k: np.array(getattr(router, k), copy=True) for k in router._array_state}
    state.update({k: json.dumps(getattr(router, k), sort_keys=True) for k in router._json_state})
    state["probe_embeddings_"] = router.probe_embeddings_.copy()
    state["probe_ids_"] = router.probe_ids_
    return state


# ---------------------------------------------------------------------------- estimator API


def test_registry_covers_the_paper_routers() -> None:
    assert {"knn", "cluster", "learned-map", "capability", "aptitude", "best-single", "random"} <= set(ROUTERS)


@pytest.mark.parametrize("name", ALL)
def test_params_are_stored_verbatim_and_validated_in_fit(name: str, data: RoutingDataset) -> None:
    params = CUSTOM[name]
    router = build(name, **params)
    got = router.get_params()
    for k, v in params.items():
        assert got[k] is v
    assert got["embedder"] is EMBEDDER
    bad = build(name, **BAD[name])  # constructing never validates
    with pytest.raises(ConfigError):
        bad.fit(data)
    with pytest.raises(ConfigError):
        router.set_params(no_such_parameter=1)


@pytest.mark.parametrize("name", ALL)
def test_fit_returns_self_and_clone_is_unfitted(name: str, data: RoutingDataset) -> None:
    router = build(name, **CUSTOM[name])
    assert router.fit(data) is router
    twin = router.clone()
    assert type(twin) is type(router)
    assert twin.get_params() == router.get_params()
    assert not hasattr(twin, "models_")
    with pytest.raises(NotFittedError):
        twin.predict_proba(["solve equation"])


@pytest.mark.parametrize("name", ALL)
def test_unfitted_router_raises_not_fitted(name: str, tmp_path: Path, data: RoutingDataset) -> None:
    router = build(name)
    profile = ModelProfile.from_dataset(data, "wide")
    with pytest.raises(NotFittedError):
        router.predict_proba(["solve equation"])
    with pytest.raises(NotFittedError):
        router.route("solve equation")
    with pytest.raises(NotFittedError):
        router.add_model(profile)
    with pytest.raises(NotFittedError):
        router.save(tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ALL)
def test_predict_proba_shape_and_range(name: str, data: RoutingDataset, heldout: RoutingDataset) -> None:
    router = fitted(name, data)
    proba = router.predict_proba(list(heldout.prompts[:37]))
    assert proba.shape == (37, data.n_models)
    assert proba.dtype == np.float64
    assert np.isfinite(proba).all()
    assert proba.min() >= 0.0 and proba.max() <= 1.0
    assert router.models_ == list(data.models)


@pytest.mark.parametrize("name", ALL)
def test_route_respects_candidates_and_ranks_all(name: str, data: RoutingDataset) -> None:
    router = fitted(name, data)
    full = router.route("solve the polynomial equation root")
    assert sorted(full.ranking) == sorted(data.models)
    assert full.model == full.ranking[0]
    some = router.route("court statute appeal", candidates=["weak", "law-expert", "wide"])
    assert some.model in {"weak", "law-expert", "wide"}
    assert sorted(some.ranking) == ["law-expert", "weak", "wide"]
    assert set(some.scores) == {"weak", "law-expert", "wide"}
    cheap = router.route("court statute appeal", candidates=["weak", "wide"], cost_weight=float("inf"))
    assert cheap.model == "weak"
    with pytest.raises(RoutingError):
        router.route("court statute appeal", candidates=["law-expert", "gpt-imaginary"])


@pytest.mark.parametrize("name", ALL)
def test_refit_forgets_earlier_models(name: str, data: RoutingDataset) -> None:
    router = fitted(name, data)
    smaller = make_dataset(2, models=("alg-expert", "weak", "wide"))
    router.fit(smaller)
    assert router.models_ == ["alg-expert", "weak", "wide"]
    assert set(router.profiles_) == {"alg-expert", "weak", "wide"}
    assert router.predict_proba(["solve equation"]).shape == (1, 3)
    assert set(router.probe_ids_) <= set(smaller.prompt_ids)
    with pytest.raises(RoutingError):
        router.route("solve equation", candidates=["law-expert"])


# ---------------------------------------------------------------------------- new models


@pytest.mark.parametrize("name", ALL)
def test_add_model_needs_no_refit(name: str, data: RoutingDataset) -> None:
    seen = [m for m in data.models if m != "chem-expert"]
    router = fitted(name, data.subset(models=seen), **QUALITY.get(name, {}))
    before = prompt_state(router)
    old_proba = router.predict_proba(list(data.prompts[:20]))
    profile = ModelProfile.from_dataset(data, "chem-expert", router.probe_ids_)
    assert router.add_model(profile) is router
    after = prompt_state(router)
    assert before.keys() == after.keys()
    for k, v in before.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, after[k], err_msg=f"{name}: add_model changed {k}")
        else:
            assert v == after[k], f"{name}: add_model changed {k}"
    assert router.models_ == [*seen, "chem-expert"]
    proba = router.predict_proba(list(data.prompts[:20]))
    assert proba.shape == (20, len(seen) + 1)
    np.testing.assert_allclose(proba[:, :-1], old_proba)  # the old models are untouched
    if name not in PROMPT_BLIND:  # the new model is judged by the prompt, from its profile alone
        chem = [p for p, t in zip(data.prompts, data.tasks, strict=True) if t == "chemistry"][:30]
        other = [p for p, t in zip(data.prompts, data.tasks, strict=True) if t == "history"][:30]
        col = router.models_.index("chem-expert")
        assert router.predict_proba(chem)[:, col].mean() > router.predict_proba(other)[:, col].mean() + 0.05


@pytest.mark.parametrize("name", ALL)
def test_add_model_rejects_foreign_probe_ids(name: str, data: RoutingDataset) -> None:
    router = fitted(name, data)
    foreign = ModelProfile(
        model="new-model", probe_ids=("nope-1", "nope-2"), scores=np.array([1.0, 0.0]), expected_cost=1.0
    )
    with pytest.raises(DataError):
        router.add_model(foreign)
    assert "new-model" not in router.models_
    with pytest.raises(DataError):
        router.add_model("not a profile")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip(name: str, data: RoutingDataset, heldout: RoutingDataset, tmp_path: Path) -> None:
    router = fitted(name, data, cost_weight=0.3)
    folder = router.save(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "router.json"]
    loaded = Router.load(folder)
    assert type(loaded) is type(router)
    assert loaded.models_ == router.models_
    for k, v in router.get_params().items():
        if k != "embedder":
            assert loaded.get_params()[k] == (list(v) if isinstance(v, tuple) else v)
    emb = EMBEDDER.embed(list(heldout.prompts))
    np.testing.assert_array_equal(loaded.predict_proba_embedded(emb), router.predict_proba_embedded(emb))
    loaded.set_params(embedder=EMBEDDER)
    assert loaded.route(heldout.prompts[0]).ranking == router.route(heldout.prompts[0]).ranking
    # a loaded router still takes new models without refitting
    clone_of_first = ModelProfile(
        model="first-again", probe_ids=loaded.probe_ids_, scores=loaded.probe_scores_[:, 0], expected_cost=0.5
    )
    loaded.add_model(clone_of_first)
    assert loaded.predict_proba_embedded(emb).shape == (emb.shape[0], data.n_models + 1)


def _saved(name: str, data: RoutingDataset, tmp_path: Path) -> Path:
    return fitted(name, data).save(tmp_path / "saved")


def _rewrite_json(folder: Path, edit: Any) -> None:
    doc = json.loads((folder / "router.json").read_text())
    edit(doc)
    (folder / "router.json").write_text(json.dumps(doc))


class _Boom:
    """Unpickling this would create a marker file: loading must never get that far."""

    marker: Path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("name", ALL)
def test_load_rejects_broken_artifacts(name: str, data: RoutingDataset, tmp_path: Path) -> None:
    folder = _saved(name, data, tmp_path)
    good_json = (folder / "router.json").read_text()
    good_npz = (folder / "arrays.npz").read_bytes()

    def reset() -> None:
        (folder / "router.json").write_text(good_json)
        (folder / "arrays.npz").write_bytes(good_npz)

    def fails() -> None:
        with pytest.raises(ArtifactError):
            Router.load(folder)
        reset()

    # truncated npz (checksum mismatch), and truncated npz with a forged checksum
    (folder / "arrays.npz").write_bytes(good_npz[: len(good_npz) // 2])
    fails()
    (folder / "arrays.npz").write_bytes(good_npz[: len(good_npz) // 2])
    _rewrite_json(folder, lambda d: d.update(arrays_sha256=hashlib.sha256(good_npz[: len(good_npz) // 2]).hexdigest()))
    fails()
    # one flipped byte
    flipped = bytearray(good_npz)
    flipped[len(flipped) // 2] ^= 0xFF
    (folder / "arrays.npz").write_bytes(bytes(flipped))
    fails()
    # tampered json: not JSON, foreign format, unknown router type, unknown parameter, bad state
    (folder / "router.json").write_text(good_json[: len(good_json) // 2])
    fails()
    _rewrite_json(folder, lambda d: d.update(format="someone-else/model@9"))
    fails()
    _rewrite_json(folder, lambda d: d.update(router="os:system"))
    fails()
    _rewrite_json(folder, lambda d: d["params"].update(evil="__import__('os')"))
    fails()
    _rewrite_json(folder, lambda d: d["state"].update(models_=["only-one"]))
    fails()
    _rewrite_json(folder, lambda d: d["arrays"]["features_"].update(shape=[1, 2, 3]))
    fails()
    # a pickled object smuggled into the arrays with a matching checksum is never unpickled
    marker = tmp_path / "pwned"
    boom = _Boom()
    boom.marker = marker
    with np.load(io.BytesIO(good_npz)) as z:
        arrays = {k: z[k] for k in z.files}
    evil = np.empty(1, dtype=object)
    evil[0] = boom
    arrays["features_"] = evil
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    (folder / "arrays.npz").write_bytes(blob)

    def forge(d: dict[str, Any]) -> None:
        d["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
        d["arrays"]["features_"] = {"shape": [1], "dtype": "|O"}

    _rewrite_json(folder, forge)
    fails()
    assert not marker.exists()
    # a foreign folder
    other = tmp_path / "foreign"
    other.mkdir()
    with pytest.raises(ArtifactError):
        Router.load(other)
    (other / "router.json").write_text(json.dumps({"hello": "world"}))
    (other / "arrays.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ArtifactError):
        Router.load(other)
    # after all that, the untouched artifact still loads
    assert Router.load(folder).models_ == list(data.models)


# ---------------------------------------------------------------------------- quality


@pytest.mark.parametrize("name", [n for n in ALL if n not in PROMPT_BLIND])
def test_router_beats_random_when_task_decides(name: str, data: RoutingDataset, heldout: RoutingDataset) -> None:
    router = fitted(name, data, **QUALITY.get(name, {}))
    baseline = fitted("random", data)
    ours, rand = router.score(heldout), baseline.score(heldout)
    best_single = max(float(np.nanmean(heldout.scores[:, j])) for j in range(heldout.n_models))
    assert ours > rand + 0.25, (ours, rand)
    assert ours > best_single + 0.1, (ours, best_single)
