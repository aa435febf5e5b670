"""``routed-llm eval``: evaluate routers on an outcome dataset with the dynamic-pool protocol."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Evaluate routers on an outcome dataset (prompts x models, see shared/data/README.md) with
the dynamic-pool protocol of UniRoute, repeated over seeds 0..S-1.

One trial (seed s):
  1. --protocol unseen: a random third of the models (rounded, at least 2) are unseen and
     form the test pool; the rest are training models. --protocol seen: every model is a
     training model and the test pool is every model.
  2. Prompts are split at random 60% train / 10% validation (the probe set) / 30% test.
  3. Each router is fitted on (train + validation prompts) x training models with the
     validation prompts as probes; unseen models are added from their validation
     outcomes only (Router.add_model), with no refit.
  4. On the test prompts answered by every test-pool model (at least 100, else the trial
     is an error) the cost weight lambda is swept (0, a log grid 1e-3..1e3, and "cheapest"):
     each value routes every prompt with utility P(correct) - lambda * cost / max cost,
     giving one point (mean realised cost, mean score).
  5. Costs are normalised by the mean realised cost of the most expensive test-pool model;
     the non-decreasing upper convex hull of the points, flat beyond its ends, is scored.

Metrics (mean ± std over seeds, and per seed in --json):
  area                  area under the hull over normalised cost [0, 1] (higher is better)
  area_50               the same over [0, 0.5], not rescaled (at most 0.5)
  qnc                   smallest normalised cost at which the hull reaches the accuracy of
                        the most accurate test-pool model, divided by that model's cost
                        (lower is better; never reached = null per seed, counted in the
                        mean as the router's largest finite qnc; [n] = seeds unreached)
  max_quality_accuracy  mean score at lambda = 0
References: the best single test-pool model and the oracle (per prompt the cheapest of
the models with the best score). With knn among the routers, every other router gets an
exact two-sided paired sign test against knn on each metric.

Routers: zero (hull of the single test-pool models, no fitting), oracle (routes with the
true test scores; a ceiling, not a router), and every name of routed_llm.routers.ROUTERS
(random, best-single, knn, cluster, learned-map, capability, aptitude when installed).
"""

_EPILOG = """\
examples:
  routed-llm eval ../shared/data/mmlu_pro --routers zero,random,oracle,best-single,knn \\
      --seeds 20 --json results.json --plot curves.png
  routed-llm eval ../shared/data/mmlu_pro --routers zero,knn:k=20 --max-prompts 1500 --seeds 2
  routed-llm eval DATA --routers knn,cluster --router-params '{"cluster": {"n_clusters": 25}}'

Embeddings of every prompt are computed once and cached on disk ($ROUTED_LLM_CACHE_DIR or
~/.cache/routed-llm); the first run on a large dataset takes minutes, later runs seconds.
"""


def add_parser(sub: Any, name: str) -> None:
    """Register the ``eval`` subcommand."""
    p = sub.add_parser(
        name,
        help="evaluate routers on an outcome dataset (area, area_50, qnc over seeds)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="dataset folder: prompts.parquet, outcomes.parquet, models.csv")
    p.add_argument(
        "--routers",
        default="zero,random,oracle,best-single,knn",
        help="comma-separated router names, each optionally with parameters as NAME:key=value "
        "(several parameters: NAME:k1=v1:k2=v2); default: %(default)s",
    )
    p.add_argument(
        "--router-params",
        default=None,
        metavar="JSON",
        help='constructor parameters per router name as JSON, e.g. \'{"knn": {"k": 20}}\'',
    )
    p.add_argument(
        "--protocol", choices=("unseen", "seen"), default="unseen", help="unseen (default) or seen models, see above"
    )
    p.add_argument("--seeds", type=int, default=20, help="number of trials, seeds 0..S-1 (default: %(default)s)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the full results as JSON")
    p.add_argument(
        "--plot", type=Path, default=None, metavar="OUT.png", help="write the seed-0 cost/quality curves as PNG"
    )
    p.add_argument(
        "--embedder",
        choices=("minilm", "static"),
        default="minilm",
        help="prompt embedder: minilm (all-MiniLM-L6-v2, the reference) or static (model2vec distillation, fast); "
        "default: %(default)s",
    )
    p.add_argument(
        "--max-prompts",
        type=int,
        default=None,
        metavar="N",
        help="evaluate on a deterministic random subset of N prompts (quick runs)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def parse_routers(text: str) -> list[str]:
    """Split ``--routers``; ``knn:k=20:prior_strength=0`` becomes ``knn:k=20,prior_strength=0``."""
    out: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if "=" in item and ":" in item:
            name, _, rest = item.partition(":")
            item = f"{name}:{rest.replace(':', ',')}"
        elif "=" in item and out and ":" in out[-1]:
            out[-1] = f"{out[-1]},{item}"  # "knn:k=20,prior_strength=0" was split on the comma
            continue
        out.append(item)
    if not out:
        msg = "--routers is empty; name at least one router, e.g. --routers zero,knn"
        raise ConfigError(msg)
    return out


def run(args: argparse.Namespace) -> int:
    """Run the evaluation, print the table, write --json and --plot."""
    from ..data import load_dataset
    from ..evaluation import evaluate

    params: dict[str, Any] = {}
    if args.router_params:
        try:
            params = json.loads(args.router_params)
        except json.JSONDecodeError as exc:
            msg = f"--router-params is not valid JSON ({exc}); example: '{{\"knn\": {{\"k\": 20}}}}'"
            raise ConfigError(msg) from exc
        if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
            msg = '--router-params must be a JSON object of objects, e.g. \'{"knn": {"k": 20}}\''
            raise ConfigError(msg)
    if args.seeds < 1:
        msg = f"--seeds must be >= 1, got {args.seeds}"
        raise ConfigError(msg)
    for out in (args.json, args.plot):
        if out is not None and not out.parent.exists():
            msg = f"{out}: the folder {out.parent} does not exist"
            raise ConfigError(msg)
    data = load_dataset(args.data_dir)
    report = evaluate(
        data,
        parse_routers(args.routers),
        protocol=args.protocol,
        seeds=args.seeds,
        embedder=args.embedder,
        router_params=params,
        max_prompts=args.max_prompts,
        progress=not args.quiet,
    )
    print(report.table())
    print(f"\n{len(report.seeds)} trials in {report.elapsed_s:.1f} s")
    if args.json is not None:
        report.to_json(args.json)
        print(f"wrote {args.json}")
    if args.plot is not None:
        from ..evaluation.plot import plot_report

        plot_report(report, args.plot)
        print(f"wrote {args.plot}")
    sys.stdout.flush()
    return 0
