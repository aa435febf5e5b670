"""Table tests of the graders in routed_llm.grading (pure, offline)."""

from __future__ import annotations

import pytest

from routed_llm.errors import DataError
from routed_llm.grading import (
    extract_choice,
    extract_number,
    grade,
    grade_choice,
    grade_exact,
    grade_numeric,
    graders_used,
    normalize_text,
    option_letters,
    parse_grader,
)

MC_PROMPT = "Question:\nWhich one?\nOptions:\nA. one\nB. two\nC. three\nD. four\nAnswer: Let's think step by step."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("The answer is (C)", "C", id="mmlu-pro-format"),
        pytest.param("the answer is (c)... no wait, the answer is (D).", "D", id="last-answer-phrase-wins"),
        pytest.param("The answer is C.", "C", id="no-parentheses"),
        pytest.param("answer: C", "C", id="answer-colon"),
        pytest.param("Answer: **(B)**", "B", id="answer-bold-paren"),
        pytest.param("Final answer - E", "E", id="final-answer-dash"),
        pytest.param("So the answer would be J", "J", id="would-be"),
        pytest.param("The answer is C because it doubles.", "C", id="letter-then-lowercase-word"),
        pytest.param("Option A is wrong. The answer is (B). Option D is also wrong.", "B", id="answer-beats-option"),
        pytest.param("I'd say the correct option is G", "G", id="option-phrase"),
        pytest.param("Hmm **C** seems right", "C", id="bold"),
        pytest.param("**(H)**", "H", id="bold-paren"),
        pytest.param("C. three, since 1+2=3", "C", id="starts-with-letter-dot"),
        pytest.param("(B) two", "B", id="starts-with-paren"),
        pytest.param("D", "D", id="bare-letter"),
        pytest.param("  F)", "F", id="letter-paren"),
        pytest.param(r"Thus $\boxed{E}$ is the result. The answer is not obvious", "E", id="boxed-first"),
        pytest.param("Comparing the options, (C) matches best", "C", id="paren-anywhere"),
        pytest.param("It must be B then", "B", id="last-standalone"),
        pytest.param("I think it is B", "B", id="pronoun-I-ignored"),
        pytest.param("A bit tricky, but B", "B", id="article-A-ignored"),
        pytest.param("Answer: I think it's unclear", None, id="answer-I-think-is-not-I"),
        pytest.param("I don't know.", None, id="no-letter"),
        pytest.param("", None, id="empty"),
        pytest.param("The answer is (K)", None, id="letter-out-of-range"),
        pytest.param("APPLE BANANA", None, id="capital-words-not-letters"),
    ],
)
def test_extract_choice(text: str, expected: str | None) -> None:
    assert extract_choice(text) == expected


def test_extract_choice_respects_the_prompt_options() -> None:
    # H is not an option of a four-option question: the last valid letter is used instead
    assert extract_choice("B is close but H", option_letters(MC_PROMPT)) == "B"
    assert option_letters(MC_PROMPT) == "ABCD"
    assert option_letters("no options here") == "ABCDEFGHIJ"


@pytest.mark.parametrize(
    ("response", "reference", "score"),
    [
        ("The answer is (C)", "C", 1.0),
        ("The answer is (C)", "(C)", 1.0),
        ("The answer is (C)", "c", 1.0),
        ("The answer is (B)", "C", 0.0),
        ("no idea", "C", 0.0),
    ],
)
def test_grade_choice(response: str, reference: str, score: float) -> None:
    assert grade_choice(response, reference, prompt=MC_PROMPT) == score


def test_grade_choice_rejects_a_bad_reference() -> None:
    with pytest.raises(DataError, match="one letter"):
        grade_choice("The answer is (C)", "three")


@pytest.mark.parametrize(
    ("response", "reference", "score"),
    [
        ("Paris", "paris", 1.0),
        ("  The Paris. ", "Paris", 1.0),
        ("Let me think.\nThe capital is in France.\nParis", "Paris", 1.0),
        ("The answer is: Paris!", "Paris", 1.0),
        ("Paris, France", "Paris", 0.0),
        ("London", "Paris", 0.0),
        ("", "Paris", 0.0),
    ],
)
def test_grade_exact(response: str, reference: str, score: float) -> None:
    assert grade_exact(response, reference) == score


def test_normalize_text() -> None:
    assert normalize_text("  The  Quick, brown fox! ") == "quick brown fox"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("The answer is 42.", 42.0),
        ("2 apples and 3 pears make 5", 5.0),
        ("#### 1,234", 1234.0),
        ("answer: -3.5 (approximately 4 units)", -3.5),
        (r"so $\boxed{3/4}$", 0.75),
        ("about 1.5e3 joules", 1500.0),
        ("−7 degrees", -7.0),
        ("no digits", None),
    ],
)
def test_extract_number(text: str, number: float | None) -> None:
    assert extract_number(text) == number


@pytest.mark.parametrize(
    ("response", "reference", "tol", "score"),
    [
        ("The answer is 42", "42", 1e-6, 1.0),
        ("The answer is 42.0000001", "42", 1e-6, 1.0),
        ("The answer is 43", "42", 1e-6, 0.0),
        ("The answer is 43", "42", 0.05, 1.0),
        ("I get 1,000 in total", "1000", 1e-6, 1.0),
        ("nothing", "1", 1e-6, 0.0),
    ],
)
def test_grade_numeric(response: str, reference: str, tol: float, score: float) -> None:
    assert grade_numeric(response, reference, rel_tol=tol) == score


def test_grade_numeric_rejects_a_non_numeric_reference() -> None:
    with pytest.raises(DataError, match="not a number"):
        grade_numeric("1", "many")


def test_grade_dispatches_and_parses_specs() -> None:
    assert grade("choice", "The answer is (A)", "A", prompt=MC_PROMPT) == 1.0
    assert grade("exact", "Paris", "paris") == 1.0
    assert grade("numeric", "The answer is 43", "42") == 0.0
    assert grade("numeric:0.1", "The answer is 43", "42") == 1.0
    assert parse_grader("numeric:0.01") == ("numeric", 0.01)
    assert parse_grader("choice") == ("choice", None)
    assert graders_used(["choice", "choice", "numeric:0.1"]) == {"choice": 2, "numeric": 1}


@pytest.mark.parametrize("spec", ["regex", "choice:1", "numeric:-1", "numeric:x", ""])
def test_bad_grader_specs_are_clear_errors(spec: str) -> None:
    with pytest.raises(DataError, match="grader"):
        parse_grader(spec)


@pytest.mark.parametrize(
    "grader",
    ["choice", "exact", "numeric"],
)
def test_scores_are_in_unit_interval(grader: str) -> None:
    ref = {"choice": "B", "exact": "x", "numeric": "2"}[grader]
    for text in ["", "B", "x", "2", "The answer is (B) 2 x", "**B**"]:
        assert 0.0 <= grade(grader, text, ref) <= 1.0
