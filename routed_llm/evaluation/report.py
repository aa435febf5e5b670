"""`EvalReport`: per-seed results of an evaluation, their summary, JSON and a text table."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import sign_test
from .protocol import Trial

__all__ = ["METRICS", "EvalReport", "summarise"]

METRICS: dict[str, bool] = {"area": True, "area_50": True, "qnc": False, "max_quality_accuracy": True}
"""Metric name -> whether higher is better."""

COMPARE_WITH = "knn"
"""Routers are compared with this one by a paired sign test when it is evaluated."""


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "per_seed"}`` with the sample standard deviation (ddof=1; 0 for one seed).

    Infinite values (a ``qnc`` never reached) are reported as null in ``per_seed`` and
    counted in the mean and std as the largest finite value of the same sequence; the
    count is ``unreached`` and that stand-in value ``unreached_as``. With no finite value
    at all, mean and std are null.
    """
    arr = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(arr)
    n_inf = int((~finite).sum())
    mean: float | None = None
    std: float | None = None
    stand_in: float | None = float(arr[finite].max()) if finite.any() else None
    if stand_in is not None:
        filled = np.where(finite, arr, stand_in)
        mean = float(filled.mean())
        std = float(filled.std(ddof=1)) if filled.size > 1 else 0.0
    out: dict[str, Any] = {"mean": mean, "std": std, "per_seed": [_finite_or_none(v) for v in arr]}
    if n_inf:
        out["unreached"] = n_inf
        out["unreached_as"] = stand_in
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalReport:
    """The result of `routed_llm.evaluation.evaluate`.

    Attributes:
        dataset: Dataset name.
        protocol: ``"unseen"`` or ``"seen"``.
        seeds: Seeds of the trials, in order.
        routers: Router names, in the order given.
        trials: One `Trial` per seed.
        lambdas: The cost weights swept.
        embedder: Id of the embedder used.
        n_prompts: Prompts in the (possibly subsampled) dataset.
        elapsed_s: Wall time of the trials, in seconds.
    """

    dataset: str
    protocol: str
    seeds: tuple[int, ...]
    routers: tuple[str, ...]
    trials: tuple[Trial, ...] = field(repr=False)
    lambdas: tuple[float, ...] = field(repr=False)
    embedder: str
    n_prompts: int
    elapsed_s: float = 0.0

    def values(self, router: str, metric: str) -> list[float]:
        """Per-seed values of `metric` for `router`."""
        if router not in self.routers:
            msg = f"unknown router {router!r}; evaluated: {list(self.routers)}"
            raise KeyError(msg)
        if metric not in METRICS:
            msg = f"unknown metric {metric!r}; valid: {list(METRICS)}"
            raise KeyError(msg)
        return [float(getattr(t.curves[router], metric)) for t in self.trials]

    def summary(self, router: str, metric: str) -> dict[str, Any]:
        """`summarise` of `values`."""
        return summarise(self.values(router, metric))

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (see ``docs/evaluation.md`` for every key)."""
        routers: dict[str, Any] = {}
        for name in self.routers:
            entry: dict[str, Any] = {m: self.summary(name, m) for m in METRICS}
            entry["qnc_unreached"] = int(sum(not math.isfinite(v) for v in self.values(name, "qnc")))
            if COMPARE_WITH in self.routers and name != COMPARE_WITH:
                entry[f"vs_{COMPARE_WITH}"] = {
                    m: sign_test(self.values(name, m), self.values(COMPARE_WITH, m), higher_is_better=hib)
                    for m, hib in METRICS.items()
                }
            routers[name] = entry
        t0 = self.trials[0]
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "seeds": len(self.seeds),
            "seed_values": list(self.seeds),
            "n_prompts": self.n_prompts,
            "embedder": self.embedder,
            "lambdas": [_finite_or_none(v) if math.isfinite(v) else "inf" for v in self.lambdas],
            "elapsed_s": round(self.elapsed_s, 3),
            "routers": routers,
            "reference": {
                "best_single_accuracy": summarise([t.best_single_accuracy for t in self.trials]),
                "best_single_cost": summarise([t.best_single_cost for t in self.trials]),
                "oracle_accuracy": summarise([t.oracle_accuracy for t in self.trials]),
                "oracle_cost": summarise([t.oracle_cost for t in self.trials]),
                "best_single_model": [t.best_single_model for t in self.trials],
            },
            "trials": [
                {
                    "seed": t.split.seed,
                    "test_pool": list(t.split.test_pool),
                    "n_training_models": len(t.split.training_models),
                    "n_train": int(t.split.train_rows.size),
                    "n_val": int(t.split.val_rows.size),
                    "n_test": int(t.split.test_rows.size),
                    "n_test_split": t.split.n_test_split,
                    "cost_scale": t.cost_scale,
                }
                for t in self.trials
            ],
            "seed0": {
                "single_models": {
                    m: {"cost": float(c), "accuracy": float(s)}
                    for m, c, s in zip(t0.single_models, t0.single_costs, t0.single_scores, strict=True)
                },
                "curves": {
                    name: {
                        "cost": [float(v) for v in c.costs],
                        "score": [float(v) for v in c.scores],
                        "hull_cost": [float(v) for v in c.hull_costs],
                        "hull_score": [float(v) for v in c.hull_scores],
                    }
                    for name, c in t0.curves.items()
                },
            },
        }

    def to_json(self, path: str | Path | None = None, *, indent: int = 1) -> str:
        """The JSON text of `to_dict`; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def table(self, *, columns: Sequence[str] = ("area", "area_50", "qnc", "max_quality_accuracy")) -> str:
        """A plain-text table: one row per router, mean ± std over seeds, and the references.

        ``qnc`` shows how many seeds never reached the best model's accuracy in brackets;
        ``vs knn`` shows the area sign test (wins-losses, two-sided p) when knn was run.
        """
        heads = {"qnc": "qnc [unreached]", "max_quality_accuracy": "acc @ max budget"}
        compare = COMPARE_WITH in self.routers
        header = ["router", *(heads.get(c, c) for c in columns)] + (["area vs knn (W-L, p)"] if compare else [])
        rows: list[list[str]] = []
        for name in self.routers:
            row = [name]
            for col in columns:
                s = self.summary(name, col)
                cell = "n/a" if s["mean"] is None else f"{s['mean']:.4f} ± {s['std']:.4f}"
                if col == "qnc":
                    cell += f" [{s.get('unreached', 0)}]"
                row.append(cell)
            if compare:
                if name == COMPARE_WITH:
                    row.append("-")
                else:
                    st = sign_test(self.values(name, "area"), self.values(COMPARE_WITH, "area"))
                    row.append(f"{st['wins']}-{st['losses']}, p={st['p_value']:.3g}")
            rows.append(row)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def fmt(r: list[str]) -> str:
            cells = zip(r, widths, strict=True)
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

        best = summarise([t.best_single_accuracy for t in self.trials])
        best_c = summarise([t.best_single_cost for t in self.trials])
        orc = summarise([t.oracle_accuracy for t in self.trials])
        lines = [
            f"{self.dataset}: protocol={self.protocol}, {len(self.seeds)} seeds, {self.n_prompts} prompts, "
            f"embedder={self.embedder}",
            fmt(header),
            fmt(["-" * w for w in widths]),
            *(fmt(r) for r in rows),
            "",
            f"reference: best single test-pool model accuracy {best['mean']:.4f} ± {best['std']:.4f} "
            f"(normalised cost {best_c['mean']:.4f}); oracle accuracy {orc['mean']:.4f} ± {orc['std']:.4f}",
        ]
        return "\n".join(lines)
