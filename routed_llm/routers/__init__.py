"""Routers: estimators that predict P(correct) per prompt and model, then route.

`make_router(name, **params)` builds one by its registry name. Router classes are imported
lazily so that importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import FitContext, Router, choose, utilities

__all__ = ["ROUTERS", "FitContext", "Router", "choose", "get_router_class", "make_router", "utilities"]

ROUTERS: dict[str, str] = {
    "knn": "routed_llm.routers.knn:KNNRouter",
    "cluster": "routed_llm.routers.cluster:ClusterRouter",
    "learned-map": "routed_llm.routers.learned_map:LearnedMapRouter",
    "capability": "routed_llm.routers.capability:CapabilityRouter",
    "aptitude": "routed_llm.routers.aptitude:AptitudeRouter",
    "best-single": "routed_llm.routers.baselines:BestSingleRouter",
    "random": "routed_llm.routers.baselines:RandomRouter",
}
"""Registry name -> ``module:Class`` of every fittable router."""


def get_router_class(name: str) -> type[Router]:
    """The router class registered as `name`."""
    from ..errors import ConfigError

    if name not in ROUTERS:
        msg = f"unknown router {name!r}; valid routers: {sorted(ROUTERS)}"
        raise ConfigError(msg)
    module, attr = ROUTERS[name].split(":")
    cls: type[Router] = getattr(importlib.import_module(module), attr)
    return cls


def make_router(name: str, **params: Any) -> Router:
    """Build an unfitted router by registry name, e.g. ``make_router("knn", k=20)``."""
    return get_router_class(name)(**params)
