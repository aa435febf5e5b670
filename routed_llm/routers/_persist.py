"""Save and load routers as ``router.json`` + ``arrays.npz``: no pickle, everything validated."""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ArtifactError, ConfigError
from ..types import ModelProfile

if TYPE_CHECKING:
    from .base import Router

FORMAT = "routed-llm/router@1"
_BASE_ARRAYS = ("probe_embeddings_", "features_", "expected_costs_", "probe_scores_")
_BASE_JSON = ("embedder_id_", "cost_unit_", "probe_ids_", "probe_prompts_", "probe_tasks_", "models_")
_EMBEDDER_NAMES = {"st:all-MiniLM-L6-v2": "minilm", "m2v:all-MiniLM-L6-v2": "static"}


def _json_param(name: str, value: Any) -> Any:
    if name == "embedder":
        if value is None or isinstance(value, str):
            return value
        return _EMBEDDER_NAMES.get(getattr(value, "id", ""))
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        msg = f"parameter {name}={value!r} cannot be saved as JSON"
        raise ConfigError(msg) from exc
    return value


def save_router(router: Router, folder: Path) -> Path:
    """Write `router` to `folder` (created if needed); returns the folder."""
    router.check_is_fitted()
    arrays = {k: np.asarray(getattr(router, k)) for k in (*_BASE_ARRAYS, *router._array_state)}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    blob = buf.getvalue()
    state: dict[str, Any] = {k: _to_json(getattr(router, k)) for k in (*_BASE_JSON, *router._json_state)}
    state["profiles_"] = {m: router.profiles_[m].to_dict() for m in router.models_}
    for p in state["profiles_"].values():
        p["scores"] = None  # stored once, in probe_scores_
        p["probe_ids"] = None
    doc = {
        "format": FORMAT,
        "router": router.name,
        "params": {k: _json_param(k, v) for k, v in router.get_params().items()},
        "state": state,
        "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()},
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arrays.npz").write_bytes(blob)
    (folder / "router.json").write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")
    return folder


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fail(folder: Path, what: str) -> ArtifactError:
    return ArtifactError(f"{folder}: not a valid routed-llm router ({what}); save it again with Router.save")


def load_router(folder: Path) -> Router:
    """Read and validate a router folder; never executes anything it reads."""
    from . import ROUTERS, get_router_class

    jfile, nfile = folder / "router.json", folder / "arrays.npz"
    if not jfile.is_file() or not nfile.is_file():
        msg = f"{folder}: expected router.json and arrays.npz (a folder written by Router.save)"
        raise ArtifactError(msg)
    try:
        doc = json.loads(jfile.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(folder, f"router.json is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail(folder, f"router.json has no format {FORMAT!r}")
    name = doc.get("router")
    if name not in ROUTERS:
        raise _fail(folder, f"unknown router {name!r}, expected one of {sorted(ROUTERS)}")
    blob = nfile.read_bytes()
    if hashlib.sha256(blob).hexdigest() != doc.get("arrays_sha256"):
        raise _fail(folder, "arrays.npz does not match the checksum in router.json (truncated or modified)")
    cls = get_router_class(name)
    params = doc.get("params")
    if not isinstance(params, dict) or set(params) != set(cls._param_names()):
        raise _fail(folder, "params do not match the router's hyperparameters")
    router = cls(**params)
    try:
        router._validate_params()
    except ConfigError as exc:
        raise _fail(folder, f"bad hyperparameter: {exc}") from exc
    expected = doc.get("arrays")
    wanted = (*_BASE_ARRAYS, *cls._array_state)
    if not isinstance(expected, dict) or set(expected) != set(wanted):
        raise _fail(folder, "array list does not match the router type")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in wanted}
    except Exception as exc:
        raise _fail(folder, f"arrays.npz cannot be read: {type(exc).__name__}") from exc
    for k, arr in arrays.items():
        meta = expected[k]
        if list(arr.shape) != meta.get("shape") or arr.dtype.str != meta.get("dtype") or arr.dtype.kind not in "fiub":
            raise _fail(folder, f"array {k} has an unexpected shape or dtype")
        if arr.dtype.kind == "f" and np.isinf(arr).any():
            raise _fail(folder, f"array {k} holds infinite values")
    state = doc.get("state")
    if not isinstance(state, dict):
        raise _fail(folder, "no state")
    try:
        _restore(router, state, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise _fail(folder, f"inconsistent state: {type(exc).__name__}: {exc}") from exc
    return router


def _restore(router: Router, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    for k in (*_BASE_JSON, *router._json_state):
        if k not in state:
            raise KeyError(k)
    router.embedder_id_ = str(state["embedder_id_"])
    router.cost_unit_ = str(state["cost_unit_"])
    router.probe_ids_ = tuple(str(x) for x in state["probe_ids_"])
    router.probe_prompts_ = tuple(str(x) for x in state["probe_prompts_"])
    router.probe_tasks_ = tuple(str(x) for x in state["probe_tasks_"])
    for k in router._json_state:
        setattr(router, k, state[k])
    for k, v in arrays.items():
        setattr(router, k, v)
    models = [str(m) for m in state["models_"]]
    n_probe, n_models = len(router.probe_ids_), len(models)
    if len(router.probe_prompts_) != n_probe or router.probe_embeddings_.shape[0] != n_probe:
        raise ValueError("probe prompts and embeddings disagree")
    if router.probe_scores_.shape != (n_probe, n_models) or router.expected_costs_.shape != (n_models,):
        raise ValueError("model arrays disagree with the model list")
    if router.features_.shape[0] != n_models:
        raise ValueError("features disagree with the model list")
    probe_width = np.asarray(router._model_features(np.full(n_probe, 0.5))).shape
    if router.features_.ndim != 2 or router.features_.shape[1:] != probe_width:
        raise ValueError("model features have another layout (saved by an incompatible version; refit and save again)")
    if (router.expected_costs_ < 0).any():
        raise ValueError("negative expected cost")
    profiles = state.get("profiles_")
    if not isinstance(profiles, dict) or set(profiles) != set(models):
        raise ValueError("profiles disagree with the model list")
    router.models_ = models
    router.profiles_ = {}
    for j, m in enumerate(models):
        raw = dict(profiles[m])
        raw["probe_ids"] = list(router.probe_ids_)
        raw["scores"] = [None if math.isnan(s) else float(s) for s in router.probe_scores_[:, j]]
        router.profiles_[m] = ModelProfile.from_dict(raw, source=f"profile of {m}")
