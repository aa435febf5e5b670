"""The ``routed-llm`` command line. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import RoutedLLMError

__all__ = ["main"]

# subcommand name -> module defining add_parser(subparsers) and run(args) -> int
_COMMANDS = {
    "demo": "routed_llm.cli._demo",
    "eval": "routed_llm.cli._eval",
    "route": "routed_llm.cli._route",
    "profile": "routed_llm.cli._profile",
    "add-model": "routed_llm.cli._add_model",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="routed-llm",
        description=(
            "Route each LLM call to the model that answers it well at the lowest cost. "
            "Evaluate routers on outcome datasets, profile new models, and add them to a router."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:  # a subcommand whose module is not there yet is simply absent
            continue
        mod.add_parser(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``routed-llm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        rc: int = args.run(args)
    except RoutedLLMError as exc:
        print(f"routed-llm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
