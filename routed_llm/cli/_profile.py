"""``routed-llm profile``: run a model on a router's probe prompts and write its profile."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Profile a model for routing (its "aptitude test"): send it every probe prompt of a router
once through LiteLLM (temperature 0, as the user message), grade each answer against the
reference, measure tokens, cost and latency, and write a model profile (JSON). Add the
profile to a router with `routed-llm add-model`: no refitting is needed.

Probe set: 'default' is the default router's 500 MMLU-Pro prompts (multiple choice, the
prompt asks the model to finish with "the answer is (X)"). A .jsonl file of your own has
one JSON object per line: prompt_id, prompt, reference, grader ("choice", "exact",
"numeric" or "numeric:TOL"). With --router DIR the router's probe ids are asked (its
probes.jsonl is the default probe set then) and the probe set must cover them all.

Graders: choice = multiple-choice letter ("The answer is (C)", "answer: C", "**C**", a reply
starting with "C.", else the last standalone letter); exact = normalised exact match;
numeric = the answer number within a tolerance. See routed_llm/grading.py.

Resumable: each finished call is appended (and fsynced) to OUT.partial.jsonl. Rerun the
same command after an interruption (Ctrl-C, a crash, a provider outage): prompts already
answered are not asked again, failed ones are retried. The journal is kept after success
(it holds the raw replies); --fresh discards it.

Failures: transient errors (rate limits, 5xx, timeouts) are retried --retries times; a call
that still fails is recorded as missing (null score, ignored by the router) and counted in
the profile's meta.n_errors. If more than --max-error-rate of the calls fail, no profile
is written and the exit code is 1. A bad key or an unknown model stops the run at once.

Cost: --price-in/--price-out (USD per 1M tokens) if given, else LiteLLM's price table for
the model id, else 0 with a warning (a free local model). The profile's expected cost is
the mean measured cost per probe call.

Keys: never on the command line. LiteLLM reads the provider's usual variable
(OPENAI_API_KEY, ANTHROPIC_API_KEY, ...); --api-key-env VAR reads the key from $VAR instead.
With --api-base and no --api-key-env, the placeholder key "none" is sent (local servers).
The key is never written to the profile or the journal.
"""

_EPILOG = """\
examples:
  # a hosted model, priced from LiteLLM's table
  routed-llm profile --model gpt-4o-mini --out gpt-4o-mini.json
  # a quick, partial profile (60 probes spread over all subjects)
  routed-llm profile --model gpt-4o-mini --limit 60 --out gpt-4o-mini.json
  # a local OpenAI-compatible server (llama.cpp, vLLM, Ollama), free
  routed-llm profile --model openai/smollm2 --api-base http://127.0.0.1:8080/v1 \\
      --name smollm2 --price-in 0 --price-out 0 --out smollm2.json
  # then add it to a copy of the default router
  routed-llm add-model default smollm2.json --out my-router
"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        msg = f"expected a number >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_parser(sub: Any, name: str) -> None:
    """Register the ``profile`` subcommand."""
    p = sub.add_parser(
        name,
        help="run a model on the probe prompts and write its profile (JSON)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="LiteLLM model id, e.g. gpt-4o-mini or openai/<name> with --api-base")
    p.add_argument("--name", default=None, help="name of the model in the profile and the router (default: --model)")
    p.add_argument("--api-base", default=None, help="base URL of the endpoint, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--api-key-env", default=None, metavar="VAR", help="read the API key from environment variable VAR")
    p.add_argument(
        "--probe-set",
        default="default",
        metavar="default|PATH",
        help="'default' or a .jsonl file of prompt_id, prompt, reference, grader (default: %(default)s)",
    )
    p.add_argument(
        "--router",
        default=None,
        metavar="DIR",
        help="a saved router folder: ask exactly its probe prompts (its probes.jsonl if present)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="ask at most N probes, spread over the tasks (a quick partial profile)",
    )
    p.add_argument("--concurrency", type=int, default=8, help="calls in flight at once (default: %(default)s)")
    p.add_argument(
        "--timeout", type=_positive_float, default=120.0, metavar="S", help="seconds per call (default: %(default)s)"
    )
    p.add_argument(
        "--max-tokens", type=int, default=512, metavar="N", help="completion token cap per call (default: %(default)s)"
    )
    p.add_argument("--retries", type=int, default=2, help="extra attempts on transient errors (default: %(default)s)")
    p.add_argument("--price-in", type=_positive_float, default=None, metavar="X", help="input price, USD per 1M tokens")
    p.add_argument(
        "--price-out", type=_positive_float, default=None, metavar="Y", help="output price, USD per 1M tokens"
    )
    p.add_argument(
        "--max-error-rate",
        type=_positive_float,
        default=0.2,
        metavar="R",
        help="fail (exit 1, no profile) when more than this share of calls fails (default: %(default)s)",
    )
    p.add_argument("--fresh", action="store_true", help="discard the journal of an earlier run and ask everything")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown on terminals only anyway)")
    p.add_argument("--out", required=True, metavar="PROFILE.json", help="where to write the profile")
    p.set_defaults(run=run)


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "")
        if not key:
            msg = f"environment variable {args.api_key_env} (from --api-key-env) is not set or empty"
            raise ConfigError(msg)
        return key
    return "none" if args.api_base else None


def _probe_ids(router_dir: str | None) -> tuple[list[str] | None, Path | None]:
    if router_dir is None:
        return None, None
    from ..routers import Router

    router = Router.load(router_dir)
    probes = Path(router_dir) / "probes.jsonl"
    return list(router.probe_ids_), (probes if probes.is_file() else None)


def run(args: argparse.Namespace) -> int:
    """Profile the model; 0 on success, 1 when too many calls failed."""
    from ..profiling import ProfileSettings, load_probe_set, profile_model, select_probes

    settings = ProfileSettings(
        model=args.model,
        name=args.name,
        api_base=args.api_base,
        api_key=_api_key(args),
        max_tokens=args.max_tokens,
        timeout=args.timeout,
        concurrency=args.concurrency,
        retries=args.retries,
        price_in_per_1m=args.price_in,
        price_out_per_1m=args.price_out,
    )
    probe_ids, router_probes = _probe_ids(args.router)
    spec = router_probes if args.probe_set == "default" and router_probes is not None else args.probe_set
    set_name, items = load_probe_set(spec)
    items = select_probes(items, probe_ids=probe_ids, limit=args.limit)
    try:
        result = profile_model(
            items, settings, args.out, probe_set=set_name, max_error_rate=args.max_error_rate,
            fresh=args.fresh, progress=False if args.no_progress else None,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"answers so far are kept in {args.out}.partial.jsonl; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        raise
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    profile = result.profile
    meta = profile.meta
    print(
        f"{profile.model}: {meta['n_graded']}/{len(items)} probes graded, accuracy {profile.accuracy:.3f}, "
        f"expected cost ${profile.expected_cost:.6g} per call, mean latency {profile.mean_latency_s or 0:.2f} s "
        f"({result.asked} asked now, {result.resumed} resumed from {result.journal.name})"
    )
    if not result.written:
        examples = "; ".join(meta.get("error_examples") or []) or "no detail"
        print(
            f"error: {result.n_errors} of {len(items)} probe calls failed (more than {args.max_error_rate:.0%}), "
            f"so no profile was written. Examples: {examples}. Fix the cause and rerun the same command: "
            f"the {len(items) - result.n_errors} answers in {result.journal} are kept and not asked again.",
            file=sys.stderr,
        )
        return 1
    if result.n_errors:
        print(f"warning: {result.n_errors} probe calls failed; they are missing (null) in the profile", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0
