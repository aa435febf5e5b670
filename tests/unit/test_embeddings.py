"""CachedEmbedder: disk cache keyed by (embedder id, text hash), bounded LRU, shard merging."""

import numpy as np
import pytest

from routed_llm import ConfigError
from routed_llm.embeddings import CachedEmbedder, _text_key, get_embedder


class Counting:
    """A fake embedder that counts the texts it embeds (unit tests only)."""

    def __init__(self, ident: str = "test:counting") -> None:
        self.calls: list[str] = []
        self._id = ident

    @property
    def id(self) -> str:
        return self._id

    def embed(self, texts):
        self.calls.extend(texts)
        out = np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_disk_cache_embeds_each_text_once_per_machine(tmp_path):
    first = Counting()
    a = CachedEmbedder(first, cache_dir=tmp_path).embed(["x", "yy", "x"])
    assert first.calls == ["x", "yy"]  # duplicates within a call are embedded once
    second = Counting()
    b = CachedEmbedder(second, cache_dir=tmp_path).embed(["yy", "x", "zzz"])
    assert second.calls == ["zzz"]
    np.testing.assert_array_equal(b[:2], a[[1, 0]])
    other = Counting("test:other-model")
    CachedEmbedder(other, cache_dir=tmp_path).embed(["x"])
    assert other.calls == ["x"]  # the key includes the embedder id


def test_hash_ending_in_nul_byte_is_found_again(tmp_path):
    text = next(f"t{i}" for i in range(10_000) if _text_key(f"t{i}").endswith(b"\0"))
    CachedEmbedder(Counting(), cache_dir=tmp_path).embed([text])
    again = Counting()
    CachedEmbedder(again, cache_dir=tmp_path).embed([text])
    assert again.calls == []


def test_memory_lru_is_bounded_and_reused():
    inner = Counting()
    emb = CachedEmbedder(inner, cache_dir=None, max_memory_items=2)
    emb.embed(["a"])
    emb.embed(["a"])
    assert inner.calls == ["a"]
    emb.embed(["b", "c"])  # evicts "a"
    emb.embed(["a"])
    assert inner.calls == ["a", "b", "c", "a"]


def test_many_shards_are_merged_without_losing_vectors(tmp_path):
    writer = CachedEmbedder(Counting(), cache_dir=tmp_path)
    for i in range(40):
        writer.embed([f"text {i}"])  # one shard per call
    folder = next((tmp_path / "embeddings").iterdir())
    assert len(list(folder.glob("*.npz"))) == 40
    inner = Counting()
    CachedEmbedder(inner, cache_dir=tmp_path).embed([f"text {i}" for i in range(40)])
    assert inner.calls == [] and len(list(folder.glob("*.npz"))) == 1


def test_broken_shard_is_recomputed(tmp_path):
    CachedEmbedder(Counting(), cache_dir=tmp_path).embed(["q"])
    shard = next((tmp_path / "embeddings").rglob("*.npz"))
    shard.write_bytes(b"garbage")
    inner = Counting()
    CachedEmbedder(inner, cache_dir=tmp_path).embed(["q"])
    assert inner.calls == ["q"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ConfigError, match="sequence of strings"):
        CachedEmbedder(Counting()).embed("not a list")
    with pytest.raises(ConfigError, match="valid names"):
        get_embedder("nope")
