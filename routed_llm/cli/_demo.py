"""``routed-llm demo``: the main job. Evaluate the routers on a bundled sample, then route
example prompts through `RoutedChatModel` (real providers when keys are set, else a local server)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Evaluate every available router on a bundled sample of MMLU-Pro (1,500 questions answered
by 32 LLMs; origin and license in routed_llm/sample_data/mmlu_pro_sample/SOURCE.md) with the
unseen-model protocol of `routed-llm eval` (see its --help for the metrics), print a table
and write the cost/quality plot.

Table columns: area under the cost/quality hull (higher is better), qnc = cost at which
the router matches the most accurate model's accuracy, as a fraction of that model's cost
(lower is better; [n] = seeds where it never did), and the accuracy at the best budget
(lambda = 0, quality only). Reference rows: zero = the single models' hull; oracle = routes
with the true answers (a ceiling, not a router).

Then a few example prompts go through RoutedChatModel with the shipped default router: to
the real providers whose keys are in the environment (OPENAI_API_KEY, GEMINI_API_KEY, ...),
else to a local OpenAI-compatible server the demo starts on 127.0.0.1. For each prompt it
prints which model served it, why, and what the call cost.
"""


def add_parser(sub: Any, name: str) -> None:
    """Register the ``demo`` subcommand."""
    p = sub.add_parser(
        name,
        help="run the demo: evaluate the routers on a bundled MMLU-Pro sample and plot the curves",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="folder for routed-llm-demo.png and routed-llm-demo.json (default: the current folder)",
    )
    p.add_argument("--seeds", type=int, default=10, help="number of trials (default: %(default)s)")
    p.add_argument("--routers", default=None, help="comma-separated router names (default: every available one)")
    p.add_argument(
        "--embedder", choices=("minilm", "static"), default="minilm", help="prompt embedder (default: %(default)s)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--cost-weight", type=float, default=1.0,
                   help="quality/cost trade-off for the chat part (default: %(default)s)")
    p.add_argument("--no-chat", action="store_true", help="skip the RoutedChatModel part")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation part")
    p.set_defaults(run=run)


def run_eval_demo(out_dir: str | Path = ".", **kwargs: Any) -> Any:
    """The demo's evaluation part (see `routed_llm.evaluation.demo.run_eval_demo`)."""
    from ..evaluation.demo import run_eval_demo as _run

    return _run(out_dir, **kwargs)


def run(args: argparse.Namespace) -> int:
    """Run the demo evaluation and print the table."""
    from ..errors import ConfigError

    if args.seeds < 1:
        msg = f"--seeds must be >= 1, got {args.seeds}"
        raise ConfigError(msg)
    routers = [r.strip() for r in args.routers.split(",") if r.strip()] if args.routers else None
    if not args.no_eval:
        report = run_eval_demo(args.out, routers=routers, seeds=args.seeds, embedder=args.embedder,
                               progress=not args.quiet)
        print(report.table(columns=("area", "qnc", "max_quality_accuracy")))
        print(f"\nwrote {args.out / 'routed-llm-demo.png'} and {args.out / 'routed-llm-demo.json'}")
    if not args.no_chat:
        _chat(args.cost_weight)
    return 0


def _chat(cost_weight: float) -> None:
    from ..chat_demo import run_chat_demo

    mode, rows = run_chat_demo(cost_weight=cost_weight)
    where = "real providers (keys found in the environment)" if mode == "real" else (
        "a local OpenAI-compatible server on 127.0.0.1 (no provider keys set; the answers are canned)")
    print(f"\nRoutedChatModel with the default router, cost_weight={cost_weight}, calls sent to {where}:")
    for row in rows:
        cost = "n/a" if row.cost_usd is None else f"${row.cost_usd:.6f}"
        print(f"\n> {row.prompt}\n  served by {row.model} ({cost})\n  why: {row.reason}\n  answer: {row.answer[:120]}")
