"""Tests of the model2vec static embedder (routed_llm.fast_embedder).

The fast tests replace only the distillation step (torch, minutes) by a small model2vec
`StaticModel` built from the real MiniLM tokenizer; saving, the atomic cache, loading and
embedding are the real code. The slow tests use the real distilled model from the shared
per-machine cache (distilled on first use, then reused).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("model2vec")

from routed_llm import fast_embedder
from routed_llm.errors import ArtifactError, ConfigError
from routed_llm.fast_embedder import StaticEmbedder


def _small_model(source: Path, pca_dims: int) -> Any:
    """A real model2vec StaticModel over the MiniLM vocabulary with random float16 vectors."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(tokenizer.get_vocab_size(), pca_dims)).astype(np.float16)
    return StaticModel(vectors=vectors, tokenizer=tokenizer, config={"normalize": True}, normalize=True)


class _CountingDistill:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self._lock = threading.Lock()

    def __call__(self, source: Path, pca_dims: int) -> Any:
        with self._lock:
            self.calls += 1
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        return _small_model(source, pca_dims)


def _no_distill(source: Path, pca_dims: int) -> Any:
    msg = "distill must not run: the model is cached"
    raise AssertionError(msg)


# --- fast tests (distillation replaced) -------------------------------------------------


def test_id_and_input_checks(tmp_path: Path) -> None:
    assert StaticEmbedder(cache_dir=tmp_path).id == "m2v:all-MiniLM-L6-v2"
    assert StaticEmbedder(cache_dir=tmp_path, pca_dims=128).id == "m2v:all-MiniLM-L6-v2-pca128"
    emb = StaticEmbedder(cache_dir=tmp_path, pca_dims=16)
    assert emb.embed([]).shape == (0, 16)
    with pytest.raises(ConfigError, match="sequence of strings"):
        emb.embed("one string")
    with pytest.raises(ConfigError, match="pca_dims"):
        StaticEmbedder(cache_dir=tmp_path, pca_dims=0)
    assert not (tmp_path / "static").exists()  # construction and empty input stay lazy


def test_missing_model2vec_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "model2vec", None)  # makes `import model2vec` fail
    with pytest.raises(ImportError, match=r"pip install 'routed-llm\[fast\]'"):
        StaticEmbedder(cache_dir=tmp_path)


def test_cache_is_written_once_then_reused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    distill = _CountingDistill()
    monkeypatch.setattr(fast_embedder, "_distill", distill)
    texts = ["What is the capital of France?", "Solve 2x + 3 = 7.", ""]
    first = StaticEmbedder(cache_dir=tmp_path, pca_dims=16).embed(texts)
    assert distill.calls == 1

    folder = StaticEmbedder(cache_dir=tmp_path, pca_dims=16).model_dir
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["README.md", "config.json", "model.safetensors", "modules.json", "tokenizer.json"]
    assert "license: apache-2.0" in (folder / "README.md").read_text()
    assert json.loads((folder / "config.json").read_text())["normalize"] is True
    assert [p.name for p in folder.parent.iterdir() if ".tmp-" in p.name] == []

    monkeypatch.setattr(fast_embedder, "_distill", _no_distill)
    second = StaticEmbedder(cache_dir=tmp_path, pca_dims=16).embed(texts)
    np.testing.assert_allclose(second, first, atol=1e-6)
    assert first.dtype == np.float32 and first.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(first[:2], axis=1), 1.0, atol=1e-5)
    assert not first[2].any()  # no token: zero vector, not NaN


def test_concurrent_first_use_distills_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    distill = _CountingDistill(delay_s=0.3)
    monkeypatch.setattr(fast_embedder, "_distill", distill)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(StaticEmbedder(cache_dir=tmp_path, pca_dims=8).embed(["a shared prompt"]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(results) == 4
    assert distill.calls == 1  # the file lock made the other three wait, then load
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


def test_lost_rename_race_keeps_the_winner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the lock, racing writers still leave one complete folder and no debris."""
    import contextlib

    @contextlib.contextmanager
    def no_lock(path: Path, timeout_s: float) -> Any:
        yield False

    distill = _CountingDistill(delay_s=0.3)
    monkeypatch.setattr(fast_embedder, "_distill", distill)
    monkeypatch.setattr(fast_embedder, "_file_lock", no_lock)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            StaticEmbedder(cache_dir=tmp_path, pca_dims=8).embed(["x"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert distill.calls == 3
    folder = StaticEmbedder(cache_dir=tmp_path, pca_dims=8).model_dir
    assert fast_embedder._is_complete(folder)
    assert [p.name for p in folder.parent.iterdir() if ".tmp-" in p.name] == []


def test_unwritable_cache_dir_falls_back_to_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    distill = _CountingDistill()
    monkeypatch.setattr(fast_embedder, "_distill", distill)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # mkdir below a file fails, even as root
    emb = StaticEmbedder(cache_dir=blocker / "cache", pca_dims=8)
    v = emb.embed(["first prompt", "second prompt"])
    emb.embed(["third prompt"])
    assert distill.calls == 1
    assert v.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_damaged_cache_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fast_embedder, "_distill", _CountingDistill())
    StaticEmbedder(cache_dir=tmp_path, pca_dims=8).embed(["x"])
    folder = StaticEmbedder(cache_dir=tmp_path, pca_dims=8).model_dir
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ArtifactError, match="delete that folder"):
        StaticEmbedder(cache_dir=tmp_path, pca_dims=8).embed(["x"])


# --- slow tests (the real distilled model, cached once per machine) ---------------------


@pytest.fixture(scope="module")
def real() -> StaticEmbedder:
    emb = StaticEmbedder()  # default cache dir: distilled once per machine
    emb.embed(["warm up"])
    return emb


@pytest.mark.slow
def test_real_vectors_shape_dtype_norm(real: StaticEmbedder) -> None:
    texts = ["Hello there.", "What is the derivative of x**2?", "Name a prime number larger than 100."]
    v = real.embed(texts)
    assert v.shape == (3, 256)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.abs(v[0] - v[1]).max() > 1e-3


@pytest.mark.slow
def test_real_paraphrases_are_closer_than_unrelated(real: StaticEmbedder) -> None:
    pairs = [
        ("How do I bake bread at home?", "What is a recipe for homemade bread?"),
        ("What is the capital city of France?", "Which city is France's capital?"),
        ("Solve the equation 3x + 5 = 20 for x.", "Find x if 3x plus 5 equals 20."),
        ("Translate 'good morning' into Spanish.", "How do you say good morning in Spanish?"),
    ]
    a = real.embed([p[0] for p in pairs])
    b = real.embed([p[1] for p in pairs])
    sims = a @ b.T
    for i in range(len(pairs)):
        others = np.delete(sims[i], i)
        assert sims[i, i] > others.max(), (pairs[i], sims[i])


@pytest.mark.slow
def test_real_second_construction_loads_from_disk(real: StaticEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["What is 7 times 8?", "Summarise the causes of World War I."]
    expected = real.embed(texts)
    monkeypatch.setattr(fast_embedder, "_distill", _no_distill)
    again = StaticEmbedder().embed(texts)
    np.testing.assert_allclose(again, expected, atol=1e-6)


@pytest.mark.slow
def test_real_loading_from_cache_does_not_import_torch(real: StaticEmbedder, tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from routed_llm.fast_embedder import StaticEmbedder
        from routed_llm import fast_embedder
        def boom(*a, **k):
            raise SystemExit("distill called")
        fast_embedder._distill = boom
        v = StaticEmbedder().embed(["Is this loaded without torch?"])
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
        print(json.dumps({"shape": list(v.shape), "heavy": heavy}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"shape": [1, 256], "heavy": []}
