"""Graders: turn a model's free-text answer to a probe prompt into a score in [0, 1].

Pure functions, no I/O. A probe item names its grader (``"choice"``, ``"exact"`` or
``"numeric"``, optionally with an argument after a colon, e.g. ``"numeric:0.01"``); `grade`
dispatches on it.

``choice`` - multiple-choice letter extraction (MMLU-Pro style prompts that end with
'finish your answer with "the answer is (X)"'). The first rule that matches wins:

1. ``\\boxed{X}`` (last occurrence);
2. an answer phrase: "answer is (X)", "answer is X", "answer: X", "Answer: **(X)**",
   "final answer - X", "answer would be X" (last occurrence; "answer" in any case, the
   letter in upper case);
3. an option phrase: "correct option is X", "choice: (X)" (last occurrence);
4. a bold letter ``**X**`` / ``**(X)**`` (last occurrence);
5. the reply *starts* with the letter: "C", "C.", "C)", "(C)", "C:" followed by anything;
6. the last standalone letter of the reply: "(C)" anywhere, or a lone capital letter not
   glued to other letters or digits; the English words "A" and "I" count only when not
   followed by a lower-case word ("I think", "A bit" are not answers).

Only letters that are options of the prompt count (the "A. ...", "B. ..." lines of the
prompt when it is given, else A-J). The score is 1.0 when the extracted letter equals the
reference letter, else 0.0 (no letter found is 0.0: the model did not answer).

``exact`` - normalised exact match: lower case, punctuation and the articles a/an/the
removed, whitespace collapsed. The whole reply, its text after the last answer phrase
("answer is ...", "answer: ..."), and its last non-empty line are each compared with the
reference; any match scores 1.0.

``numeric`` - the number after the last answer phrase ("answer is", "answer:", "####",
``\\boxed{}``), else the last number of the reply, compared with the reference number
within a relative tolerance (default 1e-6, or the grader's argument: ``"numeric:0.01"``)
and an absolute tolerance of 1e-9. Thousands separators ("1,234"), signs, decimals,
exponents and simple fractions ("3/4") are understood.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence
from fractions import Fraction

from .errors import DataError

__all__ = [
    "GRADERS",
    "extract_choice",
    "extract_number",
    "grade",
    "grade_choice",
    "grade_exact",
    "grade_numeric",
    "graders_used",
    "normalize_text",
    "option_letters",
    "parse_grader",
]

LETTERS = "ABCDEFGHIJ"
_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[.)]\s+\S", re.MULTILINE)
_L = r"\(?\s*\**\s*\(?([A-J])\)?\**"  # a letter, optionally in parentheses and/or bold
# not glued to a word; "A"/"I" not followed by a lower-case word ("I think", "A bit")
_END = r"(?![A-Za-z0-9'])(?!(?<=[AI])\s+[a-z])"
_BOXED = re.compile(r"\\boxed\{\s*\(?([A-J])\)?\s*\}")
_LEAD = r"\s*(?:is|would\s+be|should\s+be|=)?\s*(?::|-|=)?\s*(?:\*\*)?\s*(?:\$\s*)?(?:\\text\{\s*)?"
_ANSWER = re.compile(r"(?i:answer)" + _LEAD + _L + _END)
_OPTION = re.compile(r"(?i:correct\s+(?:option|choice)|option|choice)" + _LEAD + _L + _END)
_BOLD = re.compile(r"\*\*\s*\(?([A-J])\)?\s*[.:]?\s*\*\*")
_START = re.compile(r"^\s*(?:\*\*)?\(?([A-J])(?:\)|\.|:|\*\*|\s*$|\s+[-–—])")
_PAREN = re.compile(r"\(([A-J])\)")
_LONE = re.compile(r"(?<![A-Za-z0-9'])([A-J])" + _END)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ANSWER_TAIL = re.compile(r"(?i:answer)\s*(?:is|:|=|-)\s*(.+)$", re.DOTALL)
_NUM = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+(?:[eE][-+]?\d+)?"
_NUMBER = re.compile(rf"(?<![\w.])(?:{_NUM})(?:\s*/\s*(?:\d+))?")
_NUM_TAIL = re.compile(r"(?:(?i:answer)\s*(?:is|:|=)|####|\\boxed\{)\s*\$?\s*(.*)", re.DOTALL)


def option_letters(prompt: str) -> str:
    """The option letters of a multiple-choice prompt ("A. ...", "(B) ..." lines), else A-J."""
    found = sorted(set(_OPTION_LINE.findall(prompt or "")))
    return "".join(found) if len(found) >= 2 and "A" in found else LETTERS


def _last(pattern: re.Pattern[str], text: str, letters: str) -> str | None:
    hits = [m for m in pattern.findall(text) if m in letters]
    return hits[-1] if hits else None


def extract_choice(text: str, letters: str = LETTERS) -> str | None:
    """The answer letter in `text`, or None (see the module docstring for the precedence).

    Args:
        text: The model's reply.
        letters: The valid option letters (e.g. ``"ABCD"``).
    """
    if not text:
        return None
    for pattern in (_BOXED, _ANSWER, _OPTION, _BOLD):
        hit = _last(pattern, text, letters)
        if hit:
            return hit
    start = _START.match(text)
    if start and start.group(1) in letters:
        return start.group(1)
    return _last(_PAREN, text, letters) or _last(_LONE, text, letters)


def grade_choice(response: str, reference: str, *, prompt: str = "") -> float:
    """1.0 when the letter extracted from `response` is `reference`, else 0.0."""
    ref = reference.strip().strip("()").upper()
    if len(ref) != 1 or ref not in LETTERS:
        msg = f"choice grader: reference must be one letter A-J, got {reference!r}"
        raise DataError(msg)
    return 1.0 if extract_choice(response, option_letters(prompt)) == ref else 0.0


def normalize_text(text: str) -> str:
    """Lower case, without punctuation, articles and extra whitespace (SQuAD normalisation)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def grade_exact(response: str, reference: str, *, prompt: str = "") -> float:
    """1.0 when the reply (whole, after its answer phrase, or its last line) equals `reference`."""
    ref = normalize_text(reference)
    candidates = [response]
    tail = _ANSWER_TAIL.findall(response)
    if tail:
        candidates.append(tail[-1])
    lines = [line for line in response.splitlines() if line.strip()]
    if lines:
        candidates.append(lines[-1])
    return 1.0 if any(normalize_text(c) == ref for c in candidates) else 0.0


def _to_float(token: str) -> float | None:
    token = token.replace(",", "").replace("−", "-").replace(" ", "")
    try:
        if "/" in token:
            num, den = token.split("/", 1)
            return float(Fraction(num) / Fraction(den)) if float(den) != 0 else None
        return float(token)
    except (ValueError, ZeroDivisionError):
        return None


def extract_number(text: str) -> float | None:
    """The answer number of `text`: first number after the last answer phrase, else the last number."""
    tails = _NUM_TAIL.findall(text or "")
    if tails:
        first = _NUMBER.search(tails[-1])
        if first:
            return _to_float(first.group(0))
    numbers = _NUMBER.findall(text or "")
    return _to_float(numbers[-1]) if numbers else None


def grade_numeric(response: str, reference: str, *, prompt: str = "", rel_tol: float = 1e-6) -> float:
    """1.0 when the reply's answer number equals the reference number within `rel_tol`."""
    ref = _to_float(reference.strip())
    if ref is None:
        ref = extract_number(reference)
    if ref is None:
        msg = f"numeric grader: reference {reference!r} is not a number"
        raise DataError(msg)
    got = extract_number(response)
    if got is None or math.isnan(got):
        return 0.0
    return 1.0 if math.isclose(got, ref, rel_tol=rel_tol, abs_tol=1e-9) else 0.0


Grader = Callable[..., float]
GRADERS: dict[str, Grader] = {"choice": grade_choice, "exact": grade_exact, "numeric": grade_numeric}


def parse_grader(spec: str) -> tuple[str, float | None]:
    """Split a grader spec ``"name"`` or ``"numeric:TOL"`` into name and argument.

    Raises:
        DataError: Unknown grader name or bad argument.
    """
    name, _, arg = str(spec).strip().partition(":")
    if name not in GRADERS:
        msg = f"unknown grader {spec!r}; use one of {sorted(GRADERS)} (numeric takes an optional ':TOL')"
        raise DataError(msg)
    if not arg:
        return name, None
    if name != "numeric":
        msg = f"grader {name!r} takes no argument, got {spec!r}"
        raise DataError(msg)
    try:
        tol = float(arg)
    except ValueError:
        tol = -1.0
    if not tol >= 0:
        msg = f"grader {spec!r}: the tolerance must be a number >= 0"
        raise DataError(msg)
    return name, tol


def grade(grader: str, response: str, reference: str, *, prompt: str = "") -> float:
    """Score `response` against `reference` with the grader named by `grader`.

    Raises:
        DataError: Unknown grader, or a reference the grader cannot use.
    """
    name, arg = parse_grader(grader)
    if name == "numeric" and arg is not None:
        return grade_numeric(response, reference, prompt=prompt, rel_tol=arg)
    return GRADERS[name](response or "", reference, prompt=prompt)


def graders_used(specs: Sequence[str]) -> dict[str, int]:
    """Count of items per grader name (for a profile's metadata)."""
    out: dict[str, int] = {}
    for spec in specs:
        name = parse_grader(spec)[0]
        out[name] = out.get(name, 0) + 1
    return out
