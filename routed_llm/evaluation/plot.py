"""PNG of the cost/quality curves of one trial (matplotlib, Agg backend, imported on use)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .protocol import Trial
    from .report import EvalReport

__all__ = ["plot_report"]

_STYLES = {
    "zero": {"color": "0.2", "linestyle": (0, (5, 3)), "zorder": 3},
    "oracle": {"color": "0.6", "linestyle": ":"},
    "random": {"color": "tab:brown", "linestyle": "-."},  # tab10 index 5
}


def plot_report(report: EvalReport, path: str | Path, *, trial: int = 0, dpi: int = 130) -> Path:
    """Draw the hulls of every router and the single test-pool models for one trial.

    Args:
        report: From `evaluate`.
        path: Output PNG.
        trial: Index of the trial to draw (default: the first seed).
        dpi: Resolution.

    Returns:
        The path written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the install
        msg = "plotting needs matplotlib: pip install 'routed-llm[eval]'"
        raise ImportError(msg) from exc
    t = report.trials[trial]
    fig, axes = plt.subplots(1, 2, figsize=(15, 7), gridspec_kw={"width_ratios": [1.15, 1]})
    try:
        for ax, log in zip(axes, (False, True), strict=True):
            _draw(ax, report, t, plt, log=log)
        handles, labels = axes[0].get_legend_handles_labels()
        rows = -(-len(labels) // 4)
        fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8.5, frameon=False)
        fig.suptitle(
            f"{report.dataset}: cost/quality hulls, {report.protocol} protocol, seed {t.split.seed} "
            f"({len(t.single_models)} test-pool models, {t.split.test_rows.size} test prompts)",
            fontsize=11,
        )
        fig.tight_layout(rect=(0, 0.035 * rows + 0.02, 1, 1))
        out = Path(path)
        fig.savefig(out, dpi=dpi)
    finally:
        plt.close(fig)
    return out


def _draw(ax: Any, report: EvalReport, t: Trial, plt: Any, *, log: bool) -> None:
    """One panel: linear cost axis (what `area` integrates) or log cost axis (detail)."""
    tab10 = list(plt.get_cmap("tab10").colors)
    palette = itertools.cycle([c for i, c in enumerate(tab10) if i not in (5, 7)])  # brown, grey: reserved
    positive = [float(v) for v in t.single_costs if v > 0]
    left = min(positive) * 0.6 if positive else 1e-3
    for name in report.routers:
        c = t.curves[name]
        style = dict(_STYLES.get(name, {}))
        if "color" not in style:
            style["color"] = next(palette)
        start = left if log else 0.0
        hx = np.concatenate([[start], c.hull_costs, [max(1.0, float(c.hull_costs[-1]))]])
        hy = np.concatenate([[c.hull_scores[0]], c.hull_scores, [c.hull_scores[-1]]])
        q = f"{c.qnc:.2f}" if np.isfinite(c.qnc) else "never"
        ax.plot(hx, hy, linewidth=2, label=f"{name} (area {c.area:.3f}, qnc {q})", **style)
        if name != "zero":
            ax.scatter(c.costs, c.scores, s=9, color=style["color"], alpha=0.45, zorder=2)
    ax.scatter(t.single_costs, t.single_scores, s=36, marker="o", facecolor="white", edgecolor="black",
               zorder=4, label="single test-pool models")
    for m, x, y in zip(t.single_models, t.single_costs, t.single_scores, strict=True):
        ax.annotate(m, (x, y), xytext=(4, -9), textcoords="offset points", fontsize=6.5, color="0.25")
    ax.axhline(t.best_single_accuracy, color="black", linewidth=0.6, alpha=0.4)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(left, 1.3)
        ax.set_xlabel("normalised mean cost per prompt (log scale)")
        ax.set_title("detail: log cost axis", fontsize=9)
    else:
        ax.set_xlim(-0.02, 1.05)
        ax.set_xlabel("mean realised cost per prompt, normalised by the most expensive test-pool model")
        ax.set_title("linear cost axis (the area is taken over [0, 1])", fontsize=9)
    ax.set_ylabel("mean score (accuracy) on the test prompts")
    ax.grid(alpha=0.3)
