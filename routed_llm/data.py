"""Routing datasets: prompts x models outcome tables, and the cost rule.

The on-disk layout (``prompts.parquet``, ``outcomes.parquet``, ``models.csv``) is the one
described in ``shared/data/README.md``. `load_dataset` reads it into one in-memory
`RoutingDataset`; every problem it finds is a `DataError` naming the file and the fix.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .errors import DataError

__all__ = ["DEFAULT_OUTPUT_TOKENS", "RoutingDataset", "input_tokens", "load_dataset"]

DEFAULT_OUTPUT_TOKENS = 256
"""Output tokens assumed per call when a dataset records no output length."""

CostUnit = Literal["usd", "relative"]


def input_tokens(prompt: str) -> int:
    """Token estimate of the data README: ``ceil(len(prompt) / 4)``."""
    return math.ceil(len(prompt) / 4)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingDataset:
    """Per-prompt, per-model outcomes with realised per-call costs.

    Attributes:
        name: Dataset name (the folder name when loaded from disk).
        prompt_ids: Unique prompt ids, one per row.
        prompts: Prompt texts, aligned with `prompt_ids`.
        tasks: Task (category) of each prompt.
        models: Model names, one per column.
        scores: ``(n_prompts, n_models)`` scores in [0, 1]; NaN where a model has no outcome.
        costs: ``(n_prompts, n_models)`` realised cost of each call; NaN where `scores` is.
        output_tokens: ``(n_prompts, n_models)`` output tokens per call (NaN when unknown).
        cost_unit: ``"usd"`` or ``"relative"`` (parameter counts, when no price is known).
        model_info: Per model, what ``models.csv`` says (prices, LiteLLM id, ...).
    """

    name: str
    prompt_ids: tuple[str, ...]
    prompts: tuple[str, ...]
    tasks: tuple[str, ...]
    models: tuple[str, ...]
    scores: NDArray[np.float64] = field(repr=False, compare=False)
    costs: NDArray[np.float64] = field(repr=False, compare=False)
    output_tokens: NDArray[np.float64] = field(repr=False, compare=False)
    cost_unit: CostUnit = "usd"
    model_info: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n, m = len(self.prompt_ids), len(self.models)
        if not (len(self.prompts) == len(self.tasks) == n):
            msg = f"dataset {self.name!r}: prompt_ids, prompts and tasks must have the same length"
            raise DataError(msg)
        for label, arr in (("scores", self.scores), ("costs", self.costs), ("output_tokens", self.output_tokens)):
            if arr.shape != (n, m):
                msg = f"dataset {self.name!r}: {label} has shape {arr.shape}, expected {(n, m)}"
                raise DataError(msg)
        if len(set(self.prompt_ids)) != n:
            msg = f"dataset {self.name!r}: prompt ids are not unique"
            raise DataError(msg)
        if len(set(self.models)) != m:
            msg = f"dataset {self.name!r}: model names are not unique"
            raise DataError(msg)
        observed = self.scores[~np.isnan(self.scores)]
        if observed.size and (observed.min() < 0 or observed.max() > 1):
            msg = f"dataset {self.name!r}: scores must lie in [0, 1]"
            raise DataError(msg)

    @property
    def n_prompts(self) -> int:
        """Number of prompts (rows)."""
        return len(self.prompt_ids)

    @property
    def n_models(self) -> int:
        """Number of models (columns)."""
        return len(self.models)

    def model_index(self, names: Sequence[str]) -> NDArray[np.intp]:
        """Column indices of `names`; unknown names are a `DataError`."""
        pos = {m: i for i, m in enumerate(self.models)}
        missing = [n for n in names if n not in pos]
        if missing:
            msg = f"unknown models {missing}; the dataset has {list(self.models)}"
            raise DataError(msg)
        return np.array([pos[n] for n in names], dtype=np.intp)

    def prompt_index(self, ids: Sequence[str]) -> NDArray[np.intp]:
        """Row indices of prompt `ids`; unknown ids are a `DataError`."""
        pos = {p: i for i, p in enumerate(self.prompt_ids)}
        missing = [p for p in ids if p not in pos]
        if missing:
            msg = f"{len(missing)} unknown prompt ids, e.g. {missing[:3]}"
            raise DataError(msg)
        return np.array([pos[p] for p in ids], dtype=np.intp)

    def subset(
        self,
        *,
        rows: Sequence[int] | NDArray[np.intp] | None = None,
        models: Sequence[str] | None = None,
    ) -> RoutingDataset:
        """A dataset restricted to some rows (prompt positions) and/or models."""
        r = np.arange(self.n_prompts) if rows is None else np.asarray(rows, dtype=np.intp)
        c = np.arange(self.n_models) if models is None else self.model_index(models)
        names = tuple(self.models[i] for i in c)
        return RoutingDataset(
            name=self.name,
            prompt_ids=tuple(self.prompt_ids[i] for i in r),
            prompts=tuple(self.prompts[i] for i in r),
            tasks=tuple(self.tasks[i] for i in r),
            models=names,
            scores=self.scores[np.ix_(r, c)],
            costs=self.costs[np.ix_(r, c)],
            output_tokens=self.output_tokens[np.ix_(r, c)],
            cost_unit=self.cost_unit,
            model_info={m: self.model_info.get(m, {}) for m in names},
        )

    def rename_models(self, mapping: Mapping[str, str]) -> RoutingDataset:
        """A copy whose models are renamed by `mapping` (names not in it are kept)."""
        names = tuple(mapping.get(m, m) for m in self.models)
        info = {mapping.get(m, m): {**self.model_info.get(m, {}), "dataset_model": m} for m in self.models}
        return RoutingDataset(
            name=self.name,
            prompt_ids=self.prompt_ids,
            prompts=self.prompts,
            tasks=self.tasks,
            models=names,
            scores=self.scores,
            costs=self.costs,
            output_tokens=self.output_tokens,
            cost_unit=self.cost_unit,
            model_info=info,
        )

    @classmethod
    def from_records(
        cls,
        *,
        name: str,
        prompts: Sequence[Mapping[str, Any]],
        outcomes: Sequence[Mapping[str, Any]],
        models: Sequence[Mapping[str, Any]],
    ) -> RoutingDataset:
        """Build a dataset from plain records with the same columns as the files.

        Args:
            name: Dataset name.
            prompts: Rows with ``prompt_id``, ``task``, ``prompt``.
            outcomes: Rows with ``prompt_id``, ``model``, ``score`` and optionally
                ``output_chars`` and ``cost_usd``.
            models: Rows with ``model`` and optionally prices and parameter counts.
        """
        return _assemble(
            name,
            _columns(prompts, name="prompts"),
            _columns(outcomes, name="outcomes"),
            _columns(models, name="models"),
        )


# --------------------------------------------------------------------------- loading

_PROMPT_COLUMNS = ("prompt_id", "task", "prompt")
_OUTCOME_COLUMNS = ("prompt_id", "model", "score")


def load_dataset(path: str | Path) -> RoutingDataset:
    """Read a dataset folder (``prompts.parquet``, ``outcomes.parquet``, ``models.csv``).

    Raises:
        DataError: A file is missing or malformed; the message names the file and problem.
        ImportError: The ``eval`` extra (pandas, pyarrow) is not installed.
    """
    root = Path(path)
    if not root.is_dir():
        msg = f"{root}: not a dataset folder (expected prompts.parquet, outcomes.parquet, models.csv)"
        raise DataError(msg)
    prompts = _read_table(root / "prompts.parquet", _PROMPT_COLUMNS)
    outcomes = _read_table(root / "outcomes.parquet", _OUTCOME_COLUMNS)
    models = _read_table(root / "models.csv", ("model",))
    return _assemble(root.name, prompts, outcomes, models)


Table = dict[str, list[Any]]
"""A table as columns; ``__file__`` names where it came from (for error messages)."""


def _columns(records: Sequence[Mapping[str, Any]], *, name: str) -> Table:
    keys: list[str] = []
    for rec in records:
        keys.extend(k for k in rec if k not in keys)
    table: Table = {k: [rec.get(k) for rec in records] for k in keys}
    table["__file__"] = [name]
    return table


def _read_table(file: Path, required: Sequence[str]) -> Table:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the install
        msg = "reading datasets needs pandas and pyarrow: pip install 'routed-llm[eval]'"
        raise ImportError(msg) from exc
    if not file.is_file():
        msg = f"{file}: file not found"
        raise DataError(msg)
    try:
        frame = pd.read_csv(file) if file.suffix == ".csv" else pd.read_parquet(file)
    except Exception as exc:
        msg = f"{file}: cannot be read as {file.suffix[1:]} ({type(exc).__name__}: {exc})"
        raise DataError(msg) from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        msg = f"{file}: missing column(s) {missing}; found {list(frame.columns)}"
        raise DataError(msg)
    if len(frame) == 0:
        msg = f"{file}: the table is empty"
        raise DataError(msg)
    table: Table = {str(c): frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in frame.columns}
    table["__file__"] = [str(file)]
    return table


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _assemble(name: str, prompts: Table, outcomes: Table, models: Table) -> RoutingDataset:
    pfile, ofile, mfile = (t.get("__file__", ["?"])[0] for t in (prompts, outcomes, models))
    for label, table, cols in (
        (pfile, prompts, _PROMPT_COLUMNS),
        (ofile, outcomes, _OUTCOME_COLUMNS),
        (mfile, models, ("model",)),
    ):
        missing = [c for c in cols if c not in table]
        if missing:
            msg = f"{label}: missing column(s) {missing}"
            raise DataError(msg)
        if not table[cols[0]]:
            msg = f"{label}: the table is empty"
            raise DataError(msg)

    prompt_ids = [str(x) for x in prompts["prompt_id"]]
    dup = _first_duplicate(prompt_ids)
    if dup is not None:
        msg = f"{pfile}: duplicate prompt_id {dup!r}; prompt ids must be unique"
        raise DataError(msg)
    model_names = [str(x) for x in models["model"]]
    dup = _first_duplicate(model_names)
    if dup is not None:
        msg = f"{mfile}: duplicate model {dup!r}; each model must appear once"
        raise DataError(msg)

    row_of = {p: i for i, p in enumerate(prompt_ids)}
    col_of = {m: j for j, m in enumerate(model_names)}
    n, m = len(prompt_ids), len(model_names)
    o_pid = np.array([str(x) for x in outcomes["prompt_id"]], dtype=object)
    o_model = np.array([str(x) for x in outcomes["model"]], dtype=object)
    o_score = _column(outcomes, "score")
    o_chars = _column(outcomes, "output_chars")
    o_usd = _column(outcomes, "cost_usd")
    rows = np.array([row_of.get(p, -1) for p in o_pid], dtype=np.intp)
    cols = np.array([col_of.get(x, -1) for x in o_model], dtype=np.intp)
    if (cols < 0).any():
        bad = o_model[np.flatnonzero(cols < 0)[0]]
        msg = f"{ofile}: model {bad!r} is not listed in models.csv; add it there or drop its rows"
        raise DataError(msg)
    if (rows < 0).any():
        bad = o_pid[np.flatnonzero(rows < 0)[0]]
        msg = f"{ofile}: prompt_id {bad!r} is not in prompts.parquet"
        raise DataError(msg)
    bad_score = np.isnan(o_score) | (o_score < 0) | (o_score > 1)
    if bad_score.any():
        k = int(np.flatnonzero(bad_score)[0])
        raw = outcomes["score"][k]
        msg = f"{ofile}: score {raw!r} for ({o_pid[k]!r}, {o_model[k]!r}) is outside [0, 1]"
        raise DataError(msg)
    flat = rows * m + cols
    uniq, counts = np.unique(flat, return_counts=True)
    if (counts > 1).any():
        k = int(uniq[np.flatnonzero(counts > 1)[0]])
        msg = f"{ofile}: duplicate outcome for prompt {prompt_ids[k // m]!r} and model {model_names[k % m]!r}"
        raise DataError(msg)
    scores = np.full((n, m), np.nan)
    out_chars = np.full((n, m), np.nan)
    cost_usd = np.full((n, m), np.nan)
    scores[rows, cols] = o_score
    out_chars[rows, cols] = o_chars
    cost_usd[rows, cols] = o_usd

    prompt_texts = [str(x) for x in prompts["prompt"]]
    in_tok = np.array([input_tokens(t) for t in prompt_texts], dtype=np.float64)
    out_tok = np.where(np.isnan(out_chars), float(DEFAULT_OUTPUT_TOKENS), np.ceil(out_chars / 4.0))
    fields = [k for k in models if k != "__file__"]
    info = {model_names[j]: {k: models[k][j] for k in fields} for j in range(len(model_names))}
    costs, unit = _realised_costs(info, model_names, scores, cost_usd, in_tok, out_tok, mfile)
    out_tok_observed = np.where(np.isnan(scores), np.nan, out_tok)
    return RoutingDataset(
        name=name,
        prompt_ids=tuple(prompt_ids),
        prompts=tuple(prompt_texts),
        tasks=tuple(str(x) for x in prompts["task"]),
        models=tuple(model_names),
        scores=scores,
        costs=costs,
        output_tokens=out_tok_observed,
        cost_unit=unit,
        model_info=info,
    )


def _realised_costs(
    info: Mapping[str, Mapping[str, Any]],
    models: Sequence[str],
    scores: NDArray[np.float64],
    cost_usd: NDArray[np.float64],
    in_tok: NDArray[np.float64],
    out_tok: NDArray[np.float64],
    mfile: str,
) -> tuple[NDArray[np.float64], CostUnit]:
    """Apply the data README's cost rule: cost_usd, else prices x tokens, else params."""
    price_in = np.array([_price(info[m].get("price_in_per_1m")) for m in models])
    price_out = np.array([_price(info[m].get("price_out_per_1m")) for m in models])
    priced = in_tok[:, None] * price_in[None, :] / 1e6 + out_tok * price_out[None, :] / 1e6
    usd = np.where(np.isnan(cost_usd), priced, cost_usd)
    observed = ~np.isnan(scores)
    if not np.isnan(usd[observed]).any():
        return np.where(observed, usd, np.nan), "usd"
    params = np.array([_num(info[m].get("active_params_b")) or _num(info[m].get("params_b")) or np.nan for m in models])
    if np.isnan(params).any():
        bad = [m for m, p, q in zip(models, params, price_in, strict=True) if np.isnan(p) and np.isnan(q)]
        msg = (
            f"{mfile}: no cost information for {bad}: give cost_usd in outcomes, "
            "price_in_per_1m/price_out_per_1m, or active_params_b/params_b"
        )
        raise DataError(msg)
    warnings.warn(
        f"{mfile}: some calls have neither cost_usd nor prices; using active_params_b/params_b "
        "as a relative cost for every model (cost_unit='relative')",
        stacklevel=3,
    )
    rel = np.broadcast_to(params[None, :], scores.shape).astype(np.float64)
    return np.where(observed, rel, np.nan), "relative"


def _column(table: Table, key: str) -> NDArray[np.float64]:
    """A float column with NaN where the value is absent or not a number."""
    n = len(table["model"]) if "model" in table else len(next(iter(table.values())))
    values = table.get(key)
    if values is None:
        return np.full(n, np.nan)
    return np.array([_price(v) for v in values], dtype=np.float64)


def _price(raw: Any) -> float:
    value = _num(raw)
    return np.nan if value is None else value


def _first_duplicate(values: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None
