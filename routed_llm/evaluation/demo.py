"""The evaluation part of ``routed-llm demo``: every available router on the bundled sample."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .report import EvalReport

__all__ = ["DEMO_SEEDS", "available_routers", "run_eval_demo", "sample_path"]

DEMO_SEEDS = 10
"""Trials of the demo evaluation (the full benchmark uses 20)."""


def sample_path() -> Path:
    """Folder of the bundled 1,500-question MMLU-Pro sample (see its ``SOURCE.md``)."""
    return Path(__file__).resolve().parent.parent / "sample_data" / "mmlu_pro_sample"


def available_routers() -> list[str]:
    """``zero``, ``oracle`` and every registered router whose module imports, baselines first."""
    from ..routers import ROUTERS, get_router_class

    first = ["zero", "random", "oracle", "best-single", "knn"]
    out: list[str] = []
    for name in first + sorted(set(ROUTERS) - set(first)):
        if name in ("zero", "oracle"):
            out.append(name)
            continue
        try:
            get_router_class(name)
        except ImportError:
            continue  # registered but not shipped in this build
        out.append(name)
    return out


def run_eval_demo(
    out_dir: str | Path = ".",
    *,
    routers: list[str] | None = None,
    seeds: int = DEMO_SEEDS,
    embedder: str = "minilm",
    progress: bool = True,
) -> EvalReport:
    """Evaluate the available routers on the bundled sample; write the plot and the JSON.

    Args:
        out_dir: Folder receiving ``routed-llm-demo.png`` and ``routed-llm-demo.json``.
        routers: Router names (default: `available_routers`).
        seeds: Number of trials.
        embedder: ``"minilm"`` (reference) or ``"static"``.
        progress: Show progress bars.

    Returns:
        The `EvalReport`.
    """
    from ..data import load_dataset
    from .plot import plot_report
    from .runner import evaluate

    root = sample_path()
    if not (root / "outcomes.parquet").is_file():
        msg = f"{root}: the bundled MMLU-Pro sample is missing; reinstall routed-llm"
        raise DataError(msg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = evaluate(
        load_dataset(root),
        routers or available_routers(),
        protocol="unseen",
        seeds=seeds,
        embedder=embedder,
        progress=progress,
    )
    report.to_json(out / "routed-llm-demo.json")
    plot_report(report, out / "routed-llm-demo.png")
    return report
