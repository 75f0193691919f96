"""Scores: per item, per item set, and the official SQuAD v2 numbers; never NaN.

Scale: every `Metric` value is on the 0-1 scale (accuracy, and span exact/F1 alike), so one threshold language fits
all families. `squad_v2` alone returns 0-100, because it reproduces the official SQuAD v2.0 script.

Counting: ``n`` is the number of items; ``n_scored`` the number whose score came from an actual answer (a response
with diagnosis ``ok``); ``extraction_rate = n_scored / n``. Accuracy, exact and F1 are means over all ``n`` items with
unanswered items counted as wrong (a missing box is never an "empty answer" that SQuAD v2 would reward), and they are
*undefined* (``value=None``) when ``n_scored == 0``: a 0 computed from no answers at all says nothing about the model.
``avg_abs_diff`` is a mean over the items where answer and gold are both numbers; there ``n_scored`` is that count.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from evalkit.baselines import (
    BaselineComparison,
    baseline_tolerance,
    beats_baseline,
    compare_with_baseline,
    matches_baseline,
    trivial_baseline,
)
from evalkit.extract import (
    Diagnosis,
    Extraction,
    choice_label,
    math_number,
    normalize_choice,
    normalize_math,
    normalize_yes_no,
    squad_normalize,
)
from evalkit.types import Family, Item, check_family

__all__ = [
    "BaselineComparison",
    "ItemScore",
    "Metric",
    "PRIMARY_METRIC",
    "aggregate",
    "baseline_comparisons",
    "baseline_tolerance",
    "beats_baseline",
    "diagnosis_counts",
    "math_equal",
    "matches_baseline",
    "score",
    "squad_exact",
    "squad_f1",
    "squad_v2",
    "trivial_baseline",
]

PRIMARY_METRIC: dict[Family, str] = {
    "math": "accuracy",
    "multiple_choice": "accuracy",
    "yes_no": "accuracy",
    "span": "f1",
}
"""The metric a gate compares first, per family."""


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


def _answer_subsets(rows: Sequence[_Row], answerable: Callable[[_Row], bool]) -> Iterator[tuple[str, list[_Row]]]:
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
    for prefix, subset in _answer_subsets(rows, lambda row: row[2]):
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

    Order: `evalkit.extract.normalize_math` on both (units, ``$``, ``\\%``, thousands separators, ``3.0`` -> ``3``);
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
        gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout)  # type: ignore[arg-type]
        pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=timeout)  # type: ignore[arg-type]
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

    >>> from evalkit.extract import extract
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


# --- aggregation ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """One aggregate number with what it rests on; ``value`` None means undefined (never NaN), and a gate fails it."""

    name: str
    value: float | None  # 0-1 for accuracy/exact/f1; None = undefined, see `reason`
    n: int  # items in the set
    n_scored: int  # items whose score came from an answer (avg_abs_diff: items with numbers on both sides)
    extraction_rate: float | None  # share of items with an extracted answer; None when n == 0
    reason: str = ""  # why the value is undefined

    def __post_init__(self) -> None:
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"Metric {self.name}: value must be finite or None (undefined), got {self.value!r}")
        if not 0 <= self.n_scored <= self.n:
            raise ValueError(f"Metric {self.name}: need 0 <= n_scored <= n, got n_scored={self.n_scored}, n={self.n}")

    @property
    def defined(self) -> bool:
        return self.value is not None


def diagnosis_counts(item_scores: Iterable[ItemScore]) -> dict[str, int]:
    """How many responses got each diagnosis, most frequent first.

    >>> diagnosis_counts([ItemScore("math", 0.0, False, False, Diagnosis.NO_BOX)] * 2)
    {'no_box': 2}
    """
    return dict(Counter(s.diagnosis.value for s in item_scores).most_common())


def aggregate(item_scores: Iterable[ItemScore], family: Family) -> dict[str, Metric]:
    """Metrics of one item set: ``accuracy`` (math, multiple choice, yes/no), ``avg_abs_diff`` (math), ``exact`` and
    ``f1`` (span, plus ``HasAns_*``/``NoAns_*`` for the subsets that have items). Never NaN.

    >>> no_box = ItemScore("math", 0.0, False, False, Diagnosis.NO_BOX)
    >>> m = aggregate([no_box] * 20, "math")
    >>> m["accuracy"].value, m["accuracy"].n, m["accuracy"].extraction_rate, m["accuracy"].reason
    (None, 20, 0.0, 'no answer extracted from any of the 20 responses (no_box: 20)')
    >>> m["avg_abs_diff"].value, m["avg_abs_diff"].n_scored
    (None, 0)
    """
    check_family(family)
    scores = list(item_scores)
    for s in scores:
        if s.family != family:
            raise ValueError(
                f"aggregate({family!r}) got an ItemScore of family {s.family!r}; aggregate one task at a time"
            )
    out = _means(scores, family)
    if family == "span":
        for prefix, subset in _answer_subsets(scores, lambda s: not s.unanswerable):
            out |= _means(subset, family, prefix)
    elif family == "math":
        out["avg_abs_diff"] = _avg_abs_diff(scores)
    return out


_MEANS: dict[Family, dict[str, Callable[[ItemScore], float]]] = {
    "span": {"exact": lambda s: s.exact, "f1": lambda s: s.score},
    "math": {"accuracy": lambda s: s.score},
    "multiple_choice": {"accuracy": lambda s: s.score},
    "yes_no": {"accuracy": lambda s: s.score},
}


def _means(scores: list[ItemScore], family: Family, prefix: str = "") -> dict[str, Metric]:
    """The family's mean metrics over `scores`, named with `prefix`; undefined when no answer was extracted."""
    n = len(scores)
    answered = sum(s.scored for s in scores)
    rate = answered / n if n else None
    reason = ""
    if n == 0:
        reason = "no items"
    elif answered == 0:
        counts = ", ".join(f"{d}: {c}" for d, c in diagnosis_counts(scores).items())
        reason = f"no answer extracted from any of the {n} responses ({counts})"
    out = {}
    for name, get in _MEANS[family].items():
        value = None if reason else min(1.0, math.fsum(get(s) for s in scores) / n)
        out[prefix + name] = Metric(prefix + name, value, n, answered, rate, reason)
    return out


def _avg_abs_diff(scores: list[ItemScore]) -> Metric:
    n = len(scores)
    diffs = [s.abs_diff for s in scores if s.abs_diff is not None]
    rate = sum(s.scored for s in scores) / n if n else None
    if not diffs:
        why = "no items" if n == 0 else f"no item has a numeric answer and a numeric gold (0 of {n})"
        return Metric("avg_abs_diff", None, n, 0, rate, why)
    k = len(diffs)
    # Dividing first: the mean of finite values stays finite, where their sum could overflow to inf.
    return Metric("avg_abs_diff", math.fsum(d / k for d in diffs), n, k, rate)


def baseline_comparisons(metrics: Mapping[str, Metric], baseline: Mapping[str, float]) -> dict[str, BaselineComparison]:
    """Each metric that has a trivial baseline, compared with it (see `evalkit.baselines`).

    >>> items = [Item("squad", str(i), "span", "q", () if i % 2 else ("Paris",)) for i in range(300)]
    >>> from evalkit.extract import extract
    >>> metrics = aggregate([score(it, extract("\\\\boxed{}", "span")) for it in items], "span")
    >>> baseline_comparisons(metrics, trivial_baseline(items))["f1"].message
    'f1 = 0.5 equals the trivial baseline 0.5 (what doing nothing scores), tolerance ±0.047 at n=300'
    """
    return {
        name: compare_with_baseline(name, metric.value, baseline[name], metric.n)
        for name, metric in metrics.items()
        if name in baseline
    }
