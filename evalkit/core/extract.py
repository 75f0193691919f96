"""Answer extraction: the final ``\\boxed{}`` of a response, its canonical form per family, and a diagnosis.

Every response the engine scores goes through `extract` once; `diagnose` is the single source of a response's
diagnosis, so a report never says "F1 = 0" without also saying why (no box, truncated, a loop, ...).

Reading the text (special tokens, think blocks, boxes, loops) is `evalkit.core.boxes`; the canonical form of an
answer per family is `evalkit.core.normalize`.

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

Before all of them, ``prompt_too_long``: the item was never sent to the model (``finish_reason ==
"prompt_too_long"``), because its prompt exceeds the model's context or evalkit's hard cap on prompt length.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from evalkit.core.boxes import (THINK_CLOSE, THINK_OPEN, answer_region, check_text, clean_text, end_of_turn_offset,
                                is_repetition_loop, scan_boxes)
from evalkit.core.normalize import normalize
from evalkit.core.types import Family, check_family

__all__ = ["DIAGNOSIS_ORDER", "Diagnosis", "Extraction", "diagnose", "extract"]


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
    PROMPT_TOO_LONG = "prompt_too_long"

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
    Diagnosis.PROMPT_TOO_LONG: (
        "the prompt is longer than the model's context (or evalkit's cap on prompt length), so it was never sent to "
        "the model; shorten the item or use a model with a longer context"
    ),
}


DIAGNOSIS_ORDER: tuple[str, ...] = tuple(d.value for d in (
    Diagnosis.OK, Diagnosis.EMPTY, Diagnosis.WHITESPACE_ONLY, Diagnosis.SPECIAL_TOKENS_ONLY, Diagnosis.NO_BOX,
    Diagnosis.MALFORMED_BOX, Diagnosis.UNCLOSED_THINK, Diagnosis.TRUNCATED, Diagnosis.REPETITION_LOOP,
    Diagnosis.INVALID_ANSWER, Diagnosis.PROMPT_TOO_LONG))
"""Every diagnosis in the order reports, CSV columns and chart legends list them: ok, then the responses with no text,
then the ones whose format failed, then the items never asked. (Results documents count diagnoses in the enum's own
order.)"""


@dataclass(frozen=True, slots=True)
class Extraction:
    """The result of reading one response: what was boxed, its canonical form, and why (not)."""

    raw_box: str | None  # content of the last complete box outside think blocks, verbatim; None when there is none
    answer: str | None  # canonical answer for the family (see `normalize`); None unless diagnosis is OK
    diagnosis: Diagnosis
    turn_end: int | None = field(default=None, repr=False)  # characters of the raw text up to its first end-of-turn token; None: no such token


# --- diagnosis ------------------------------------------------------------------------------------------------------


def _read(raw_text: str, special_tokens: Sequence[str], family: Family | None, finish_reason: str,
          end_of_turn: Sequence[str] = ()) -> Extraction:
    """The one implementation behind `diagnose` and `extract`, so the two can never disagree.

    Only the reply's own turn is read: text after its first end-of-turn token is another (hallucinated) turn, and
    a reply that ended its turn did stop, whatever ended generation later.
    """
    check_text(raw_text, "raw_text")
    if finish_reason == "prompt_too_long":
        return Extraction(None, None, Diagnosis.PROMPT_TOO_LONG)
    turn_end = end_of_turn_offset(raw_text, end_of_turn)
    if turn_end is not None:
        found = _read(raw_text[:turn_end], special_tokens, family, "eos")
        return Extraction(found.raw_box, found.answer, found.diagnosis, turn_end)
    if raw_text == "":
        return Extraction(None, None, Diagnosis.EMPTY)
    if raw_text.strip() == "":
        return Extraction(None, None, Diagnosis.WHITESPACE_ONLY)
    text = clean_text(raw_text, special_tokens)
    if text.replace(THINK_OPEN, "").replace(THINK_CLOSE, "").strip() == "":
        return Extraction(None, None, Diagnosis.SPECIAL_TOKENS_ONLY)
    region, unclosed = answer_region(text)
    raw_box, incomplete = scan_boxes(region)
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
    end_of_turn: Sequence[str] = (),
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
    return _read(raw_text, special_tokens, family, finish_reason, end_of_turn).diagnosis


def extract(
    raw_text: str,
    family: Family,
    *,
    finish_reason: str = "eos",
    special_tokens: Sequence[str] = (),
    end_of_turn: Sequence[str] = (),
) -> Extraction:
    """Read one response: its last box, the canonical answer for `family`, and the diagnosis.

    ``answer`` is not None exactly when ``diagnosis`` is OK; ``extract(...).diagnosis`` always equals
    ``diagnose(..., family=family)``.

    >>> extract("<think>hmm</think>The answer is \\\\boxed{\\\\text{(B)}}.<|im_end|>", "multiple_choice")
    Extraction(raw_box='\\\\text{(B)}', answer='B', diagnosis=<Diagnosis.OK: 'ok'>)
    >>> extract("I think it's 1,600 dollars.", "math").diagnosis
    <Diagnosis.NO_BOX: 'no_box'>

    end_of_turn: the tokens that end the reply's turn; text after the first one is not part of the answer.

    >>> ex = extract("\\\\boxed{4}<|im_end|>\\n<|im_start|>user\\n\\\\boxed{5}", "math", end_of_turn=["<|im_end|>"])
    >>> ex.answer, ex.turn_end
    ('4', 19)
    """
    check_family(family)
    return _read(raw_text, special_tokens, family, finish_reason, end_of_turn)
