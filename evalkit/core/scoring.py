"""Per-item scores: SQuAD v2's exact and F1 as the official script computes them, math equivalence (exact numbers,
then Math-Verify), and `score`, which turns one extraction into an `ItemScore`. Aggregation is `evalkit.core.metrics`.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TypeVar

from evalkit.core.extract import Diagnosis, Extraction
from evalkit.core.normalize import choice_label, math_number, normalize_choice, normalize_math, normalize_yes_no, squad_normalize
from evalkit.core.types import Family, Item

__all__ = ["ItemScore", "answer_subsets", "math_equal", "score", "squad_exact", "squad_f1", "squad_v2"]


# --- SQuAD v2.0, as the official evaluation script defines it ------------------------------------------------------


def squad_exact(gold: str, pred: str) -> int:
    """1 when the normalized strings are equal (official ``compute_exact``).

    >>> squad_exact("the Normans", "Normans."), squad_exact("", "the")
    (1, 1)
    """
    return int(squad_normalize(gold) == squad_normalize(pred))


def squad_f1(gold: str, pred: str) -> float:
    """Token-overlap F1 of normalized strings (official ``compute_f1``); no-answer on either side: 1 if both agree.

    >>> squad_f1("Rollo of Normandy", "Rollo"), squad_f1("", ""), squad_f1("France", "")
    (0.5, 1.0, 0.0)
    """
    return _token_f1(squad_normalize(gold).split(), squad_normalize(pred).split())


def _token_f1(gold_tokens: list[str], pred_tokens: list[str]) -> float:
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _squad_item(golds: Sequence[str], pred: str) -> tuple[int, float]:
    """(exact, f1) of one prediction: max over golds; golds normalizing to "" are dropped, none left means [""].

    `squad_exact` and `squad_f1` per gold, with every string normalized once: this runs on every span response.
    """
    normalized_golds = [g for g in map(squad_normalize, golds) if g] or [""]
    p = squad_normalize(pred)
    p_tokens = p.split()
    exact = max(int(g == p) for g in normalized_golds)
    return exact, max(_token_f1(g.split(), p_tokens) for g in normalized_golds)


_Row = TypeVar("_Row")


def answer_subsets(rows: Sequence[_Row], answerable: Callable[[_Row], bool]) -> Iterator[tuple[str, list[_Row]]]:
    """The official script's ``HasAns_``/``NoAns_`` subsets of `rows`; an empty subset is absent, never 0."""
    for prefix, want in (("HasAns_", True), ("NoAns_", False)):
        subset = [row for row in rows if answerable(row) == want]
        if subset:
            yield prefix, subset


def squad_v2(predictions: list[str], references: list[list[str]]) -> dict[str, float | int]:
    """The official SQuAD v2.0 numbers (0-100 scale): exact, f1, total, and per HasAns/NoAns subset.

    An empty reference list marks an unanswerable question, whose only right answer is ``""``. A subset with no
    questions is absent from the dict (never 0); with no predictions at all only ``total`` (0) is there.

    >>> squad_v2(["", "", "Paris"], [[], [], ["Paris", "the city of Paris"]])["f1"]
    100.0
    >>> result = squad_v2(["", ""], [[], ["Paris"]])
    >>> result["f1"], result["HasAns_f1"], result["NoAns_f1"], result["NoAns_total"]
    (50.0, 0.0, 100.0, 1)
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"squad_v2: {len(predictions)} predictions for {len(references)} reference lists; "
            "pass one of each per question"
        )
    for i, pred in enumerate(predictions):
        if not isinstance(pred, str):
            raise TypeError(f"squad_v2: prediction {i} is {type(pred).__name__}, not str; use '' for 'no answer'")
    # (exact, f1, has an answer) per question
    rows = [(*_squad_item(golds, pred), bool(golds)) for pred, golds in zip(predictions, references)]

    def block(subset: list[tuple[int, float, bool]], prefix: str = "") -> dict[str, float | int]:
        total = len(subset)
        return {
            f"{prefix}exact": 100.0 * sum(exact for exact, _, _ in subset) / total,
            f"{prefix}f1": 100.0 * math.fsum(f1 for _, f1, _ in subset) / total,
            f"{prefix}total": total,
        }

    if not rows:
        return {"total": 0}
    out = block(rows)
    for prefix, subset in answer_subsets(rows, lambda row: row[2]):
        out |= block(subset, prefix)
    return out


# --- math equivalence -----------------------------------------------------------------------------------------------

_MATH_VERIFY_TIMEOUT_S = 2  # Math-Verify's own signal-based timeout, per parse/compare (main thread only)
_MATH_VERIFY_MAX_CHARS = 300  # longer answers go to the string comparison only
# Inputs that can make sympy run for minutes: power towers, huge exponents, huge factorials.
_HEAVY = re.compile(r"\^\s*\{[^{}]*\^|\^\s*[\w.]+\s*\^|\^\s*\{?\s*-?\d{4,}|\d{3,}\s*!|\\binom\s*\{\s*\d{4,}")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")


def math_equal(pred: str, gold: str) -> bool:
    """Whether a math answer equals the gold, tolerant the way a grader is and strict where it must be.

    Order: `evalkit.core.normalize.normalize_math` on both (units, ``$``, ``\\%``, thousands separators, ``3.0`` -> ``3``);
    exact rational comparison when both are numbers; text answers (a word of 3+ letters outside LaTeX commands, such
    as ``\\text{east}``) compared as case-folded text, because sympy reads ``east`` as the product e*a*s*t = ``seat``;
    everything else by Math-Verify. Never raises for strings: Math-Verify's failures count as "not equal", it runs
    with its timeout on the main thread and without one elsewhere (signals only work there), and inputs that can
    stall sympy (power towers, huge exponents or factorials, > 300 characters) skip it. ``""`` equals nothing.

    >>> math_equal("1,000", "1000"), math_equal("\\\\frac{1}{2}", "0.5"), math_equal("5 \\\\text{ cm}", "5")
    (True, True, True)
    >>> math_equal("3.14", "3.14159"), math_equal("-5", "5"), math_equal("\\\\text{seat}", "\\\\text{east}")
    (False, False, False)
    """
    if not isinstance(pred, str) or not isinstance(gold, str):
        raise TypeError(f"math_equal compares strings, got {type(pred).__name__} and {type(gold).__name__}")
    return _math_equal(pred, gold)


@lru_cache(maxsize=16384)
def _math_equal(pred: str, gold: str) -> bool:
    p, g = normalize_math(pred), normalize_math(gold)
    if p is None or g is None:
        return False
    if p == g:
        return True
    p_num, g_num = math_number(p), math_number(g)
    if p_num is not None and g_num is not None and p_num == g_num:
        return True
    if _is_text(p) or _is_text(g):
        return _text_key(p) == _text_key(g)
    return _math_verify_equal(p, g)


def _is_text(s: str) -> bool:
    return _WORD.search(_LATEX_COMMAND.sub(" ", s)) is not None


def _text_key(s: str) -> str:
    return "".join(ch for ch in _LATEX_COMMAND.sub("", s).casefold() if ch.isalnum())


def _math_verify_equal(pred: str, gold: str) -> bool:
    if max(len(pred), len(gold)) > _MATH_VERIFY_MAX_CHARS or _HEAVY.search(pred) or _HEAVY.search(gold):
        return False
    from math_verify import parse, verify  # lazy: sympy and the LaTeX grammar take ~0.5 s to import
    from math_verify.errors import TimeoutException

    timeout = _MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    try:
        gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout)
        pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=timeout)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
    except (Exception, TimeoutException):
        return False


def _abs_diff(pred: str, golds: Iterable[str]) -> float | None:
    """|pred - gold| for the closest numeric gold, when pred is a number too; None when not finite."""
    p = math_number(pred)
    if p is None:
        return None
    diffs: list[Fraction] = [abs(p - g) for g in (math_number(x) for x in golds) if g is not None]
    if not diffs:
        return None
    try:
        value = float(min(diffs))
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


# --- per-item scores ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemScore:
    """The score of one response to one item."""

    family: Family
    score: float  # primary, in [0, 1]: correctness for math / multiple choice / yes-no, token F1 for span
    correct: bool  # right answer (span: exact match)
    scored: bool  # an answer was extracted (diagnosis ok); an unscored item counts as wrong
    diagnosis: Diagnosis
    f1: float | None = None  # span only, in [0, 1]; equals score
    abs_diff: float | None = None  # math only: |answer - gold| when both are numbers
    unanswerable: bool = False  # span only: the gold is "no answer in the passage"

    def __post_init__(self) -> None:
        for name in ("score", "f1"):
            value = getattr(self, name)
            if value is not None and not (0.0 <= value <= 1.0):  # also rejects NaN
                raise ValueError(f"ItemScore.{name} must be in [0, 1], got {value!r}")
        if self.abs_diff is not None and not (0.0 <= self.abs_diff < math.inf):
            raise ValueError(f"ItemScore.abs_diff must be a finite non-negative number or None, got {self.abs_diff!r}")
        if not self.scored and (self.score != 0.0 or self.correct):
            raise ValueError("an unscored ItemScore (no answer extracted) must have score 0 and correct False")

    @property
    def exact(self) -> float:
        """1.0 for a right answer, else 0.0 (SQuAD's exact match for span)."""
        return 1.0 if self.correct else 0.0


def score(item: Item, extraction: Extraction) -> ItemScore:
    """Score one extraction against an item's gold answers; no answer scores 0 and ``scored=False``.

    >>> from evalkit.core.extract import extract
    >>> item = Item("gsm8k", "0", "math", "How much?", ("1600",))
    >>> s = score(item, extract("so \\\\boxed{\\\\$1,590}", "math"))
    >>> s.correct, s.abs_diff, s.scored
    (False, 10.0, True)
    >>> score(item, extract("I don't know", "math")).diagnosis
    <Diagnosis.NO_BOX: 'no_box'>
    """
    family, answer = item.family, extraction.answer
    unanswerable = item.unanswerable
    if answer is None:
        f1 = 0.0 if family == "span" else None
        return ItemScore(family, 0.0, False, False, extraction.diagnosis, f1=f1, unanswerable=unanswerable)
    if family == "span":
        exact, f1 = _squad_item(item.answers, answer)
        return ItemScore(family, f1, bool(exact), True, extraction.diagnosis, f1=f1, unanswerable=unanswerable)
    if family == "math":
        correct = any(math_equal(answer, gold) for gold in item.answers)
        return ItemScore(
            family, float(correct), correct, True, extraction.diagnosis, abs_diff=_abs_diff(answer, item.answers)
        )
    if family == "multiple_choice":
        golds = {normalize_choice(a) or choice_label(a) for a in item.answers}
    else:
        golds = {normalize_yes_no(a) for a in item.answers}
    correct = answer in golds
    return ItemScore(family, float(correct), correct, True, extraction.diagnosis)
