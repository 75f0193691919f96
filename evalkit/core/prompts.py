"""Prompt builders: one instruction per family, always asking for the final answer in \\boxed{}.

The fixture zoo is trained on exactly these prompts, and real models are evaluated on them, so the zoo's results
transfer to the pipeline a user runs. The math wording is Qwen's own recommended math prompt.
"""

from __future__ import annotations

from typing import Any, Literal

from evalkit.core.types import CHOICE_LABELS, Item

PromptMode = Literal["chat_template", "plain"]
"""How a prompt was rendered: the model's own chat template, or `plain_prompt` (no template)."""

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Answer with the letter of the correct option within \\boxed{}."
YES_NO_INSTRUCTION = "Answer yes or no within \\boxed{}."
SPAN_INSTRUCTION = (
    "Answer with a short span copied from the passage within \\boxed{}. "
    "If the passage does not contain the answer, answer \\boxed{}."
)


def user_message(item: Item) -> str:
    """The user turn for an item.

    >>> from evalkit.core.types import Item
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


def has_chat_template(tokenizer: Any) -> bool:
    """Whether `tokenizer` carries a chat template (a folder can lose it; prompts then fall back to plain text)."""
    return bool(getattr(tokenizer, "chat_template", None))


def render(tokenizer: Any, item: Item, *, system: str | None = None, enable_thinking: bool = False,
           use_chat_template: bool = True) -> tuple[str, PromptMode]:
    """The exact prompt text for `item`, and how it was made: the tokenizer's chat template with the generation
    prompt (the one place a chat prompt is rendered: evaluation, calibration and the zoo's training data all come
    here), or `plain_prompt` when there is no template or `use_chat_template` is False.

    The template receives `enable_thinking`; templates that ignore it are unaffected.
    """
    if use_chat_template and has_chat_template(tokenizer):
        text = tokenizer.apply_chat_template(messages(item, system), tokenize=False, add_generation_prompt=True,
                                             enable_thinking=enable_thinking)
        return str(text), "chat_template"
    return plain_prompt(item, system), "plain"
