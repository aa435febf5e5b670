"""Value types shared across routed-llm: model profiles, routing decisions, attempts."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .errors import DataError

if TYPE_CHECKING:
    from .data import RoutingDataset

__all__ = ["Attempt", "ModelProfile", "RouteDecision"]

PROFILE_FORMAT = "routed-llm/model-profile@1"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelProfile:
    """What a router needs to know about one model: its outcomes on the probe prompts.

    A new model joins a fitted router by answering the router's probe prompts once; the
    graded results, with the measured cost, form its profile (see `Router.add_model`).

    Attributes:
        model: Name the router will know the model by (a LiteLLM id or a deployment name).
        probe_ids: Ids of the probe prompts that were answered.
        scores: Score in [0, 1] per probe prompt; NaN where the model gave no outcome.
        expected_cost: Expected cost of one call (USD unless the router is relative).
        mean_input_tokens: Mean prompt tokens over the probe calls, when known.
        mean_output_tokens: Mean completion tokens over the probe calls, when known.
        price_in_per_1m: Input price in USD per 1M tokens, when known.
        price_out_per_1m: Output price in USD per 1M tokens, when known.
        mean_latency_s: Mean latency of a probe call in seconds, when measured.
        meta: Free-form JSON-safe metadata (where it came from, when, ...).
    """

    model: str
    probe_ids: tuple[str, ...]
    scores: NDArray[np.float64] = field(compare=False)
    expected_cost: float
    mean_input_tokens: float | None = None
    mean_output_tokens: float | None = None
    price_in_per_1m: float | None = None
    price_out_per_1m: float | None = None
    mean_latency_s: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            msg = "ModelProfile.model must be a non-empty string"
            raise DataError(msg)
        scores = np.asarray(self.scores, dtype=np.float64)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "probe_ids", tuple(str(p) for p in self.probe_ids))
        if scores.shape != (len(self.probe_ids),):
            n_scores = scores.shape[0] if scores.ndim else 0
            msg = f"profile {self.model!r}: {n_scores} scores for {len(self.probe_ids)} probe ids"
            raise DataError(msg)
        if len(set(self.probe_ids)) != len(self.probe_ids):
            msg = f"profile {self.model!r}: probe ids are not unique"
            raise DataError(msg)
        seen = scores[~np.isnan(scores)]
        if seen.size == 0:
            msg = f"profile {self.model!r}: no graded probe outcome; answer the probe set first"
            raise DataError(msg)
        if seen.min() < 0 or seen.max() > 1:
            msg = f"profile {self.model!r}: scores must lie in [0, 1]"
            raise DataError(msg)
        if (
            not (isinstance(self.expected_cost, int | float) and math.isfinite(self.expected_cost))
            or self.expected_cost < 0
        ):
            msg = f"profile {self.model!r}: expected_cost must be a finite number >= 0, got {self.expected_cost!r}"
            raise DataError(msg)

    @property
    def accuracy(self) -> float:
        """Mean score over the graded probe prompts."""
        return float(np.nanmean(self.scores))

    @classmethod
    def from_dataset(cls, data: RoutingDataset, model: str, prompt_ids: Sequence[str] | None = None) -> ModelProfile:
        """The profile of `model` from its outcomes in `data` on `prompt_ids` (default: all)."""
        col = int(data.model_index([model])[0])
        rows = data.prompt_index(prompt_ids) if prompt_ids is not None else np.arange(data.n_prompts)
        scores = data.scores[rows, col]
        costs = data.costs[rows, col]
        if np.isnan(costs).all():
            msg = f"model {model!r} has no outcome on the {len(rows)} probe prompts"
            raise DataError(msg)
        info = data.model_info.get(model, {})
        in_tok = np.array([math.ceil(len(data.prompts[r]) / 4) for r in rows], dtype=np.float64)
        observed = ~np.isnan(scores)
        return cls(
            model=model,
            probe_ids=tuple(data.prompt_ids[r] for r in rows),
            scores=scores,
            expected_cost=float(np.nanmean(costs)),
            mean_input_tokens=float(in_tok[observed].mean()),
            mean_output_tokens=float(np.nanmean(data.output_tokens[rows, col])),
            price_in_per_1m=_opt_float(info.get("price_in_per_1m")),
            price_out_per_1m=_opt_float(info.get("price_out_per_1m")),
            meta={"source": f"dataset:{data.name}", "cost_unit": data.cost_unit},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN scores become null)."""
        return {
            "format": PROFILE_FORMAT,
            "model": self.model,
            "probe_ids": list(self.probe_ids),
            "scores": [None if math.isnan(s) else float(s) for s in self.scores],
            "expected_cost": self.expected_cost,
            "mean_input_tokens": self.mean_input_tokens,
            "mean_output_tokens": self.mean_output_tokens,
            "price_in_per_1m": self.price_in_per_1m,
            "price_out_per_1m": self.price_out_per_1m,
            "mean_latency_s": self.mean_latency_s,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "profile") -> ModelProfile:
        """Validate and build a profile from `to_dict` output."""
        if not isinstance(raw, Mapping) or raw.get("format") != PROFILE_FORMAT:
            msg = f"{source}: not a routed-llm model profile (expected format {PROFILE_FORMAT!r})"
            raise DataError(msg)
        try:
            scores = np.array([np.nan if s is None else float(s) for s in raw["scores"]], dtype=np.float64)
            return cls(
                model=str(raw["model"]),
                probe_ids=tuple(str(p) for p in raw["probe_ids"]),
                scores=scores,
                expected_cost=float(raw["expected_cost"]),
                mean_input_tokens=_opt_float(raw.get("mean_input_tokens")),
                mean_output_tokens=_opt_float(raw.get("mean_output_tokens")),
                price_in_per_1m=_opt_float(raw.get("price_in_per_1m")),
                price_out_per_1m=_opt_float(raw.get("price_out_per_1m")),
                mean_latency_s=_opt_float(raw.get("mean_latency_s")),
                meta=dict(raw.get("meta") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            msg = f"{source}: malformed model profile ({type(exc).__name__}: {exc})"
            raise DataError(msg) from exc

    def save(self, path: str | Path) -> None:
        """Write the profile as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ModelProfile:
        """Read a profile written by `save` (or by ``routed-llm profile``)."""
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            msg = f"{p}: profile file not found"
            raise DataError(msg) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = f"{p}: not a JSON model profile ({exc})"
            raise DataError(msg) from exc
        return cls.from_dict(raw, source=str(p))


def _opt_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDecision:
    """The outcome of `Router.route` for one prompt.

    Attributes:
        model: The chosen model (first of `ranking`).
        ranking: Every candidate, best utility first: the fallback order.
        scores: Predicted P(correct) per candidate.
        expected_costs: Expected cost of one call per candidate.
        utilities: ``score - cost_weight * expected_cost / max(expected_costs)`` per candidate.
        cost_weight: The trade-off used (0 = quality only).
        reason: One sentence saying why `model` won.
        router: Name of the router that decided.
    """

    model: str
    ranking: tuple[str, ...]
    scores: Mapping[str, float]
    expected_costs: Mapping[str, float]
    utilities: Mapping[str, float]
    cost_weight: float
    reason: str
    router: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe view, as put in ``response_metadata["routing"]``."""
        return {
            "model": self.model,
            "ranking": list(self.ranking),
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
            "expected_costs": {k: float(v) for k, v in self.expected_costs.items()},
            "utilities": {k: round(float(v), 6) for k, v in self.utilities.items()},
            "cost_weight": self.cost_weight,
            "reason": self.reason,
            "router": self.router,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One call made while serving a request (successful or not).

    Attributes:
        model: The candidate that was called.
        error: Exception class name, or None when the attempt succeeded.
        message: Short error text (never contains credentials), or None.
        action: What the attempt led to: ``"retry"``, ``"fallback"``, ``"raise"``, ``"ok"``, or
            ``"skip"`` (not called: open circuit, cost ceiling, context window too small).
        latency_s: Wall time of the attempt in seconds.
        streamed_chars: Characters already streamed to the caller when the error happened.
    """

    model: str
    error: str | None
    message: str | None
    action: str
    latency_s: float
    streamed_chars: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe view."""
        return {
            "model": self.model,
            "error": self.error,
            "message": self.message,
            "action": self.action,
            "latency_s": round(self.latency_s, 4),
            "streamed_chars": self.streamed_chars,
        }
