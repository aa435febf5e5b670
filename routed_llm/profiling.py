"""Profile a model: run it on a router's probe prompts, grade the answers, measure cost.

The "aptitude test" of a new model. Each probe item (`ProbeItem`) is sent once as the
user message (temperature 0) through `routed_llm.transport.acomplete`, concurrently under
an `asyncio.Semaphore`. Every finished call is appended to a journal (JSON lines, flushed
and fsynced), so an interrupted run resumes where it stopped: prompts with a successful
answer in the journal are never asked again. Failed calls (after a small retry for
transient errors) are recorded as errors; in the profile they are *missing* (NaN score,
ignored by the router), never a silent 0.

The pieces are small and mostly pure:

* `load_probe_set` / `select_probes`: which prompts to ask;
* `ProbeJournal`: the resumable record of answers;
* `run_probes`: the only I/O loop (async);
* `build_profile`: grades the journal's answers into a `ModelProfile` (pure).

`profile_model` ties them together; ``routed-llm profile`` is its command line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .errors import ConfigError, DataError
from .grading import grade, graders_used
from .types import ModelProfile

__all__ = [
    "JOURNAL_FORMAT",
    "ProbeItem",
    "ProbeJournal",
    "ProfileRun",
    "ProfileSettings",
    "ProfilingAborted",
    "build_profile",
    "journal_path_for",
    "load_probe_set",
    "profile_model",
    "run_probes",
    "select_probes",
]

JOURNAL_FORMAT = "routed-llm/profile-journal@1"
# errors that every other probe call would hit too: stop at once instead of failing 500 times
_FATAL = ("AuthenticationError", "PermissionDeniedError", "NotFoundError", "LiteLLMUnknownProvider")
_MAX_BACKOFF_S = 30.0


# ---------------------------------------------------------------------------------------------
# probe sets


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeItem:
    """One probe prompt with its reference answer and the grader that compares them."""

    prompt_id: str
    prompt: str
    reference: str
    grader: str = "choice"
    task: str = ""

    @property
    def prompt_sha(self) -> str:
        """16 hex digits of the prompt's sha256 (ties a journal record to this exact prompt)."""
        return hashlib.sha256(self.prompt.encode("utf-8")).hexdigest()[:16]


def _items_from_rows(rows: Iterable[Mapping[str, Any]], source: str) -> list[ProbeItem]:
    items: list[ProbeItem] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, start=1):
        missing = [k for k in ("prompt_id", "prompt", "reference") if row.get(k) in (None, "")]
        if missing:
            msg = f"{source}: item {n} lacks {missing}; each line needs prompt_id, prompt, reference (and grader)"
            raise DataError(msg)
        item = ProbeItem(
            prompt_id=str(row["prompt_id"]),
            prompt=str(row["prompt"]),
            reference=str(row["reference"]),
            grader=str(row.get("grader") or "choice"),
            task=str(row.get("task") or ""),
        )
        try:  # an unknown grader or an unusable reference: a clear error now, not after the calls
            grade(item.grader, "", item.reference)
        except DataError as exc:
            msg = f"{source}: item {item.prompt_id!r}: {exc}"
            raise DataError(msg) from None
        if item.prompt_id in seen:
            msg = f"{source}: prompt_id {item.prompt_id!r} appears twice"
            raise DataError(msg)
        seen.add(item.prompt_id)
        items.append(item)
    if not items:
        msg = f"{source}: the probe set is empty"
        raise DataError(msg)
    return items


def load_probe_set(spec: str | os.PathLike[str] = "default") -> tuple[str, list[ProbeItem]]:
    """Read a probe set: ``"default"`` (the shipped default router's) or a ``.jsonl`` path.

    Each JSON line has ``prompt_id``, ``prompt``, ``reference`` and optionally ``grader``
    (``choice`` by default, ``exact``, ``numeric`` or ``numeric:TOL``) and ``task``.

    Returns:
        The probe set's name (``"default"`` or the file name) and its items.

    Raises:
        DataError: The file is missing or malformed.
    """
    if str(spec) == "default":
        from .default import default_probe_set

        return "default", _items_from_rows(default_probe_set(), "default probe set")
    path = Path(spec)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        msg = f"probe set {path} not found; pass 'default' or a .jsonl file of prompt_id, prompt, reference, grader"
        raise DataError(msg) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"probe set {path} cannot be read ({exc})"
        raise DataError(msg) from exc
    rows: list[Mapping[str, Any]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            msg = f"probe set {path}, line {n}: not JSON ({exc.msg})"
            raise DataError(msg) from exc
        if not isinstance(row, dict):
            msg = f"probe set {path}, line {n}: expected a JSON object"
            raise DataError(msg)
        rows.append(row)
    return path.name, _items_from_rows(rows, f"probe set {path}")


def select_probes(
    items: Sequence[ProbeItem], *, probe_ids: Sequence[str] | None = None, limit: int | None = None
) -> list[ProbeItem]:
    """The items to ask: those of `probe_ids` (all must be present), then at most `limit`.

    `limit` takes items round-robin across tasks (in order of first appearance), so a small
    limit still covers every subject. The choice is deterministic: rerunning with the same
    arguments asks the same prompts, and a larger limit extends a smaller one.

    Raises:
        DataError: Some of `probe_ids` are not in the probe set.
        ConfigError: `limit` is below 1.
    """
    chosen = list(items)
    if probe_ids is not None:
        by_id = {it.prompt_id: it for it in items}
        missing = [p for p in probe_ids if p not in by_id]
        if missing:
            msg = (
                f"the probe set lacks {len(missing)} of the router's {len(probe_ids)} probe prompts "
                f"(e.g. {missing[:3]}); use the probe set the router was built with (its probes.jsonl)"
            )
            raise DataError(msg)
        chosen = [by_id[p] for p in probe_ids]
    if limit is None or limit >= len(chosen):
        return chosen
    if limit < 1:
        msg = f"limit must be >= 1, got {limit}"
        raise ConfigError(msg)
    by_task: dict[str, list[ProbeItem]] = {}
    for it in chosen:
        by_task.setdefault(it.task, []).append(it)
    queues = list(by_task.values())
    out: list[ProbeItem] = []
    for depth in range(max(len(q) for q in queues)):
        for q in queues:
            if depth < len(q):
                out.append(q[depth])
                if len(out) == limit:
                    return out
    return out


# ---------------------------------------------------------------------------------------------
# settings and journal


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileSettings:
    """How to call the model being profiled.

    Attributes:
        model: LiteLLM model id (``"gpt-4o-mini"``, ``"openai/smollm2"``).
        name: Name of the model in the profile and the router (default: `model`).
        api_base: Base URL of an OpenAI-compatible (or other LiteLLM) endpoint.
        api_key: The key (never written anywhere; hidden from repr).
        max_tokens: Completion token cap per probe call.
        timeout: Seconds per call.
        concurrency: Calls in flight at once.
        retries: Extra attempts for transient errors (rate limits, 5xx, timeouts).
        price_in_per_1m: Input price (USD per 1M tokens) overriding LiteLLM's price table.
        price_out_per_1m: Output price (USD per 1M tokens) overriding LiteLLM's price table.
        extra: More LiteLLM parameters for every call.
    """

    model: str
    name: str | None = None
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    max_tokens: int = 512
    timeout: float = 120.0
    concurrency: int = 8
    retries: int = 2
    price_in_per_1m: float | None = None
    price_out_per_1m: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model or not isinstance(self.model, str):
            msg = "model must be a LiteLLM model id such as 'gpt-4o-mini' or 'openai/<name>'"
            raise ConfigError(msg)
        for key, low in (("max_tokens", 1), ("concurrency", 1), ("retries", 0)):
            value = getattr(self, key)
            if not isinstance(value, int) or value < low:
                msg = f"{key} must be an integer >= {low}, got {value!r}"
                raise ConfigError(msg)
        if not self.timeout > 0:
            msg = f"timeout must be > 0 seconds, got {self.timeout!r}"
            raise ConfigError(msg)
        prices = (self.price_in_per_1m, self.price_out_per_1m)
        if (prices[0] is None) != (prices[1] is None):
            msg = "give both --price-in and --price-out (USD per 1M tokens), or neither"
            raise ConfigError(msg)
        if any(p is not None and not (math.isfinite(p) and p >= 0) for p in prices):
            msg = f"prices must be finite numbers >= 0, got {prices}"
            raise ConfigError(msg)

    @property
    def profile_name(self) -> str:
        """The name the model gets in the profile."""
        return self.name or self.model

    def call_params(self) -> dict[str, Any]:
        """Keyword arguments for `transport.acomplete` (besides model and messages)."""
        params: dict[str, Any] = {
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
            "drop_params": True,  # models that refuse temperature=0 get their default instead
            **dict(self.extra),
        }
        if self.api_base:
            params["api_base"] = self.api_base
        if self.api_key:
            params["api_key"] = self.api_key
        return params

    def redact(self, text: str) -> str:
        """`text` with the API key (if any) replaced by ``***``."""
        return text.replace(self.api_key, "***") if self.api_key and len(self.api_key) >= 4 else text


def journal_path_for(out: str | os.PathLike[str]) -> Path:
    """The journal beside a profile file: ``PROFILE.json.partial.jsonl``."""
    out = Path(out)
    return out.with_name(out.name + ".partial.jsonl")


class ProbeJournal:
    """Append-only JSON-lines record of probe calls; the basis of resuming.

    The first line is a header naming the model; each further line is one call's record
    (``prompt_id``, ``prompt_sha``, ``ok``, ``response`` or ``error``, tokens, cost,
    latency). Records are flushed and fsynced one by one, so a crash loses at most the
    call in flight. A torn last line (a crash mid-write) is ignored.
    """

    def __init__(self, path: str | os.PathLike[str], *, model: str) -> None:
        self.path = Path(path)
        self.model = model
        self.records: list[dict[str, Any]] = []
        self.skipped_lines = 0
        self._read()

    def _read(self) -> None:
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        for n, line in enumerate(lines):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                self.skipped_lines += bool(line.strip())
                continue
            if not isinstance(row, dict):
                self.skipped_lines += 1
            elif n == 0 and row.get("format") == JOURNAL_FORMAT:
                if row.get("model") != self.model:
                    msg = (
                        f"{self.path} holds answers of model {row.get('model')!r}, not {self.model!r}; "
                        "delete it, pass --fresh, or choose another --out"
                    )
                    raise ConfigError(msg)
            elif n == 0:
                msg = f"{self.path} is not a routed-llm profile journal; delete it or choose another --out"
                raise DataError(msg)
            elif "prompt_id" in row:
                self.records.append(row)

    def answered(self) -> dict[str, dict[str, Any]]:
        """The latest successful record per prompt id."""
        return {r["prompt_id"]: r for r in self.records if r.get("ok")}

    def latest(self) -> dict[str, dict[str, Any]]:
        """Per prompt id: the latest successful record, else the latest failed one."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.records:
            if r.get("ok") or not out.get(r["prompt_id"], {}).get("ok"):
                out[r["prompt_id"]] = r
        return out

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record durably (flush + fsync)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a+b") as fh:
            if not new:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")  # seal a torn line so this record starts cleanly
            if new:
                header = {"format": JOURNAL_FORMAT, "model": self.model}
                fh.write((json.dumps(header) + "\n").encode("utf-8"))
            fh.write((json.dumps(dict(record), allow_nan=False) + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(dict(record))


# ---------------------------------------------------------------------------------------------
# calling the model


class ProfilingAborted(ConfigError):
    """A call failed in a way every other call would too (bad key, unknown model)."""


def _usage(response: Any) -> tuple[int | None, int | None]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None
    pin, pout = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
    return (int(pin) if pin is not None else None), (int(pout) if pout is not None else None)


def _content(response: Any) -> str:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def _call_cost(settings: ProfileSettings, response: Any, tokens: tuple[int | None, int | None]) -> float | None:
    if settings.price_in_per_1m is not None and settings.price_out_per_1m is not None:
        pin, pout = tokens
        if pin is None or pout is None:
            return None
        return (pin * settings.price_in_per_1m + pout * settings.price_out_per_1m) / 1e6
    from .transport import cost_of

    return cost_of(response)


def _is_fatal(exc: BaseException) -> bool:
    """Would every other probe call fail the same way (bad key, no permission, unknown model)?"""
    return any(cls.__name__ in _FATAL for cls in type(exc).__mro__)


def _short_error(settings: ProfileSettings, exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return settings.redact(text)[:300]


async def _ask(item: ProbeItem, settings: ProfileSettings, sleep: Callable[[float], Any]) -> dict[str, Any]:
    """One probe call with retries; returns its journal record (never raises provider errors)."""
    from .fallback import classify, retry_after_seconds
    from .transport import acomplete

    messages = [{"role": "user", "content": item.prompt}]
    attempts = settings.retries + 1
    error = ""
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        try:
            response = await acomplete(settings.model, messages, **settings.call_params())
        except Exception as exc:  # every provider error is recorded (or aborts the run)
            error = _short_error(settings, exc)
            if _is_fatal(exc):
                msg = f"calling {settings.model} failed: {error}"
                raise ProfilingAborted(msg) from None
            if classify(exc) != "retry" or attempt == attempts:
                break
            wait = retry_after_seconds(exc)
            await sleep(min(_MAX_BACKOFF_S, wait if wait is not None else 0.5 * 2 ** (attempt - 1)))
            continue
        latency = time.perf_counter() - started
        tokens = _usage(response)
        text = _content(response)
        return {
            "prompt_id": item.prompt_id,
            "prompt_sha": item.prompt_sha,
            "ok": True,
            "response": text,
            "score": grade(item.grader, text, item.reference, prompt=item.prompt),
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "cost": _call_cost(settings, response, tokens),
            "latency_s": round(latency, 4),
            "attempts": attempt,
        }
    return {
        "prompt_id": item.prompt_id,
        "prompt_sha": item.prompt_sha,
        "ok": False,
        "error": error,
        "attempts": attempt,
    }


async def run_probes(
    items: Sequence[ProbeItem],
    settings: ProfileSettings,
    journal: ProbeJournal,
    *,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> int:
    """Ask every item that has no successful answer in `journal`; returns how many were asked.

    Records are appended to the journal as calls finish (in completion order).

    Raises:
        ProfilingAborted: A call failed with an error that every call would hit
            (authentication, permission, unknown model or provider).
    """
    done = journal.answered()
    pending = [it for it in items if done.get(it.prompt_id, {}).get("prompt_sha") != it.prompt_sha]
    if not pending:
        return 0
    sem = asyncio.Semaphore(settings.concurrency)

    async def one(item: ProbeItem) -> dict[str, Any]:
        async with sem:
            return await _ask(item, settings, sleep)

    tasks = [asyncio.ensure_future(one(it)) for it in pending]
    try:
        for fut in asyncio.as_completed(tasks):
            record = await fut
            journal.append(record)
            if on_record is not None:
                on_record(record)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return len(pending)


# ---------------------------------------------------------------------------------------------
# building the profile


def _mean(values: Iterable[float | None]) -> float | None:
    seen = [float(v) for v in values if v is not None]
    return float(np.mean(seen)) if seen else None


def _host(api_base: str | None) -> str | None:
    if not api_base:
        return None
    parts = urlsplit(api_base)
    if not parts.hostname:
        return None
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname  # never userinfo


def _list_prices(settings: ProfileSettings) -> tuple[float | None, float | None]:
    if settings.price_in_per_1m is not None:
        return settings.price_in_per_1m, settings.price_out_per_1m
    from .transport import model_info

    info = model_info(settings.model)
    pin, pout = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    return (float(pin) * 1e6 if pin is not None else None), (float(pout) * 1e6 if pout is not None else None)


def build_profile(
    items: Sequence[ProbeItem],
    records: Mapping[str, Mapping[str, Any]],
    settings: ProfileSettings,
    *,
    probe_set: str,
    prices: tuple[float | None, float | None] = (None, None),
    created_at: str | None = None,
) -> tuple[ModelProfile, list[str]]:
    """Grade the recorded answers into a `ModelProfile`; returns it and warnings.

    A prompt without a successful record is missing (NaN score). The expected cost is
    the mean measured cost per successful call (0 with a warning when no price is known).

    Raises:
        DataError: No prompt has a successful answer.
    """
    warnings: list[str] = []
    scores, costs, ins, outs, lat, errors = [], [], [], [], [], []
    for it in items:
        rec = records.get(it.prompt_id)
        if rec is None or not rec.get("ok") or rec.get("prompt_sha") != it.prompt_sha:
            scores.append(math.nan)
            if rec is not None and rec.get("error"):
                errors.append(f"{it.prompt_id}: {rec['error']}")
            continue
        scores.append(grade(it.grader, str(rec.get("response") or ""), it.reference, prompt=it.prompt))
        costs.append(rec.get("cost"))
        ins.append(rec.get("input_tokens"))
        outs.append(rec.get("output_tokens"))
        lat.append(rec.get("latency_s"))
    n_graded = sum(not math.isnan(s) for s in scores)
    if n_graded == 0:
        first = f" First error: {errors[0]}" if errors else ""
        msg = f"no probe prompt was answered by {settings.model}.{first}"
        raise DataError(msg)
    expected = _mean(costs)
    cost_source = "prices" if settings.price_in_per_1m is not None else "litellm"
    if expected is None:
        expected, cost_source = 0.0, "none"
        warnings.append(
            f"no price known for {settings.model}: expected cost set to 0 (free). "
            "Pass --price-in and --price-out (USD per 1M tokens) to price it."
        )
    elif any(c is None for c in costs):
        warnings.append(
            f"{sum(c is None for c in costs)} calls could not be priced; their cost is left out of the mean"
        )
    from . import __version__

    meta = {
        "source": "routed-llm profile",
        "model_id": settings.model,
        "api_base_host": _host(settings.api_base),
        "created_at": created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "probe_set": probe_set,
        "n_probes": len(items),
        "n_graded": n_graded,
        "n_errors": len(items) - n_graded,
        "errors_as": "missing: a failed call has a null score, which the router ignores",
        "error_examples": errors[:3],
        "graders": graders_used([it.grader for it in items]),
        "max_tokens": settings.max_tokens,
        "temperature": 0,
        "cost_source": cost_source,
        "cost_unit": "usd",
        "routed_llm_version": __version__,
    }
    profile = ModelProfile(
        model=settings.profile_name,
        probe_ids=tuple(it.prompt_id for it in items),
        scores=np.array(scores, dtype=np.float64),
        expected_cost=float(expected),
        mean_input_tokens=_mean(ins),
        mean_output_tokens=_mean(outs),
        price_in_per_1m=prices[0],
        price_out_per_1m=prices[1],
        mean_latency_s=_mean(lat),
        meta=meta,
    )
    return profile, warnings


# ---------------------------------------------------------------------------------------------
# the whole run


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileRun:
    """What `profile_model` did.

    Attributes:
        profile: The graded profile (written to `out` unless too many calls failed).
        written: Whether the profile file was written.
        asked: Calls made in this run (resumed prompts are not asked again).
        resumed: Prompts whose answer came from the journal.
        n_errors: Prompts without an answer.
        journal: Path of the journal.
        warnings: Human-readable warnings.
    """

    profile: ModelProfile
    written: bool
    asked: int
    resumed: int
    n_errors: int
    journal: Path
    warnings: tuple[str, ...] = ()


def profile_model(
    items: Sequence[ProbeItem],
    settings: ProfileSettings,
    out: str | os.PathLike[str],
    *,
    probe_set: str = "default",
    max_error_rate: float = 0.2,
    fresh: bool = False,
    progress: bool | None = None,
) -> ProfileRun:
    """Run `settings.model` on `items`, grade it and write its profile to `out` (JSON).

    Resumable: answers are journaled in ``<out>.partial.jsonl``; a rerun asks only the
    prompts without an answer there. The journal is kept after success (it holds the raw
    replies); `fresh` discards it first.

    Args:
        items: The probe items to ask (see `load_probe_set`, `select_probes`).
        settings: How to call the model.
        out: Where to write the profile JSON.
        probe_set: Name of the probe set (recorded in the profile).
        max_error_rate: If a larger share of calls fails, the profile is not written.
        fresh: Ignore (delete) an existing journal.
        progress: Show a tqdm progress bar (None: only on a terminal).

    Raises:
        ProfilingAborted: A call failed with an error every call would hit.
        ConfigError: The journal belongs to another model.
        DataError: No prompt was answered.
    """
    out = Path(out)
    jpath = journal_path_for(out)
    if fresh and jpath.exists():
        jpath.unlink()
    journal = ProbeJournal(jpath, model=settings.model)
    before = journal.answered()
    resumed = sum(before.get(it.prompt_id, {}).get("prompt_sha") == it.prompt_sha for it in items)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), initial=resumed, desc=f"profiling {settings.profile_name}", unit="probe",
               disable=None if progress is None else not progress, dynamic_ncols=True)  # fmt: skip
    failed = [0]

    def tick(record: dict[str, Any]) -> None:
        failed[0] += not record.get("ok")
        bar.update(1)
        bar.set_postfix(errors=failed[0], refresh=False)

    try:
        asked = asyncio.run(run_probes(items, settings, journal, on_record=tick))
    finally:
        bar.close()
    warnings = [f"{journal.skipped_lines} unreadable journal lines were ignored"] if journal.skipped_lines else []
    profile, more = build_profile(items, journal.latest(), settings, probe_set=probe_set, prices=_list_prices(settings))
    warnings.extend(more)
    n_errors = int(profile.meta["n_errors"])
    written = n_errors <= max_error_rate * len(items)
    if written:
        tmp = out.with_name(out.name + ".tmp")
        out.parent.mkdir(parents=True, exist_ok=True)
        profile.save(tmp)
        os.replace(tmp, out)
    return ProfileRun(profile=profile, written=written, asked=asked, resumed=resumed, n_errors=n_errors,
                      journal=jpath, warnings=tuple(warnings))  # fmt: skip
