"""The default router shipped inside the package, and the command that builds it.

It is fitted on the MMLU-Pro outcome table (TIGER-AI-Lab/MMLU-Pro, Apache-2.0) with the 14
models whose LiteLLM id serves that very model (``price_source`` without "proxy"), named by
their LiteLLM ids. Restrict it to the models you have keys for with `Router.restrict`.

Rebuild (from a checkout with ``shared/`` beside it)::

    python -m routed_llm.default --data ../shared/data/mmlu_pro
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import RoutingDataset
    from .routers import Router

__all__ = ["DEFAULT_ROUTER_DIR", "build_default_router", "default_probe_set", "default_router"]

DEFAULT_ROUTER_DIR = "default_router"
DEFAULT_KIND = "capability"  # best area on the unseen protocol (docs/benchmarks.md), fits in seconds
N_PROBES = 500


def _folder() -> Path:
    return Path(str(resources.files("routed_llm") / DEFAULT_ROUTER_DIR))


@cache
def _load_shared() -> Router:
    from .routers import Router

    return Router.load(_folder())


def default_router() -> Router:
    """A fresh copy of the default router (safe to `restrict` or `add_model` on).

    Raises:
        ArtifactError: The shipped artifact is missing or damaged (reinstall the package).
    """
    from .routers import Router

    _load_shared()  # validates once per process
    return Router.load(_folder())


def default_probe_set() -> list[dict[str, Any]]:
    """The default router's probe prompts with their references (for profiling new models).

    Each item has ``prompt_id``, ``task``, ``prompt``, ``reference`` and ``grader``.
    """
    path = _folder() / "probes.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def served_models(data: RoutingDataset) -> dict[str, str]:
    """Dataset model -> LiteLLM id, for the models priced as themselves (no "proxy")."""
    out: dict[str, str] = {}
    for m in data.models:
        info = data.model_info.get(m, {})
        lid, source = info.get("litellm_model"), str(info.get("price_source") or "")
        if lid and "proxy" not in source:
            out[m] = str(lid)
    return out


def build_default_router(
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    kind: str = DEFAULT_KIND,
    n_probes: int = N_PROBES,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> Router:
    """Fit and save the default router; returns it.

    Probe prompts: `n_probes` prompts, stratified by task, drawn with `seed` among those
    every served model answered. The rest are training prompts.
    """
    import numpy as np

    from .data import load_dataset
    from .routers import make_router

    data = load_dataset(data_dir)
    names = served_models(data)
    data = data.subset(models=list(names)).rename_models(names)
    complete = np.flatnonzero(~np.isnan(data.scores).any(axis=1))
    rng = np.random.default_rng(seed)
    tasks = np.array(data.tasks)[complete]
    probes: list[int] = []
    for task in sorted(set(tasks)):
        rows = complete[tasks == task]
        take = max(1, round(n_probes * rows.size / complete.size))
        probes.extend(rng.choice(rows, size=min(take, rows.size), replace=False).tolist())
    probes = sorted(probes)[: max(n_probes, 1)] if len(probes) > n_probes else sorted(probes)
    probe_ids = [data.prompt_ids[i] for i in probes]
    router = make_router(kind, **(params or {}))
    router.fit(data, probe_ids=probe_ids)
    out = Path(out_dir) if out_dir is not None else _folder()
    router.save(out)
    prompts_by_id = {p: i for i, p in enumerate(data.prompt_ids)}
    with (out / "probes.jsonl").open("w", encoding="utf-8") as fh:
        for pid in router.probe_ids_:
            i = prompts_by_id[pid]
            ref = _reference(data_dir, pid)
            fh.write(
                json.dumps(
                    {
                        "prompt_id": pid,
                        "task": data.tasks[i],
                        "prompt": data.prompts[i],
                        "reference": ref,
                        "grader": "choice",
                    }
                )
                + "\n"
            )
    (out / "SOURCE.md").write_text(
        _source_note(kind, len(probe_ids), data.n_prompts, sorted(names.values())), encoding="utf-8"
    )
    return router


@cache
def _references(data_dir: str) -> dict[str, str]:
    import pandas as pd

    frame = pd.read_parquet(Path(data_dir) / "prompts.parquet", columns=["prompt_id", "reference"])
    return {str(a): str(b) for a, b in zip(frame["prompt_id"], frame["reference"], strict=True)}


def _reference(data_dir: str | Path, prompt_id: str) -> str:
    return _references(str(data_dir)).get(prompt_id, "")


def _source_note(kind: str, n_probe: int, n_prompts: int, models: Sequence[str]) -> str:
    return (
        "# Default router\n\n"
        f"A `{kind}` router fitted by `python -m routed_llm.default --data ../shared/data/mmlu_pro`.\n\n"
        "- Data: MMLU-Pro per-model outcomes (TIGER-AI-Lab/MMLU-Pro, commit f418b116, Apache-2.0; "
        "see shared/data/mmlu_pro/SOURCE.md). Outputs of API models may also fall under their providers' terms.\n"
        f"- {n_prompts} prompts, of which {n_probe} are the probe set (`probes.jsonl`, with the MMLU-Pro "
        "reference letters) that new models answer to join the router.\n"
        f"- Models ({len(models)}), named by LiteLLM id: " + ", ".join(models) + "\n"
        "- Expected costs: mean realised cost on the probe prompts, priced from LiteLLM's price table "
        "(litellm 1.106.2) by the data README's cost rule.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m routed_llm.default``: rebuild the shipped default router."""
    parser = argparse.ArgumentParser(
        prog="python -m routed_llm.default", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset folder (../shared/data/mmlu_pro)")
    parser.add_argument("--out", default=None, help="output folder (default: inside the package)")
    parser.add_argument("--kind", default=DEFAULT_KIND, help=f"router name (default {DEFAULT_KIND})")
    parser.add_argument("--probes", type=int, default=N_PROBES, help=f"probe prompts (default {N_PROBES})")
    parser.add_argument("--params", default="{}", help="router hyperparameters as JSON")
    args = parser.parse_args(argv)
    router = build_default_router(
        args.data, args.out, kind=args.kind, n_probes=args.probes, params=json.loads(args.params)
    )
    print(f"saved {router!r} with {len(router.models_)} models and {len(router.probe_ids_)} probes")  # noqa: T201
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
