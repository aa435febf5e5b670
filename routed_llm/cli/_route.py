"""``routed-llm route``: show which model a router picks for a prompt, and why."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        name,
        help="show the routing decision for a prompt",
        description=(
            "Embed PROMPT, score every candidate model with the router and print the ranking "
            "(P(correct), expected cost per call, utility) and the reason for the choice."
        ),
        epilog='example: routed-llm route "Prove that sqrt(2) is irrational." --cost-weight 0.5',
    )
    p.add_argument("prompt", help="the request text")
    p.add_argument("--router", default="default", help="saved router folder, or 'default' (the shipped router)")
    p.add_argument("--candidates", default=None, help="comma-separated model names (default: all the router knows)")
    p.add_argument(
        "--cost-weight", type=float, default=None, help="quality/cost trade-off lambda >= 0 (0 = best quality)"
    )
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the decision."""
    from ..default import default_router
    from ..routers import Router

    router = default_router() if args.router == "default" else Router.load(args.router)
    candidates = [c.strip() for c in args.candidates.split(",") if c.strip()] if args.candidates else None
    decision = router.route(args.prompt, candidates=candidates, cost_weight=args.cost_weight)
    if args.json:
        print(json.dumps(decision.as_dict(), indent=1))
        return 0
    print(f"chosen: {decision.model}\n{decision.reason}\n")
    print(f"{'model':<50} {'P(correct)':>10} {'cost/call $':>12} {'utility':>8}")
    for m in decision.ranking:
        print(f"{m:<50} {decision.scores[m]:>10.3f} {decision.expected_costs[m]:>12.6f} {decision.utilities[m]:>8.3f}")
    return 0
