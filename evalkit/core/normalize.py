"""Per-family answer normalization and the gold parsers of the real datasets (called by `evalkit.data.tasks`).

`normalize(family, text)` is the canonical form a response's box is compared in: an option letter, yes/no, a
SQuAD-normalized span or a canonical math string; None when the text is no valid answer for the family.
"""

from __future__ import annotations

import re
import string
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from evalkit.core.boxes import boxed, check_text
from evalkit.core.types import CHOICE_LABELS, Family, check_family

__all__ = ["choice_label", "gsm8k_final_answer", "math_number", "math_solution_answer", "normalize",
           "normalize_choice", "normalize_math", "normalize_span", "normalize_yes_no", "squad_gold_answers",
           "squad_normalize", "yes_no_label"]


_TEXT_COMMANDS = re.compile(
    r"\\(?:text|textbf|textit|textrm|texttt|textsf|mathrm|mathbf|mathit|mathsf|mathtt|mbox|emph|bf|operatorname)"
    r"\s*\{([^{}]*)\}"
)


def _unwrap_text(s: str) -> str:
    """``\\text{B}`` -> ``B`` (and bold, roman, ... variants), innermost first."""
    for _ in range(8):
        new = _TEXT_COMMANDS.sub(r"\1", s)
        if new == s:
            break
        s = new
    return s


_CHOICE_PREFIX = re.compile(r"^(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|option|choice)\s*(?:is\b|:)?\s*", re.I)
_CHOICE_ALONE = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\]]?\s*[.:]?")
_CHOICE_WITH_TEXT = re.compile(r"(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Za-z])[.):])\s+\S.*", re.S)


def normalize_choice(text: str, labels: str = CHOICE_LABELS) -> str | None:
    """The option letter of a multiple-choice answer, upper case; None when it is not one of `labels`.

    Digits are not letters here: prompts always show letters, and datasets labelled 1-4 are mapped by `choice_label`.

    >>> [normalize_choice(s) for s in ["B", "(b)", "C.", "\\\\text{D}", "Option (A)", "E) the fifth one", "A or B"]]
    ['B', 'B', 'C', 'D', 'A', 'E', None]
    """
    check_text(text, "text")
    s = _unwrap_text(text).replace("$", "").strip().strip("*_` ")
    s = _CHOICE_PREFIX.sub("", s).strip()
    m = _CHOICE_ALONE.fullmatch(s) or _CHOICE_WITH_TEXT.fullmatch(s)
    if m is None:
        return None
    letter = next(g for g in m.groups() if g).upper()
    return letter if letter in labels else None


_YES_NO = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
_YES_NO_PATTERN = re.compile(r"[\W_]*(yes|no|true|false)(?:[\W_]*|[,.;:!]\s*\S.*)", re.I | re.S)


def normalize_yes_no(text: str) -> str | None:
    """``"yes"`` or ``"no"`` for yes/no/true/false in any case and punctuation; None otherwise.

    >>> [normalize_yes_no(s) for s in ["Yes.", "**NO**", "\\\\text{True}", "false!", "Yes, because.", "no answer"]]
    ['yes', 'no', 'yes', 'no', 'yes', None]
    """
    check_text(text, "text")
    m = _YES_NO_PATTERN.fullmatch(_unwrap_text(text).strip())
    return _YES_NO[m.group(1).lower()] if m else None


_PUNCTUATION = frozenset(string.punctuation)  # as the official script: ASCII punctuation only
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def squad_normalize(text: str) -> str:
    """The official SQuAD (v1.1 and v2.0) answer normalization: lower case, drop punctuation, articles, extra spaces.

    >>> squad_normalize("The  Normans, of France!")
    'normans of france'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_span(text: str) -> str:
    """The SQuAD-normalized span (after unwrapping ``\\text{}``); ``""`` is an answer: "no answer in the passage".

    Scoring with the official script gives the same exact/F1 for the span and its normalization.

    >>> normalize_span("\\\\text{The Normans}"), normalize_span("")
    ('normans', '')
    """
    check_text(text, "text")
    return squad_normalize(_unwrap_text(text))


_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_UNIT_TEXT = re.compile(r"(\d|\})\s*\\(?:text|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .]*\}(?:\s*\^\s*\{?\d\}?)?\s*$")
_UNIT_WORDS = re.compile(r"(-?[\d.,]*\d)\s+[A-Za-z]{2}[A-Za-z .]*(?:\^\s*\{?\d\}?)?")  # {2}, not {2,}: no backtracking
_ASSIGNMENT = re.compile(r"[A-Za-z]\s*=\s*([^=]+)")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_SPACING = re.compile(r"(\\\\)|\\[,;:! ]|~")  # group 1: a LaTeX line break, kept
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![A-Za-z])")


def normalize_math(text: str) -> str | None:
    """A canonical math answer string; None when empty.

    Strips ``$``, ``\\$``, ``\\%``, degrees, units (``5 \\text{ cm}``, ``18 dollars``), ``\\left``/``\\right``,
    spacing commands, thousands separators (``1,000``, ``1{,}000``, ``10,\\!080``), a leading ``x =``; maps
    ``\\dfrac`` to ``\\frac``; keeps the sign; writes plain numbers canonically (``3.0`` -> ``3``, ``.5`` -> ``0.5``).
    Equivalence beyond this (``\\frac{1}{2}`` vs ``0.5``) is `evalkit.core.scoring.math_equal`'s job.

    >>> [normalize_math(s) for s in ["$1{,}000$", "\\\\$18.00", "5 \\\\text{ cm}", "50\\\\%", "x = 3.0"]]
    ['1000', '18', '5', '50', '3']
    >>> normalize_math("-\\\\dfrac{1}{2}")
    '-\\\\frac{1}{2}'
    """
    check_text(text, "text")
    s = text.replace("\u2212", "-").replace("\\$", "").replace("$", "")
    s = _LEFT_RIGHT.sub("", s)
    s = _SPACING.sub(lambda m: m.group(1) or "", s).replace("{,}", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _DEGREES.sub("", s).replace("\\%", "").replace("%", "")
    s = _UNIT_TEXT.sub(r"\1", s)
    s = _unwrap_text(s)
    s = " ".join(s.split())
    if m := _UNIT_WORDS.fullmatch(s):
        s = m.group(1)
    if m := _ASSIGNMENT.fullmatch(s):
        s = m.group(1)
    s = re.sub(r" (?![A-Za-z])|(?<![A-Za-z]) ", "", s)  # spaces matter only between letters (\pi r)
    s = re.sub(r"[.,;:]+$", "", s)
    if s.startswith("+") and len(s) > 1:
        s = s[1:]
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    if _NUMBER.fullmatch(s):
        s = _canonical_decimal(s)
    return s or None


def _canonical_decimal(s: str) -> str:
    """``3.0`` -> ``3``, ``.5`` -> ``0.5``, ``-0`` -> ``0``; `s` matches `_NUMBER`, which Decimal always reads."""
    d = Decimal(s)
    return format(d.normalize(), "f") if d != 0 else "0"


_DECIMAL = r"-?\d+(?:\.\d+)?"
_FRACTION = re.compile(rf"(-?)\\frac(?:\{{({_DECIMAL})\}}|(\d))(?:\{{({_DECIMAL})\}}|(\d))")  # \frac{3}{4}, \frac34
_SLASH = re.compile(r"(-?\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)")
_MAX_NUMBER_CHARS = 400  # longer digit strings are not numbers a model answers with; keeps Fraction arithmetic cheap


def math_number(text: str) -> Fraction | None:
    """The exact value of a math answer that is a plain number or a simple fraction; None otherwise.

    >>> math_number("1,600"), math_number("-\\\\frac{3}{4}"), math_number("0.5"), math_number("\\\\sqrt{2}")
    (Fraction(1600, 1), Fraction(-3, 4), Fraction(1, 2), None)
    """
    s = normalize_math(text)
    if s is None or len(s) > _MAX_NUMBER_CHARS:
        return None
    try:
        if _NUMBER.fullmatch(s):
            return Fraction(Decimal(s))
        if m := _FRACTION.fullmatch(s):
            sign, num_braced, num_digit, den_braced, den_digit = m.groups()
            value = Fraction(Decimal(num_braced or num_digit)) / Fraction(Decimal(den_braced or den_digit))
            return -value if sign else value
        if m := _SLASH.fullmatch(s):
            return Fraction(Decimal(m.group(1))) / Fraction(Decimal(m.group(2)))
    except (ZeroDivisionError, InvalidOperation, ValueError):
        return None
    return None


def normalize(family: Family, text: str) -> str | None:
    """The canonical answer for `family`, or None when `text` is not a valid answer for it.

    ``""`` is a valid span answer (abstaining) and invalid for every other family.

    >>> normalize("multiple_choice", "(c)"), normalize("yes_no", "TRUE."), normalize("math", "1,000")
    ('C', 'yes', '1000')
    >>> normalize("span", ""), normalize("math", "")
    ('', None)
    """
    check_family(family)
    if family == "multiple_choice":
        return normalize_choice(text)
    if family == "yes_no":
        return normalize_yes_no(text)
    if family == "span":
        return normalize_span(text)
    return normalize_math(text)


# --- gold parsers for the real datasets (called by evalkit.data.tasks) --------------------------------------------------


def gsm8k_final_answer(answer_field: str) -> str | None:
    """The canonical final answer of a GSM8K ``answer`` field (after its last ``####``); None when there is none.

    >>> gsm8k_final_answer("She makes 9 * 2 = $<<9*2=18>>18.\\n#### 1,600")
    '1600'
    """
    check_text(answer_field, "answer_field")
    head, sep, tail = answer_field.rpartition("####")
    return normalize_math(tail) if sep else None


def math_solution_answer(solution: str) -> str | None:
    """The canonical answer of a MATH ``solution``: its last ``\\boxed{}``; None when it has none.

    >>> math_solution_answer("so the point is $\\\\boxed{\\\\left( 3, \\\\frac{\\\\pi}{2} \\\\right)}.$")
    '(3,\\\\frac{\\\\pi}{2})'
    """
    box = boxed(solution)
    return None if box is None else normalize_math(box)


def choice_label(label: Any) -> str | None:
    """A dataset's option label as a letter: ``"1"``-``"8"`` map to ``"A"``-``"H"`` (ARC's NYSEDREGENTS rows).

    >>> choice_label("3"), choice_label("b"), choice_label(2), choice_label("Z")
    ('C', 'B', 'B', None)
    """
    s = str(label).strip()
    if len(s) == 1 and s in "12345678"[: len(CHOICE_LABELS)]:  # not str.isdigit(): "²" is a digit to it
        return CHOICE_LABELS[int(s) - 1]
    return s.upper() if len(s) == 1 and s.upper() in CHOICE_LABELS else None


def yes_no_label(value: Any) -> str | None:
    """``"yes"``/``"no"`` for a dataset's boolean label (BoolQ ``answer``; SuperGLUE ``"true"``/``"false"``).

    >>> yes_no_label(True), yes_no_label("false"), yes_no_label(None)
    ('yes', 'no', None)
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    return normalize_yes_no(value) if isinstance(value, str) else None


def squad_gold_answers(answers: Any) -> tuple[str, ...] | None:
    """The gold texts of a SQuAD v2 row's ``answers`` (HF columns or a list of dicts/strings); () = unanswerable.

    Duplicates are kept, as upstream (the official script takes the max over them). None for an unknown layout.

    >>> squad_gold_answers({"text": ["France", "France"], "answer_start": [159, 159]}), squad_gold_answers({"text": []})
    (('France', 'France'), ())
    """
    if isinstance(answers, dict):
        answers = answers.get("text")
    if not isinstance(answers, (list, tuple)):
        return None
    texts = [a.get("text") if isinstance(a, dict) else a for a in answers]
    strings = [t for t in texts if isinstance(t, str)]
    return tuple(strings) if len(strings) == len(texts) else None
