"""`evaluate`: run the protocol over seeds for several routers and collect an `EvalReport`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..data import RoutingDataset
from ..embeddings import Embedder
from ..errors import ConfigError
from .protocol import (
    DEFAULT_LAMBDAS,
    Protocol,
    embed_all,
    make_split,
    resolve_embedder,
    resolve_routers,
    run_trial,
    subsample,
)
from .report import EvalReport

__all__ = ["DEFAULT_ROUTERS", "evaluate"]

DEFAULT_ROUTERS = ("zero", "random", "oracle", "best-single", "knn")
"""Routers evaluated when none are named: the baselines of the data README."""


def evaluate(
    data: RoutingDataset,
    routers: Sequence[Any] = DEFAULT_ROUTERS,
    *,
    protocol: Protocol = "unseen",
    seeds: int | Sequence[int] = 20,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    embedder: Embedder | str | None = "minilm",
    router_params: Mapping[str, Mapping[str, Any]] | None = None,
    max_prompts: int | None = None,
    progress: bool = True,
) -> EvalReport:
    """Evaluate routers on `data` with the dynamic-pool protocol (see ``docs/evaluation.md``).

    Args:
        data: The outcome dataset (`routed_llm.load_dataset`).
        routers: Registry names (`routed_llm.routers.ROUTERS`), ``"zero"``, ``"oracle"``,
            ``"name:key=value,..."`` strings, or unfitted `Router` instances (cloned per seed).
        protocol: ``"unseen"`` (a third of the models join only through their probe
            profile) or ``"seen"`` (every model is a training model).
        seeds: Number of trials (seeds ``0..S-1``) or the explicit seeds.
        lambdas: Cost weights to sweep; starts at 0, ends at ``inf`` ("cheapest").
        embedder: Embedder (or name) shared by the routers; every prompt is embedded once.
        router_params: Per router name, constructor parameters (e.g. ``{"knn": {"k": 20}}``).
        max_prompts: Evaluate on a deterministic random subset of this many prompts.
        progress: Show progress bars.

    Returns:
        The `EvalReport` (``.to_json()``, ``.table()``).

    Raises:
        ConfigError: A bad router name, parameter or seed list.
        DataError: A trial has fewer than 100 usable test prompts, or the data are unusable.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or (isinstance(seeds, int) and seeds < 1):
        msg = f"seeds must be a positive count or a non-empty list of ints, got {seeds!r}"
        raise ConfigError(msg)
    lams = tuple(float(v) for v in lambdas)
    if not lams or lams[0] != 0:
        msg = f"lambdas must start with 0 (max_quality_accuracy is the score at lambda=0), got {list(lams)[:3]}"
        raise ConfigError(msg)
    data = subsample(data, max_prompts)
    emb = resolve_embedder(embedder)
    specs = resolve_routers(routers, embedder=emb, router_params=router_params)
    for seed in seed_list:  # fail fast on a bad split before embedding and fitting
        make_split(data, seed, protocol)
    vectors = embed_all(data, emb)
    start = time.perf_counter()
    trials = []
    bar = _progress(len(seed_list), progress)
    try:
        for seed in seed_list:
            split = make_split(data, seed, protocol)

            def show(name: str, seed: int = seed) -> None:
                if bar is not None:
                    bar.set_postfix_str(f"seed {seed}: {name}")

            trials.append(run_trial(data, split, specs, vectors, embedder_id=emb.id, lambdas=lams, on_router=show))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return EvalReport(
        dataset=data.name,
        protocol=protocol,
        seeds=tuple(seed_list),
        routers=tuple(s.name for s in specs),
        trials=tuple(trials),
        lambdas=lams,
        embedder=emb.id,
        n_prompts=data.n_prompts,
        elapsed_s=time.perf_counter() - start,
    )


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="trials", unit="seed")
