"""Per-model behaviour and fault descriptions for the local OpenAI-compatible server.

Both are frozen dataclasses holding plain data; the server reads them, never mutates them.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "Behavior",
    "Fault",
    "FaultKind",
    "answer_key_for_accuracy",
    "choose_option",
    "find_options",
    "prompt_key",
]

FaultKind = Literal["http", "hang", "close", "malformed", "stream_break", "context_window", "content_filter"]
_KINDS: tuple[str, ...] = get_args(FaultKind)
_OPTION_RE = re.compile(r"^\s*\(?([A-J])[.)]\s+\S", re.MULTILINE)

AnswerKey = Mapping[str, str] | Callable[[str, Sequence[str]], "str | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One injected failure. Build with the class methods, e.g. `Fault.http(429, retry_after=1)`.

    Attributes:
        kind: "http" (error status with an OpenAI error body), "hang" (stall `seconds`
            before answering), "close" (drop the connection without a response),
            "malformed" (200 with an invalid JSON body), "stream_break" (send `chunks`
            chunks then stop, without finish_reason and without [DONE]),
            "context_window" (400 `context_length_exceeded`), "content_filter" (400
            `content_policy_violation`).
        status: HTTP status for kind "http" (400-599).
        retry_after: Seconds sent in the `Retry-After` header (kind "http").
        seconds: How long kind "hang" stalls before answering normally.
        chunks: How many SSE chunks kind "stream_break" sends before breaking.
        abort: For "stream_break": True cuts the chunked body mid-stream (the client sees a
            transport error); False ends the body cleanly, just without finish_reason/[DONE].
        message: Error message override for "http".
    """

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    seconds: float = 30.0
    chunks: int = 2
    abort: bool = True
    message: str | None = None

    def __post_init__(self) -> None:
        """Validate the kind and the status."""
        if self.kind not in _KINDS:
            msg = f"unknown fault kind {self.kind!r}; valid kinds: {list(_KINDS)}"
            raise ValueError(msg)
        if self.kind == "http" and not 400 <= self.status <= 599:
            msg = f"fault status must be 400-599, got {self.status}"
            raise ValueError(msg)

    @classmethod
    def http(cls, status: int, *, retry_after: float | None = None, message: str | None = None) -> Fault:
        """An HTTP error with an OpenAI-style JSON error body."""
        return cls(kind="http", status=status, retry_after=retry_after, message=message)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Stall `seconds` before answering (released at once when the server stops)."""
        return cls(kind="hang", seconds=seconds)

    @classmethod
    def close(cls) -> Fault:
        """Close the connection without sending any response."""
        return cls(kind="close")

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not valid JSON."""
        return cls(kind="malformed")

    @classmethod
    def stream_break(cls, chunks: int = 2, *, abort: bool = True) -> Fault:
        """Send `chunks` SSE chunks then stop without finish_reason and [DONE]."""
        return cls(kind="stream_break", chunks=chunks, abort=abort)

    @classmethod
    def context_window(cls) -> Fault:
        """A 400 `context_length_exceeded` error."""
        return cls(kind="context_window")

    @classmethod
    def content_filter(cls) -> Fault:
        """A 400 `content_policy_violation` error."""
        return cls(kind="content_filter")

    @classmethod
    def parse(cls, spec: str | int | Fault) -> Fault:
        """Parse a short spec: 500, "429", "hang", "hang:2.5", "stream_break:3", "close", ...

        Raises:
            ValueError: If the spec names no known fault.
        """
        if isinstance(spec, Fault):
            return spec
        text = str(spec).strip()
        name, _, arg = text.partition(":")
        if name.isdigit():
            return cls.http(int(name), retry_after=float(arg) if arg else None)
        if name == "hang":
            return cls.hang(float(arg) if arg else 30.0)
        if name == "stream_break":
            return cls.stream_break(int(arg) if arg else 2)
        if name in _KINDS and name != "http":
            return cls(kind=name)  # type: ignore[arg-type]
        msg = f"unknown fault spec {spec!r}; use a status like '503' or one of {list(_KINDS)}"
        raise ValueError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class Behavior:
    """How one model answers. The default answers every prompt deterministically.

    Attributes:
        reply: Fixed text, or a function of the last user message, used for every text
            answer (overrides the multiple-choice rule).
        answer_key: Multiple-choice rule: a mapping from a prompt (exact text, its
            `prompt_key`, or any substring of it) to a letter, or a function
            `(prompt, options) -> letter | None`. Unmatched prompts fall back to a
            deterministic hash of model and prompt.
        latency: Seconds to wait before every answer (simulated model latency).
        use_tools: When False the model ignores `tools` and answers in text.
        context_window: Prompt-token limit; longer prompts get `context_length_exceeded`.
    """

    reply: str | Callable[[str], str] | None = None
    answer_key: AnswerKey | None = None
    latency: float = 0.0
    use_tools: bool = True
    context_window: int | None = None


def prompt_key(prompt: str) -> str:
    """Return the 16-hex-digit sha256 key of a stripped prompt (usable in `answer_key`)."""
    return hashlib.sha256(prompt.strip().encode("utf-8")).hexdigest()[:16]


def find_options(prompt: str) -> list[str]:
    """Return the option letters ("A", "B", ...) of a multiple-choice prompt, else []."""
    letters = list(dict.fromkeys(_OPTION_RE.findall(prompt)))
    return letters if len(letters) >= 2 and "A" in letters else []


def choose_option(model: str, prompt: str, options: Sequence[str], answer_key: AnswerKey | None) -> str:
    """Pick the letter `model` answers for a multiple-choice `prompt`."""
    if callable(answer_key):
        letter = answer_key(prompt, options)
        if letter:
            return letter
    elif answer_key:
        for key in (prompt, prompt.strip(), prompt_key(prompt)):
            if key in answer_key:
                return answer_key[key]
        for key, letter in answer_key.items():
            if key and key in prompt:
                return letter
    digest = hashlib.sha256(f"{model}\n{prompt}".encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def answer_key_for_accuracy(
    gold: Mapping[str, str], accuracy: float, *, seed: int = 0, letters: str = "ABCD"
) -> dict[str, str]:
    """Build an `answer_key` that answers exactly `round(accuracy * len(gold))` prompts right.

    Args:
        gold: Prompt (or prompt substring / `prompt_key`) to the correct letter.
        accuracy: Wanted share of correct answers in [0, 1].
        seed: Seed choosing which prompts are answered right.
        letters: Letters to pick a wrong answer from (the one after the gold letter).

    Returns:
        A mapping usable as `Behavior(answer_key=...)`.
    """
    keys = sorted(gold)
    random.Random(seed).shuffle(keys)
    n_right = round(accuracy * len(keys))
    key: dict[str, str] = {}
    for i, prompt in enumerate(keys):
        right = gold[prompt]
        wrong = letters[(letters.index(right) + 1) % len(letters)] if right in letters else letters[0]
        key[prompt] = right if i < n_right else wrong
    return key
