"""Shared types: the one row schema every task loader produces.

Real datasets (ARC, BoolQ, SQuAD v2, GSM8K, MATH, OpenMath) and the fixture zoo's synthetic tasks all become
`Item`s, so one pipeline (prompt -> generation -> extraction -> diagnosis -> scoring) serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Family = Literal["math", "multiple_choice", "yes_no", "span"]
"""The four answer families; each has its own normalization, metric and trivial baseline."""

FAMILIES: tuple[Family, ...] = get_args(Family)

FinishReason = Literal["eos", "length", "prompt_too_long"]
"""Why generation stopped: the model emitted an end-of-sequence token, it hit max_new_tokens, or it never started
because the prompt was longer than the model's context or evalkit's cap (`evalkit.run.engine.PromptLimits`)."""

CHOICE_LABELS = "ABCDEFGH"
"""Multiple-choice options are always labelled with letters; datasets labelled 1-4 are mapped at load time."""


def check_family(family: object) -> None:
    """Raise the one error for a family that is not an answer family (extraction and metrics share it).

    >>> check_family("math")
    >>> check_family("essay")
    Traceback (most recent call last):
    ValueError: unknown answer family 'essay'; expected one of ('math', 'multiple_choice', 'yes_no', 'span')
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown answer family {family!r}; expected one of {FAMILIES}")


@dataclass(frozen=True, slots=True)
class Item:
    """One question with its gold answer(s), in canonical form.

    answers, by family:
      - math: the final answer as a string, e.g. ("1600",) or ("\\frac{1}{2}",)
      - multiple_choice: the gold letter, e.g. ("B",); `choices` holds the option texts in label order
      - yes_no: ("yes",) or ("no",)
      - span: every annotator's answer text; () marks an unanswerable question (correct answer: the empty box)
    """

    task: str  # task name, e.g. "gsm8k" or "zoo_math"
    id: str  # stable within the task (dataset id, or line index)
    family: Family
    question: str
    answers: tuple[str, ...]
    context: str = ""  # passage for BoolQ / SQuAD-like items, else ""
    choices: tuple[str, ...] = ()  # option texts for multiple choice, labelled A, B, C, ...
    meta: tuple[tuple[str, str], ...] = ()  # small extra fields worth keeping (e.g. MATH level), as sorted pairs

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"Item {self.task}/{self.id}: unknown family {self.family!r}; expected one of {FAMILIES}")
        if self.family == "multiple_choice" and not (2 <= len(self.choices) <= len(CHOICE_LABELS)):
            raise ValueError(
                f"Item {self.task}/{self.id}: multiple choice needs 2-{len(CHOICE_LABELS)} choices, got {len(self.choices)}"
            )
        if self.family != "span" and not self.answers:
            raise ValueError(f"Item {self.task}/{self.id}: family {self.family!r} needs a gold answer")

    @property
    def unanswerable(self) -> bool:
        """SQuAD v2 convention: a span question with no gold answer; the correct response is the empty box."""
        return self.family == "span" and not self.answers
