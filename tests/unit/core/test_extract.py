"""Example tests for evalkit.core.extract: one table per rule, named by where the cases come from."""

from __future__ import annotations

import pytest

from evalkit.core.boxes import boxed
from evalkit.core.extract import Diagnosis, Extraction, clean_text, diagnose, extract, is_repetition_loop, normalize
from evalkit.core.normalize import choice_label, gsm8k_final_answer, math_number, math_solution_answer, normalize_choice, normalize_math, normalize_span, normalize_yes_no, squad_gold_answers, yes_no_label
from evalkit.core.types import FAMILIES

D = Diagnosis

# --- boxed(): the rules of the issue, one per row -------------------------------------------------------------------

BOXED_CASES = [
    # (text, expected, why)
    ("The answer is \\boxed{42}.", "42", "plain box"),
    ("\\boxed{1} then \\boxed{2}", "2", "the last box wins"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", "nested braces"),
    ("\\boxed{\\left\\{ 1, 2 \\right\\}}", "\\left\\{ 1, 2 \\right\\}", "escaped braces do not count"),
    ("\\boxed{a \\\\ b}", "a \\\\ b", "a LaTeX line break is not an escape of the brace"),
    ("\\boxed {x}", "x", "space before the brace"),
    ("\\boxed\n{x}", "x", "newline before the brace"),
    ("\\boxed 5", "5", "no braces: the next token"),
    ("$\\boxed 5$.", "5", "no braces, token ends at $"),
    ("\\boxed5", "5", "no braces, no space"),
    ("\\boxed \\frac{1}{2} is it", "\\frac{1}{2}", "bare token keeps its brace groups"),
    ("\\fbox{B}", "B", "\\fbox counts as a box"),
    ("\\boxed{}", "", "an explicit empty answer (abstaining) is not 'no box'"),
    ("\\boxed{ }", " ", "content is verbatim; normalizers strip"),
    ("no box here", None, "no box"),
    ("\\boxed{3", None, "unbalanced"),
    ("\\boxed", None, "command at the end"),
    ("\\boxed ", None, "command and a space at the end"),
    ("\\boxed}", None, "closing brace is no argument"),
    ("\\boxedx{3}", None, "another command, not \\boxed"),
    ("\\boxed{2} and later \\boxed{3", "2", "the last *complete* box"),
    ("\\boxed{\\boxed{7}}", "\\boxed{7}", "a nested box is part of the outer content"),
    ("\\boxed{\\boxed{7}", "7", "an unbalanced outer box leaves the complete inner one"),
    # think blocks
    ("<think>maybe \\boxed{1}</think>so \\boxed{2}", "2", "closed think block skipped"),
    ("<think>maybe \\boxed{1}</think>no box after", None, "a box inside think is never the answer"),
    ("<think>maybe \\boxed{1}", None, "unclosed think never yields"),
    ("\\boxed{5} <think>second thoughts \\boxed{6}", "5", "box before an unclosed think still counts"),
    ("template opened think \\boxed{1}</think> final \\boxed{2}", "2", "orphan </think>: all before it is thinking"),
    ("template opened think \\boxed{1}</think>", None, "orphan </think>, nothing after"),
    ("<think>a</think>x<think>b</think>\\boxed{9}", "9", "two closed think blocks"),
    ("<think>a</think>\\boxed{8}<think>b", "8", "answer between a closed and an unclosed block"),
    ("\\boxed " + "x" * 200, None, "a bare token longer than 100 characters is no answer"),
    # inputs that were quadratic in an earlier version (each unbalanced box rescanned the rest of the text)
    ("\\boxed{" * 3000 + "\\boxed{ok}", "ok", "thousands of unbalanced boxes before a good one"),
    ("\\boxed" * 3000 + "{", None, "thousands of bare commands running into an unclosed brace"),
]


@pytest.mark.parametrize(("text", "expected", "why"), BOXED_CASES, ids=[c[2] for c in BOXED_CASES])
def test_boxed(text: str, expected: str | None, why: str) -> None:
    assert boxed(text) == expected, why


def test_boxed_rejects_non_strings_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match="decode the token ids first"):
        boxed(None)  # type: ignore[arg-type]


# --- clean_text -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "tokens", "expected"),
    [
        ("\\boxed{4}<|im_end|>", (), "\\boxed{4}"),
        ("<|im_start|>assistant\nhi<|endoftext|>", (), "assistant\nhi"),
        ("x</s><pad><pad>", (), "x"),
        ("x<eot>", ("<eot>",), "x"),
        ("x<eot>", (), "x<eot>"),
        ("<|<|im_end|>im_end|>a", (), "a"),  # removing one marker must not leave another behind
        ("<think>a</think>b", ("<think>", "</think>"), "<think>a</think>b"),  # think tags carry meaning: kept
        ("a < b and c | d > e", (), "a < b and c | d > e"),  # not a marker
    ],
)
def test_clean_text(raw: str, tokens: tuple[str, ...], expected: str) -> None:
    assert clean_text(raw, tokens) == expected


# --- diagnose(): every diagnosis, then the precedence between them -------------------------------------------------

LOOP = "Let me compute. " + "So 2 + 2 = 4, and " * 30

DIAGNOSIS_CASES = [
    # (raw_text, finish_reason, family, special_tokens, expected, why)
    ("", "eos", None, (), D.EMPTY, "nothing at all"),
    ("", "prompt_too_long", "math", (), D.PROMPT_TOO_LONG, "never sent: the prompt was too long"),
    ("", "length", None, (), D.EMPTY, "empty beats truncated"),
    (" \n\t ", "eos", None, (), D.WHITESPACE_ONLY, "whitespace"),
    ("\n" * 300, "length", None, (), D.WHITESPACE_ONLY, "whitespace beats truncated and loop"),
    ("<|im_end|>", "eos", None, (), D.SPECIAL_TOKENS_ONLY, "one special token"),
    ("<|endoftext|>" * 100, "length", None, (), D.SPECIAL_TOKENS_ONLY, "special tokens beat truncated and loop"),
    ("<think>\n\n</think>\n\n<|im_end|>", "eos", None, (), D.SPECIAL_TOKENS_ONLY, "empty think block + eos token"),
    ("<pad> <pad>\n</s>", "eos", None, (), D.SPECIAL_TOKENS_ONLY, "classic special tokens"),
    ("<eot><eot>", "eos", None, ("<eot>",), D.SPECIAL_TOKENS_ONLY, "the tokenizer's own special tokens"),
    ("<eot><eot>", "eos", None, (), D.NO_BOX, "unknown to us unless passed"),
    ("<think>\n\n</think>\n\nThe answer is \\boxed{4}<|im_end|>", "eos", None, (), D.OK, "Qwen3 non-thinking"),
    ("The answer is \\boxed{4}", "length", None, (), D.OK, "an answer wins over truncation"),
    ("\\boxed{4}. " + "And again. " * 40, "length", None, (), D.OK, "an answer wins over a later loop"),
    ("\\boxed{banana}", "eos", "multiple_choice", (), D.INVALID_ANSWER, "box, but not a letter"),
    ("\\boxed{banana}", "eos", None, (), D.OK, "without a family any box is ok"),
    ("\\boxed{maybe}", "eos", "yes_no", (), D.INVALID_ANSWER, "box, but not yes/no"),
    ("\\boxed{}", "eos", "math", (), D.INVALID_ANSWER, "empty box is no math answer"),
    ("\\boxed{}", "eos", "span", (), D.OK, "empty box is the span abstention"),
    (LOOP, "length", None, (), D.REPETITION_LOOP, "a loop is why it was truncated"),
    (LOOP, "eos", None, (), D.REPETITION_LOOP, "a loop even when it stopped"),
    ("<think>" + "wait, " * 40, "length", None, (), D.REPETITION_LOOP, "loop beats unclosed think"),
    ("\\boxed{1" + "0" * 100, "length", None, (), D.REPETITION_LOOP, "digit loop inside an open box"),
    ("Step 1: 3 * 4 = 12. Step 2:", "length", None, (), D.TRUNCATED, "hit the limit mid-reasoning"),
    ("<think>Let me see, 3 * 4 = 12 so", "length", None, (), D.TRUNCATED, "truncated beats unclosed think"),
    ("So the answer is \\boxed{12", "length", None, (), D.TRUNCATED, "truncated beats malformed box"),
    ("<think>the answer is \\boxed{4}", "eos", None, (), D.UNCLOSED_THINK, "box inside an unclosed think"),
    ("<think>hmm \\boxed{4", "eos", None, (), D.UNCLOSED_THINK, "unclosed think beats malformed box"),
    ("The answer is \\boxed{12", "eos", None, (), D.MALFORMED_BOX, "unbalanced box"),
    ("The answer is \\boxed", "eos", None, (), D.MALFORMED_BOX, "box command without argument"),
    ("The answer is 12.", "eos", None, (), D.NO_BOX, "ignored the format"),
    ("<think>reasoning</think>", "eos", None, (), D.NO_BOX, "thought, then said nothing"),
    ("<think>\\boxed{4}</think> Done.", "eos", None, (), D.NO_BOX, "the only box is inside think"),
    ("The answer is 12.", "stop", None, (), D.NO_BOX, "any finish reason but 'length' means it stopped"),
]


@pytest.mark.parametrize(
    ("raw", "finish", "family", "tokens", "expected", "why"), DIAGNOSIS_CASES, ids=[c[-1] for c in DIAGNOSIS_CASES]
)
def test_diagnose(raw, finish, family, tokens, expected, why) -> None:
    assert diagnose(raw, finish_reason=finish, special_tokens=tokens, family=family) is expected, why
    if family is not None:
        assert extract(raw, family, finish_reason=finish, special_tokens=tokens).diagnosis is expected


def test_every_diagnosis_is_reachable_and_explained() -> None:
    reached = {c[4] for c in DIAGNOSIS_CASES}
    assert reached == set(Diagnosis)
    for d in Diagnosis:
        assert d.explain and "\n" not in d.explain
    assert len({d.explain for d in Diagnosis}) == len(Diagnosis)


def test_diagnosis_is_a_string_enum() -> None:
    assert Diagnosis.NO_BOX == "no_box" and f"{Diagnosis.NO_BOX}" == "no_box"
    assert isinstance(Diagnosis.OK, str)


def test_diagnose_rejects_an_unknown_family() -> None:
    with pytest.raises(ValueError, match="unknown answer family 'essay'"):
        diagnose("\\boxed{1}", family="essay")  # type: ignore[arg-type]


# --- extract() ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "family", "expected"),
    [
        ("Thus \\boxed{\\text{(B)}}.<|im_end|>", "multiple_choice", Extraction("\\text{(B)}", "B", D.OK)),
        ("\\boxed{Yes.}", "yes_no", Extraction("Yes.", "yes", D.OK)),
        ("\\boxed{The Normans}", "span", Extraction("The Normans", "normans", D.OK)),
        ("\\boxed{}", "span", Extraction("", "", D.OK)),
        ("\\boxed{\\$1{,}600}", "math", Extraction("\\$1{,}600", "1600", D.OK)),
        ("\\boxed{banana}", "multiple_choice", Extraction("banana", None, D.INVALID_ANSWER)),
        ("1600", "math", Extraction(None, None, D.NO_BOX)),
    ],
)
def test_extract(raw: str, family, expected: Extraction) -> None:
    assert extract(raw, family) == expected


# The lost-eos variant's replies (tests/unit/cli/test_cli.py): the answer, <|im_end|>, then hallucinated turns whose
# last box is not the answer. Only the reply's own turn is read (issue 12).
TURN = ["<|im_end|>"]


@pytest.mark.parametrize(("raw", "finish", "expected", "why"), [
    ("\\boxed{no}<|im_end|>iter}<|im_end|> largest.\n\\boxed{}<|im_end|>{}", "length", Extraction("no", "no", D.OK),
     "before: the stray empty box of a later turn was read (no valid answer)"),
    ("\\boxed{no}<|im_end|>\n<|im_start|>user\nIs it?<|im_end|>\n\\boxed{yes}", "length",
     Extraction("no", "no", D.OK), "before: the hallucinated turn's 'yes' was read"),
    ("Let me think<|im_end|>\\boxed{yes}", "length", Extraction(None, None, D.NO_BOX),
     "ended its turn without a box: no_box, not truncated"),
    ("\\boxed{yes}", "length", Extraction("yes", "yes", D.OK), "no end-of-turn token: read as a whole"),
])
def test_text_after_the_first_end_of_turn_token_is_not_the_answer(raw, finish, expected, why) -> None:
    got = extract(raw, "yes_no", finish_reason=finish, end_of_turn=TURN)
    assert (got.raw_box, got.answer, got.diagnosis) == (expected.raw_box, expected.answer, expected.diagnosis), why
    assert got.turn_end == (None if "<|im_end|>" not in raw else raw.index("<|im_end|>") + len("<|im_end|>"))


# --- per-family normalization ---------------------------------------------------------------------------------------

CHOICE_CASES = [
    ("A", "A"), ("b", "B"), ("(C)", "C"), ("D.", "D"), ("[A]", "A"), ("E", "E"), ("\\text{B}", "B"),
    ("\\textbf{(E)}", "E"), ("\\mathrm{C}", "C"), ("$B$", "B"), ("**B**", "B"), ("Option B", "B"),
    ("option (b)", "B"), ("The answer is C", "C"), ("Answer: D", "D"), ("choice A", "A"),
    ("B) Planetary days", "B"), ("C. Planetary days will become shorter.", "C"), ("(A) water", "A"),
    ("banana", None), ("A or B", None), ("AB", None), ("1", None), ("", None), ("I", None), ("Z", None),
    ("the answer", None), ("A cat", None), ("Apple", None),
]


@pytest.mark.parametrize(("text", "expected"), CHOICE_CASES)
def test_normalize_choice(text: str, expected: str | None) -> None:
    assert normalize_choice(text) == expected
    assert normalize("multiple_choice", text) == expected


def test_normalize_choice_respects_the_labels_of_the_item() -> None:
    assert normalize_choice("E", labels="ABCD") is None
    assert normalize_choice("D", labels="ABCD") == "D"


YES_NO_CASES = [
    ("yes", "yes"), ("Yes", "yes"), ("YES", "yes"), ("yes.", "yes"), ("Yes!", "yes"), ("(yes)", "yes"),
    (" no ", "no"), ("**No**", "no"), ("\\text{No}", "no"), ("True", "yes"), ("false", "no"), ("FALSE.", "no"),
    ("Yes, because the passage says so.", "yes"), ("No. It is not.", "no"),
    ("maybe", None), ("", None), ("no answer", None), ("yes and no", None), ("yesno", None), ("y", None),
    ("Noon", None), ("not sure", None),
]


@pytest.mark.parametrize(("text", "expected"), YES_NO_CASES)
def test_normalize_yes_no(text: str, expected: str | None) -> None:
    assert normalize_yes_no(text) == expected
    assert normalize("yes_no", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Normans", "normans"),
        ("\\text{the Normans}", "normans"),
        ("Paris.", "paris"),
        ("  Rollo   of   Normandy ", "rollo of normandy"),
        ("", ""),
        ("the", ""),  # all article: the official script reads this as no answer
        ("10th and 11th centuries", "10th and 11th centuries"),
        ("Ségur-Lamoignon", "ségurlamoignon"),  # official: punctuation dropped, not replaced by a space
    ],
)
def test_normalize_span_is_the_official_squad_normalization(text: str, expected: str) -> None:
    assert normalize_span(text) == expected
    assert normalize("span", text) == expected


MATH_CASES = [
    # (text, canonical, source of the case)
    ("1,000", "1000", "issue: thousands separator"),
    ("1{,}000", "1000", "issue: LaTeX thousands separator"),
    ("10,\\!080", "10080", "MATH solution"),
    ("11,\\! 111,\\! 111,\\! 100", "11111111100", "MATH solution"),
    ("1,234,567.5", "1234567.5", "separators and decimals"),
    ("$18$", "18", "issue: $...$"),
    ("\\$18", "18", "dollar sign"),
    ("\\$32,\\!348", "32348", "MATH solution"),
    ("18 dollars", "18", "unit word"),
    ("5 \\text{ cm}", "5", "issue: unit in \\text"),
    ("864 \\mbox{ inches}^2", "864", "MATH solution"),
    ("\\frac{270}7\\text{ degrees}", "\\frac{270}7", "MATH solution"),
    ("50\\%", "50", "issue: \\%"),
    ("50%", "50", "percent sign"),
    ("90^\\circ", "90", "MATH degrees"),
    ("90°", "90", "unicode degrees"),
    ("\\dfrac{1}{2}", "\\frac{1}{2}", "issue: \\dfrac"),
    ("\\tfrac{1}{2}", "\\frac{1}{2}", "\\tfrac"),
    ("-5", "-5", "issue: keep the sign"),
    ("\u22125", "-5", "unicode minus"),
    ("+5", "5", "explicit plus"),
    ("3.0", "3", "canonical decimal"),
    (".5", "0.5", "leading dot"),
    ("0.50", "0.5", "trailing zero"),
    ("-0", "0", "negative zero"),
    ("100", "100", "no exponent notation"),
    ("5.", "5", "sentence period"),
    ("x = 5", "5", "assignment"),
    ("\\text{Evelyn}", "Evelyn", "MATH text answer"),
    ("\\text{(C)}", "(C)", "MATH lettered answer"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", "MATH tuple"),
    ("(10,125)", "(10,125)", "a tuple is not a thousands separator"),
    ("3, 5, 7", "3,5,7", "MATH list"),
    ("1,-2", "1,-2", "MATH list"),
    ("\\pi r^2", "\\pi r^2", "spaces between letters matter"),
    ("1 \\pm \\sqrt{19}", "1\\pm\\sqrt{19}", "MATH"),
    ("\\begin{pmatrix} -1/3 \\\\ 2/3 \\end{pmatrix}", "\\begin{pmatrix}-1/3\\\\2/3\\end{pmatrix}", "line break kept"),
    ("", None, "empty"),
    ("  ", None, "blank"),
    ("$$", None, "only delimiters"),
    ("1 " + "a" * 3000 + "!", "1" + "a" * 3000 + "!", "long non-unit tail (was a backtracking regex)"),
]


@pytest.mark.parametrize(("text", "expected", "source"), MATH_CASES, ids=[f"{c[2]}:{c[0][:30]}" for c in MATH_CASES])
def test_normalize_math(text: str, expected: str | None, source: str) -> None:
    assert normalize_math(text) == expected
    assert normalize("math", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,600", 1600), ("-\\frac{3}{4}", -0.75), ("\\frac{-3}{4}", -0.75), ("\\frac34", 0.75), ("0.5", 0.5),
        ("7/2", 3.5), ("\\$1{,}000.25", 1000.25), ("1/0", None), ("\\frac{1}{0}", None), ("\\sqrt{2}", None),
        ("x+1", None), ("", None), ("1" * 500, None),
    ],
)
def test_math_number(text: str, expected: float | None) -> None:
    value = math_number(text)
    assert (None if value is None else float(value)) == expected


def test_normalize_covers_every_family_and_rejects_others() -> None:
    for family in FAMILIES:
        normalize(family, "x")
    with pytest.raises(ValueError, match="unknown answer family"):
        normalize("essay", "x")  # type: ignore[arg-type]


# --- repetition loops -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I am not sure. " * 6, True),
        ("intro " + "ab" * 40, True),
        ("abc" * 30 + "ab", True),  # cut mid-unit by the token limit
        ("wait, " * 20 + "\n", True),  # a final newline after the loop
        ("!" * 64, True),
        ("!" * 63, False),  # shorter than the minimum
        ("The answer is 1000000000000.", False),
        ("A perfectly ordinary answer with no repetition at all, even if it is fairly long.", False),
        ("I am not sure. " * 3, False),  # three repeats are a style, not a loop
        ("", False),
    ],
)
def test_is_repetition_loop(text: str, expected: bool) -> None:
    assert is_repetition_loop(text) is expected


# --- gold parsers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 18", "18"),
        ("... so 1600 in total.\n#### 1,600", "1600"),
        ("#### 1,450,000", "1450000"),
        ("#### -3", "-3"),
        ("the #### is a header\n#### 7", "7"),
        ("no final line", None),
        ("####", None),
    ],
)
def test_gsm8k_final_answer(field: str, expected: str | None) -> None:
    assert gsm8k_final_answer(field) == expected


@pytest.mark.parametrize(
    ("solution", "expected"),
    [
        ("the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$", "(3,\\frac{\\pi}{2})"),
        ("so $\\boxed{\\dfrac{17}{50}}$.", "\\frac{17}{50}"),
        ("$\\boxed{10}\\%$", "10"),
        ("$\\boxed{\\$32,\\!348}$, to the nearest dollar.", "32348"),
        ("no box", None),
    ],
)
def test_math_solution_answer(solution: str, expected: str | None) -> None:
    assert math_solution_answer(solution) == expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [("A", "A"), ("d", "D"), ("1", "A"), ("4", "D"), ("8", "H"), (3, "C"), (" 2 ", "B"), ("0", None), ("9", None),
     ("Z", None), ("AB", None), ("", None), (None, None), ("²", None), ("٣", None)],
)
def test_choice_label(label, expected) -> None:
    assert choice_label(label) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "yes"), (False, "no"), ("true", "yes"), ("False", "no"), ("yes", "yes"), (1, None), (None, None),
     ("maybe", None)],
)
def test_yes_no_label(value, expected) -> None:
    assert yes_no_label(value) == expected


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"text": ["France", "France"], "answer_start": [159, 159]}, ("France", "France")),
        ({"text": [], "answer_start": []}, ()),
        ([{"text": "Rollo", "answer_start": 3}], ("Rollo",)),
        (["a", "b"], ("a", "b")),
        ([], ()),
        ({"answer_start": [1]}, None),
        ("France", None),
        ([{"text": 3}], None),
    ],
)
def test_squad_gold_answers(answers, expected) -> None:
    assert squad_gold_answers(answers) == expected
