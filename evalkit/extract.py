"""Answer extraction: the final ``\\boxed{}`` of a response, its canonical form per family, and a diagnosis.

Every response the engine scores goes through `extract` once; `diagnose` is the single source of a response's
diagnosis, so a report never says "F1 = 0" without also saying why (no box, truncated, a loop, ...).

Think blocks: a closed ``<think>...</think>`` block is skipped, and text inside an unclosed ``<think>`` never yields an
answer (reasoning is not an answer). A ``</think>`` without an opening tag closes a think block that the chat template
opened in the prompt, so everything before it counts as thinking too.

Diagnosis precedence (the first that applies wins):

1. ``empty``: the response is ``""``.
2. ``whitespace_only``: nothing but whitespace.
3. ``special_tokens_only``: nothing but special tokens, ``<think>``/``</think>`` tags and whitespace.
4. ``ok`` / ``invalid_answer``: a complete box was found outside think blocks: ``ok`` when its content is a valid
   answer for the family (or no family was given), else ``invalid_answer``. An answer wins over everything below:
   a response that boxed its answer and then ran on until ``max_new_tokens`` (or into a loop) still answered.
5. ``repetition_loop``: no answer, and the response ends in one unit repeated (see `is_repetition_loop`); a loop is
   the cause of the truncation that usually comes with it, so it is named first.
6. ``truncated``: no answer and ``finish_reason == "length"``.
7. ``unclosed_think``: no answer and a ``<think>`` block was never closed (the model stopped while "thinking").
8. ``malformed_box``: a ``\\boxed`` is there but its braces never balance.
9. ``no_box``: text, but no box.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache
from typing import Any, Sequence

from evalkit.types import CHOICE_LABELS, Family, check_family

__all__ = [
    "Diagnosis",
    "Extraction",
    "boxed",
    "choice_label",
    "clean_text",
    "diagnose",
    "extract",
    "gsm8k_final_answer",
    "is_repetition_loop",
    "math_number",
    "math_solution_answer",
    "normalize",
    "normalize_choice",
    "normalize_math",
    "normalize_span",
    "normalize_yes_no",
    "squad_gold_answers",
    "squad_normalize",
    "yes_no_label",
]


class Diagnosis(StrEnum):
    """What a response amounts to; ``OK`` is the only one that yields an answer.

    A `StrEnum`, so ``Diagnosis.NO_BOX == "no_box"`` and it serializes to JSON as its value.

    >>> Diagnosis.NO_BOX.value, Diagnosis("truncated") is Diagnosis.TRUNCATED
    ('no_box', True)
    >>> Diagnosis.NO_BOX.explain
    'the response has text but no \\\\boxed{} answer outside its think block: the model ignored the answer format'
    """

    OK = "ok"
    EMPTY = "empty"
    WHITESPACE_ONLY = "whitespace_only"
    NO_BOX = "no_box"
    MALFORMED_BOX = "malformed_box"
    UNCLOSED_THINK = "unclosed_think"
    TRUNCATED = "truncated"
    REPETITION_LOOP = "repetition_loop"
    SPECIAL_TOKENS_ONLY = "special_tokens_only"
    INVALID_ANSWER = "invalid_answer"

    @property
    def explain(self) -> str:
        """One line for a human, quoted by failure messages."""
        return _EXPLANATIONS[self]


_EXPLANATIONS = {
    Diagnosis.OK: "a complete \\boxed{} answer was found",
    Diagnosis.EMPTY: "the response is empty: the model produced no text at all",
    Diagnosis.WHITESPACE_ONLY: "the response contains only whitespace",
    Diagnosis.NO_BOX: (
        "the response has text but no \\boxed{} answer outside its think block: the model ignored the answer format"
    ),
    Diagnosis.MALFORMED_BOX: "a \\boxed is there but its braces never balance, so no answer can be read",
    Diagnosis.UNCLOSED_THINK: (
        "the response opened <think> and never closed it; text inside a think block is never taken as the answer"
    ),
    Diagnosis.TRUNCATED: (
        "generation hit max_new_tokens before a complete \\boxed{} answer; raise the limit or shorten the reasoning"
    ),
    Diagnosis.REPETITION_LOOP: "the response ends in the same text repeated over and over, with no answer",
    Diagnosis.SPECIAL_TOKENS_ONLY: (
        "the response is only special tokens (e.g. <|im_end|>, <|endoftext|>, think tags) and whitespace"
    ),
    Diagnosis.INVALID_ANSWER: (
        "a \\boxed{} answer is there but is not a valid answer for this task (e.g. \\boxed{banana} for multiple choice)"
    ),
}


@dataclass(frozen=True, slots=True)
class Extraction:
    """The result of reading one response: what was boxed, its canonical form, and why (not)."""

    raw_box: str | None  # content of the last complete box outside think blocks, verbatim; None when there is none
    answer: str | None  # canonical answer for the family (see `normalize`); None unless diagnosis is OK
    diagnosis: Diagnosis


# --- special tokens and think blocks -------------------------------------------------------------------------------

# Chat-format markers (<|im_end|>, <|endoftext|>, <|eot_id|>, ...) are special tokens in every family we serve; the
# few bare ones below are the classic sentencepiece/BERT specials. Callers add their tokenizer's own list.
_GENERIC_SPECIAL = re.compile(r"<\|[^<>|\s]{1,64}\|>")
_DEFAULT_SPECIAL_TOKENS = ("</s>", "<s>", "<pad>", "<unk>", "<eos>", "<bos>", "[PAD]", "[CLS]", "[SEP]")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def clean_text(raw_text: str, special_tokens: Sequence[str] = ()) -> str:
    """The response without special tokens: the given ones, every ``<|...|>`` marker and a few classic ones.

    Think tags are kept: they carry meaning (see `boxed`).

    >>> clean_text("The answer is \\\\boxed{4}<|im_end|><|endoftext|>")
    'The answer is \\\\boxed{4}'
    >>> clean_text("x<eot>", special_tokens=["<eot>"])
    'x'
    """
    _check_str(raw_text, "raw_text")
    tokens = _removal_order(tuple(special_tokens))
    text, previous = raw_text, None
    for _ in range(16):  # removing one token can join the halves of another: "<|<|im_end|>im_end|>"
        if text == previous:
            break
        previous = text
        for token in tokens:
            text = text.replace(token, "")
        text = _GENERIC_SPECIAL.sub("", text)
    return text


@lru_cache(maxsize=32)
def _removal_order(special_tokens: tuple[str, ...]) -> tuple[str, ...]:
    """The tokens `clean_text` removes, longest first ("<|im_end|>" before a "<|im" prefix); cached because the engine
    passes the same tokenizer's list for every response."""
    removable = {*special_tokens, *_DEFAULT_SPECIAL_TOKENS} - {"", _THINK_OPEN, _THINK_CLOSE}
    return tuple(sorted(removable, key=len, reverse=True))


def _answer_region(text: str) -> tuple[str, bool]:
    """The part of `text` outside think blocks where an answer may be, and whether a think block was left open."""
    close = text.rfind(_THINK_CLOSE)
    if close >= 0:
        text = text[close + len(_THINK_CLOSE) :]
    open_ = text.find(_THINK_OPEN)
    if open_ >= 0:
        return text[:open_], True
    return text, False


# --- \boxed{} -------------------------------------------------------------------------------------------------------

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.S)
_BARE_TOKEN_MAX_STEPS = 100  # a bare \boxed argument is one token; longer runs are not an answer (and stay linear)


def _brace_matches(text: str) -> dict[int, int]:
    """For each ``{`` of `text` that closes, the index just past its ``}``: one pass, so box scanning stays linear.

    A backslash escapes the next character, so ``\\{`` and ``\\}`` are literal braces and ``\\\\`` is a line break.
    """
    matches: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_OR_ESCAPE.finditer(text):
        ch = m.group()
        if ch == "{":
            stack.append(m.start())
        elif ch == "}" and stack:
            matches[stack.pop()] = m.end()
    return matches


def _bare_token(text: str, start: int, matches: dict[int, int]) -> int | None:
    """End of the bare argument of ``\\boxed 5``: up to whitespace, ``$`` or ``}``; brace groups inside must close."""
    i, n = start, len(text)
    for _ in range(_BARE_TOKEN_MAX_STEPS):
        if i >= n:
            break
        ch = text[i]
        if ch.isspace() or ch in "$}":
            break
        if ch == "{":
            if i not in matches:
                return None
            i = matches[i]
        else:
            i += 2 if ch == "\\" else 1
    else:
        return None
    i = min(i, n)
    return i if i > start else None


def _scan_boxes(text: str) -> tuple[str | None, bool]:
    """Content of the last complete box in `text`, and whether some box command was left incomplete.

    Scanning resumes after each complete box, so a box nested inside another is part of the outer content.
    """
    last: str | None = None
    incomplete = False
    matches: dict[int, int] | None = None
    pos, n = 0, len(text)
    while (m := _BOX_COMMAND.search(text, pos)) is not None:
        if matches is None:
            matches = _brace_matches(text)
        i = m.end()
        while i < n and text[i].isspace():
            i += 1
        braced = i < n and text[i] == "{"
        if braced:
            end = matches.get(i)
        elif i < n:  # the command regex guarantees a non-letter here unless whitespace was skipped
            end = _bare_token(text, i, matches)
        else:
            end = None
        if end is None:
            incomplete = True
            pos = m.end()
        else:
            last = text[i + 1 : end - 1] if braced else text[i:end]
            pos = end
    return last, incomplete


def boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` or ``\\fbox{...}`` outside think blocks, braces matched.

    ``\\boxed{}`` gives ``""`` (an explicit empty answer: abstaining); no box or only unbalanced ones give None.
    Without braces, ``\\boxed 5`` takes the next token.

    >>> boxed("so \\\\boxed{\\\\frac{1}{2}} and then \\\\boxed {x^{2}}")
    'x^{2}'
    >>> boxed("\\\\boxed{}"), boxed("no box"), boxed("\\\\boxed{3"), boxed("$\\\\boxed 5$")
    ('', None, None, '5')
    >>> boxed("<think>maybe \\\\boxed{1}</think> so \\\\boxed{2}"), boxed("<think>maybe \\\\boxed{1}")
    ('2', None)
    """
    _check_str(text, "text")
    region, _ = _answer_region(text)
    return _scan_boxes(region)[0]


# --- repetition loops -----------------------------------------------------------------------------------------------

_LOOP_MIN_REPEATS = 4  # the repeated unit appears at least this many times in a row ...
_LOOP_MIN_CHARS = 64  # ... over at least this many characters
_LOOP_MAX_PERIOD = 1024  # longest repeated unit considered, in characters


def is_repetition_loop(text: str) -> bool:
    """Whether `text` ends in one unit repeated: a suffix of at least 64 characters and 4 repeats that is periodic.

    The test is on characters, so it catches token loops of any tokenizer; a trailing newline after the loop is
    ignored. Each period is one C-level comparison of the suffix with itself shifted, so this stays fast.

    >>> is_repetition_loop("Let me think. " + "I am not sure. " * 6)
    True
    >>> is_repetition_loop("The answer is 1000000000000.")
    False
    """
    _check_str(text, "text")
    candidates = {text, text.rstrip()}
    for t in candidates:
        n = len(t)
        for period in range(1, min(_LOOP_MAX_PERIOD, n // _LOOP_MIN_REPEATS) + 1):
            m = max(period * _LOOP_MIN_REPEATS, _LOOP_MIN_CHARS)
            if m > n:
                break
            tail = t[n - m :]
            if tail[period:] == tail[:-period]:
                return True
    return False


# --- diagnosis ------------------------------------------------------------------------------------------------------


def _read(raw_text: str, special_tokens: Sequence[str], family: Family | None, finish_reason: str) -> Extraction:
    """The one implementation behind `diagnose` and `extract`, so the two can never disagree."""
    _check_str(raw_text, "raw_text")
    if raw_text == "":
        return Extraction(None, None, Diagnosis.EMPTY)
    if raw_text.strip() == "":
        return Extraction(None, None, Diagnosis.WHITESPACE_ONLY)
    text = clean_text(raw_text, special_tokens)
    if text.replace(_THINK_OPEN, "").replace(_THINK_CLOSE, "").strip() == "":
        return Extraction(None, None, Diagnosis.SPECIAL_TOKENS_ONLY)
    region, unclosed = _answer_region(text)
    raw_box, incomplete = _scan_boxes(region)
    if raw_box is not None:
        if family is None:
            return Extraction(raw_box, None, Diagnosis.OK)
        answer = normalize(family, raw_box)
        return Extraction(raw_box, answer, Diagnosis.OK if answer is not None else Diagnosis.INVALID_ANSWER)
    if is_repetition_loop(text):
        diagnosis = Diagnosis.REPETITION_LOOP
    elif finish_reason == "length":
        diagnosis = Diagnosis.TRUNCATED
    elif unclosed:
        diagnosis = Diagnosis.UNCLOSED_THINK
    elif incomplete:
        diagnosis = Diagnosis.MALFORMED_BOX
    else:
        diagnosis = Diagnosis.NO_BOX
    return Extraction(None, None, diagnosis)


def diagnose(
    raw_text: str,
    *,
    finish_reason: str = "eos",
    special_tokens: Sequence[str] = (),
    family: Family | None = None,
) -> Diagnosis:
    """The diagnosis of one decoded response (special tokens included); precedence in the module docstring.

    `finish_reason` is ``"length"`` when generation hit ``max_new_tokens``; any other value means it stopped on its
    own. Without `family`, any complete box is ``ok``; with it, a box whose content is no valid answer for the family
    is ``invalid_answer``.

    >>> diagnose("<think>\\n\\n</think>\\n\\nThe answer is \\\\boxed{4}<|im_end|>")
    <Diagnosis.OK: 'ok'>
    >>> diagnose("<|endoftext|><|endoftext|>"), diagnose("The answer is 4.")
    (<Diagnosis.SPECIAL_TOKENS_ONLY: 'special_tokens_only'>, <Diagnosis.NO_BOX: 'no_box'>)
    >>> diagnose("Step 1: ...", finish_reason="length")
    <Diagnosis.TRUNCATED: 'truncated'>
    >>> diagnose("\\\\boxed{banana}", family="multiple_choice")
    <Diagnosis.INVALID_ANSWER: 'invalid_answer'>
    """
    if family is not None:
        check_family(family)
    return _read(raw_text, special_tokens, family, finish_reason).diagnosis


def extract(
    raw_text: str,
    family: Family,
    *,
    finish_reason: str = "eos",
    special_tokens: Sequence[str] = (),
) -> Extraction:
    """Read one response: its last box, the canonical answer for `family`, and the diagnosis.

    ``answer`` is not None exactly when ``diagnosis`` is OK; ``extract(...).diagnosis`` always equals
    ``diagnose(..., family=family)``.

    >>> extract("<think>hmm</think>The answer is \\\\boxed{\\\\text{(B)}}.<|im_end|>", "multiple_choice")
    Extraction(raw_box='\\\\text{(B)}', answer='B', diagnosis=<Diagnosis.OK: 'ok'>)
    >>> extract("I think it's 1,600 dollars.", "math").diagnosis
    <Diagnosis.NO_BOX: 'no_box'>
    """
    check_family(family)
    return _read(raw_text, special_tokens, family, finish_reason)


# --- per-family normalization ---------------------------------------------------------------------------------------

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
    _check_str(text, "text")
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
    _check_str(text, "text")
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
    _check_str(text, "text")
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
    Equivalence beyond this (``\\frac{1}{2}`` vs ``0.5``) is `evalkit.metrics.math_equal`'s job.

    >>> [normalize_math(s) for s in ["$1{,}000$", "\\\\$18.00", "5 \\\\text{ cm}", "50\\\\%", "x = 3.0"]]
    ['1000', '18', '5', '50', '3']
    >>> normalize_math("-\\\\dfrac{1}{2}")
    '-\\\\frac{1}{2}'
    """
    _check_str(text, "text")
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


# --- gold parsers for the real datasets (called by evalkit.tasks) --------------------------------------------------


def gsm8k_final_answer(answer_field: str) -> str | None:
    """The canonical final answer of a GSM8K ``answer`` field (after its last ``####``); None when there is none.

    >>> gsm8k_final_answer("She makes 9 * 2 = $<<9*2=18>>18.\\n#### 1,600")
    '1600'
    """
    _check_str(answer_field, "answer_field")
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
    return tuple(texts) if all(isinstance(t, str) for t in texts) else None


# --- input checks ---------------------------------------------------------------------------------------------------


def _check_str(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a decoded string, got {type(value).__name__}; decode the token ids first")
