"""``routed-llm add-model``: add a profiled model to a saved router, with no refitting."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..routers import Router
    from ..types import ModelProfile

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Add a model to a saved router from its profile (written by `routed-llm profile`). Nothing is
refitted: the router derives the model's representation from its probe scores alone, so the
chat model (RoutedChatModel) and the LiteLLM provider can route to it as soon as they load
the router. A model of the same name is replaced.

ROUTER_DIR is a folder written by Router.save (router.json + arrays.npz), or the literal
`default` for the router shipped with the package: then --out is required and a copy of the
default router (with its probes.jsonl) is written there; the installed package is never
modified. Without --out the router is updated in place.

Printed: the model's probe accuracy, its expected cost per call, and where it ranks among
the router's models at cost_weight 0 (mean predicted P(correct) over the probe prompts, and
the share of probe prompts it would be routed).
"""

_EPILOG = """\
examples:
  routed-llm add-model default smollm2.json --out my-router      # copy of the default router + smollm2
  routed-llm add-model my-router gpt-4o-mini.json                # add another model in place
  routed-llm add-model my-router gpt-4o-mini.json --out router-v2

Then, in Python:
  from routed_llm import Router, RoutedChatModel
  router = Router.load("my-router")
"""


def add_parser(sub: Any, name: str) -> None:
    """Register the ``add-model`` subcommand."""
    p = sub.add_parser(
        name,
        help="add a profiled model to a saved router (no refitting)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("router_dir", metavar="ROUTER_DIR", help="saved router folder, or 'default' (needs --out)")
    p.add_argument("profile", metavar="PROFILE.json", help="a profile written by `routed-llm profile`")
    p.add_argument("--out", default=None, metavar="DIR", help="write the updated router here (default: in place)")
    p.set_defaults(run=run)


def _default_folder() -> Path:
    from importlib import resources

    from ..default import DEFAULT_ROUTER_DIR

    return Path(str(resources.files("routed_llm") / DEFAULT_ROUTER_DIR))


def _copy_extras(src: Path, dst: Path) -> None:
    """Carry the probe set and the provenance note along with the router."""
    for name in ("probes.jsonl", "SOURCE.md"):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def _save(router: Router, folder: Path) -> None:
    """Save into `folder`, writing to a scratch folder first and then moving the files in."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / f".add-model-{os.getpid()}"
    try:
        router.save(scratch)
        for name in ("arrays.npz", "router.json"):  # router.json last: it names the arrays' hash
            os.replace(scratch / name, folder / name)
        for leftover in scratch.iterdir():
            os.replace(leftover, folder / leftover.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _ranking(router: Router, profile: ModelProfile) -> str:
    import numpy as np

    from ..routers.base import choose

    proba = router.predict_proba_embedded(router.probe_embeddings_)
    mean = proba.mean(axis=0)
    picks = choose(proba, router.expected_costs_, 0.0)
    j = router.models_.index(profile.model)
    order = list(np.argsort(-mean, kind="stable"))
    rank = order.index(j) + 1
    share = float(np.mean(picks == j))
    lines = [
        f"at cost_weight 0 it ranks {rank} of {len(order)} by mean predicted P(correct) over the probe prompts "
        f"({mean[j]:.3f}) and would be routed {share:.0%} of them:"
    ]
    shown = order[:5] if j in order[:5] else [*order[:4], j]
    for i in shown:
        mark = "  <- new" if i == j else ""
        cost = f"${router.expected_costs_[i]:.6g}/call"
        lines.append(f"  {order.index(i) + 1:>3}. {router.models_[i]:<55} {mean[i]:.3f}  {cost}{mark}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Add the profile to the router and save it."""
    import numpy as np

    from ..routers import Router
    from ..types import ModelProfile

    profile = ModelProfile.load(args.profile)
    if args.router_dir == "default":
        if not args.out:
            msg = "with ROUTER_DIR 'default', pass --out DIR: the router shipped in the package is never modified"
            raise ConfigError(msg)
        src = _default_folder()
    else:
        src = Path(args.router_dir)
    dest = Path(args.out) if args.out else src
    if dest.resolve() != src.resolve() and (dest / "router.json").exists():
        msg = f"{dest} already holds a router; add the model to it with `routed-llm add-model {dest} {args.profile}`"
        raise ConfigError(msg)
    router = Router.load(src)
    replaced = profile.model in router.models_
    router.add_model(profile)  # validates the profile against the router before anything is written
    _save(router, dest)
    if dest.resolve() != src.resolve():
        _copy_extras(src, dest)
    graded = int(np.count_nonzero(~np.isnan(profile.scores)))
    verb = "replaced" if replaced else "added"
    print(
        f"{verb} {profile.model} in {router.name} router {dest} (now {len(router.models_)} models): "
        f"probe accuracy {profile.accuracy:.3f} on {graded} of {len(router.probe_ids_)} probes, "
        f"expected cost ${profile.expected_cost:.6g} per call"
    )
    print(_ranking(router, profile))
    if graded < len(router.probe_ids_):
        print(
            f"note: {len(router.probe_ids_) - graded} probes have no outcome for {profile.model}; the router "
            "falls back on its overall accuracy there (profile without --limit for a full profile)",
            file=sys.stderr,
        )
    return 0
