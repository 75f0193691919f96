"""Prompt builders: one instruction per family, always asking for the final answer in \\boxed{}.

The fixture zoo is trained on exactly these prompts, and real models are evaluated on them, so the zoo's results
transfer to the pipeline a user runs. The math wording is Qwen's own recommended math prompt.
"""

from __future__ import annotations

from evalkit.types import CHOICE_LABELS, Item

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Answer with the letter of the correct option within \\boxed{}."
YES_NO_INSTRUCTION = "Answer yes or no within \\boxed{}."
SPAN_INSTRUCTION = (
    "Answer with a short span copied from the passage within \\boxed{}. "
    "If the passage does not contain the answer, answer \\boxed{}."
)


def user_message(item: Item) -> str:
    """The user turn for an item.

    >>> from evalkit.types import Item
    >>> print(user_message(Item("t", "0", "yes_no", "is the sky blue", ("yes",), context="The sky is blue.")))
    The sky is blue.
    <BLANKLINE>
    Question: is the sky blue?
    Answer yes or no within \\boxed{}.
    """
    if item.family == "math":
        return f"{item.question}\n{MATH_INSTRUCTION}"
    if item.family == "multiple_choice":
        options = "\n".join(f"{CHOICE_LABELS[i]}. {text}" for i, text in enumerate(item.choices))
        return f"{item.question}\n\n{options}\n\n{CHOICE_INSTRUCTION}"
    question = item.question.rstrip()
    if item.family == "yes_no":
        if not question.endswith("?"):
            question += "?"
        return f"{item.context}\n\nQuestion: {question}\n{YES_NO_INSTRUCTION}"
    return f"{item.context}\n\nQuestion: {question}\n{SPAN_INSTRUCTION}"


def messages(item: Item, system: str | None = None) -> list[dict[str, str]]:
    """Chat messages for the model's own chat template (system prompt optional)."""
    turns = [{"role": "system", "content": system}] if system else []
    turns.append({"role": "user", "content": user_message(item)})
    return turns


def plain_prompt(item: Item, system: str | None = None) -> str:
    """Fallback for a model without a chat template; results record that this path was used."""
    head = f"{system}\n\n" if system else ""
    return f"{head}{user_message(item)}\nAnswer: "
