"""Reading a response's text: special tokens, think blocks, the final ``\\boxed{}`` and repetition loops.

Think blocks: a closed ``<think>...</think>`` block is skipped, and text inside an unclosed ``<think>`` never yields an
answer (reasoning is not an answer). A ``</think>`` without an opening tag closes a think block that the chat template
opened in the prompt, so everything before it counts as thinking too. `evalkit.core.extract` turns what is read here
into a diagnosis.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["boxed", "clean_text", "is_repetition_loop"]


# --- special tokens and think blocks -------------------------------------------------------------------------------

# Chat-format markers (<|im_end|>, <|endoftext|>, <|eot_id|>, ...) are special tokens in every family we serve; the
# few bare ones below are the classic sentencepiece/BERT specials. Callers add their tokenizer's own list.
_GENERIC_SPECIAL = re.compile(r"<\|[^<>|\s]{1,64}\|>")
_DEFAULT_SPECIAL_TOKENS = ("</s>", "<s>", "<pad>", "<unk>", "<eos>", "<bos>", "[PAD]", "[CLS]", "[SEP]")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def clean_text(raw_text: str, special_tokens: Sequence[str] = ()) -> str:
    """The response without special tokens: the given ones, every ``<|...|>`` marker and a few classic ones.

    Think tags are kept: they carry meaning (see `boxed`).

    >>> clean_text("The answer is \\\\boxed{4}<|im_end|><|endoftext|>")
    'The answer is \\\\boxed{4}'
    >>> clean_text("x<eot>", special_tokens=["<eot>"])
    'x'
    """
    check_text(raw_text, "raw_text")
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
    removable = {*special_tokens, *_DEFAULT_SPECIAL_TOKENS} - {"", THINK_OPEN, THINK_CLOSE}
    return tuple(sorted(removable, key=len, reverse=True))


def end_of_turn_offset(raw_text: str, end_of_turn: Sequence[str]) -> int | None:
    """Characters of `raw_text` up to and including its first end-of-turn token; None when it has none.

    >>> end_of_turn_offset("yes<|im_end|>more", ["<|im_end|>"]), end_of_turn_offset("yes", ["<|im_end|>"])
    (13, None)
    """
    found = [(i, len(t)) for t in end_of_turn if t and (i := raw_text.find(t)) >= 0]
    if not found:
        return None
    start, length = min(found)
    return start + length


def answer_region(text: str) -> tuple[str, bool]:
    """The part of `text` outside think blocks where an answer may be, and whether a think block was left open."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        text = text[close + len(THINK_CLOSE) :]
    open_ = text.find(THINK_OPEN)
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


def scan_boxes(text: str) -> tuple[str | None, bool]:
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
    check_text(text, "text")
    region, _ = answer_region(text)
    return scan_boxes(region)[0]


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
    check_text(text, "text")
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


# --- input checks ---------------------------------------------------------------------------------------------------


def check_text(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a decoded string, got {type(value).__name__}; decode the token ids first")
