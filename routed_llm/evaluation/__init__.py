"""Evaluation of routers on outcome datasets: the dynamic-pool protocol and its metrics.

`evaluate` runs the protocol of ``shared/data/README.md`` (documented in
``docs/evaluation.md``) and returns an `EvalReport`; `metrics` holds the pure-NumPy hull,
area, qnc and sign test. Importing this package loads NumPy only; embeddings and plotting
are loaded when used.
"""

from __future__ import annotations

from .metrics import area, hull_value, qnc, sign_test, upper_hull
from .protocol import DEFAULT_LAMBDAS, MIN_TEST_PROMPTS, Split, Trial, make_split, run_trial
from .report import EvalReport
from .runner import DEFAULT_ROUTERS, evaluate

__all__ = [
    "DEFAULT_LAMBDAS",
    "DEFAULT_ROUTERS",
    "MIN_TEST_PROMPTS",
    "EvalReport",
    "Split",
    "Trial",
    "area",
    "evaluate",
    "hull_value",
    "make_split",
    "qnc",
    "run_trial",
    "sign_test",
    "upper_hull",
]
