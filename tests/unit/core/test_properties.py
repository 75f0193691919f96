"""Hypothesis properties of extraction and metrics: never raise, never NaN, stay in range, round-trip.

Inputs mix arbitrary unicode with fragments that matter to the parsers (box commands, braces, escapes, think tags,
special tokens, numbers with separators), so the search reaches the tricky corners and not only random letters.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.core.baselines import baseline_tolerance, beats_baseline, matches_baseline
from evalkit.core.boxes import boxed
from evalkit.core.extract import Diagnosis, Extraction, clean_text, diagnose, extract, is_repetition_loop, normalize
from evalkit.core.normalize import choice_label, gsm8k_final_answer, math_number, math_solution_answer, normalize_math, squad_normalize, yes_no_label
from evalkit.core.baselines import trivial_baseline
from evalkit.core.metrics import ItemScore, PRIMARY_METRIC, aggregate
from evalkit.core.scoring import math_equal, score, squad_exact, squad_f1, squad_v2
from evalkit.core.types import CHOICE_LABELS, FAMILIES, Item

FRAGMENTS = [
    "<think>", "</think>", "\\boxed{", "\\boxed ", "\\boxed", "\\fbox{", "{", "}", "\\{", "\\}", "\\\\", "\\", "$",
    "<|im_end|>", "<|endoftext|>", "<|", "|>", "</s>", "<pad>", "42", "-3.5", "1,000", "1{,}000", "\\frac{1}{2}",
    "\\dfrac", "B", "(C)", "D.", "yes", "No.", "true", "the", "an", " ", "\n", "%", "\\%", "\\$", "\\text{", "\\left(",
    "\\right)", "#### ", "x=", "^", "^\\circ", "_", "°", "\u2212", ".", ",", "0", "9" * 20, "é", "\u200b",
]
fragment_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=25).map("".join)
any_text = st.one_of(st.text(), fragment_text)
families = st.sampled_from(FAMILIES)
finish_reasons = st.sampled_from(["eos", "length", "stop", ""])
special_token_lists = st.lists(st.sampled_from(["<eot>", "<|im_end|>", "[END]", "<think>", ""]), max_size=3)

# Brace-balanced content in the TeX sense (a backslash escapes the next character), without think tags.
_plain = st.text(alphabet=st.characters(blacklist_characters="{}\\"), max_size=6)
_escape = st.builds(lambda c: "\\" + c, st.characters())
balanced = st.recursive(
    st.lists(st.one_of(_plain, _escape), max_size=4).map("".join),
    lambda inner: st.lists(st.one_of(inner, inner.map(lambda s: "{" + s + "}")), max_size=4).map("".join),
    max_leaves=12,
).filter(lambda s: "<think>" not in s and "</think>" not in s)
box_free = any_text.filter(lambda s: "\\boxed" not in s and "\\fbox" not in s and "think>" not in s)


# --- extraction -----------------------------------------------------------------------------------------------------


@given(any_text, families, finish_reasons, special_token_lists)
def test_extraction_never_raises_and_is_consistent(text, family, finish, tokens) -> None:
    ex = extract(text, family, finish_reason=finish, special_tokens=tokens)
    assert isinstance(ex, Extraction) and isinstance(ex.diagnosis, Diagnosis)
    assert (ex.answer is not None) == (ex.diagnosis is Diagnosis.OK)
    assert (ex.raw_box is not None) == (ex.diagnosis in (Diagnosis.OK, Diagnosis.INVALID_ANSWER))
    assert ex.diagnosis is diagnose(text, finish_reason=finish, special_tokens=tokens, family=family)
    assert ex.raw_box == boxed(clean_text(text, tokens))
    if ex.answer is not None:
        assert ex.answer == normalize(family, ex.raw_box)
    without_family = diagnose(text, finish_reason=finish, special_tokens=tokens)
    if ex.diagnosis is Diagnosis.INVALID_ANSWER:
        assert without_family is Diagnosis.OK
    else:
        assert without_family is ex.diagnosis


@given(any_text)
def test_every_helper_accepts_arbitrary_text(text) -> None:
    assert boxed(text) is None or isinstance(boxed(text), str)
    assert isinstance(is_repetition_loop(text), bool)
    for value in (gsm8k_final_answer(text), math_solution_answer(text), normalize_math(text)):
        assert value is None or (isinstance(value, str) and value)
    assert choice_label(text) in (None, *CHOICE_LABELS)
    assert yes_no_label(text) in (None, "yes", "no")
    number = math_number(text)
    assert number is None or isinstance(number, Fraction)


@given(any_text, families)
def test_normalize_gives_a_canonical_answer_and_is_idempotent(text, family) -> None:
    answer = normalize(family, text)
    if answer is None:
        return
    if family == "multiple_choice":
        assert answer in CHOICE_LABELS
    elif family == "yes_no":
        assert answer in ("yes", "no")
    elif family == "math":
        assert answer and answer == answer.strip()
    assert normalize(family, answer) == answer


@given(box_free, balanced, box_free, st.sampled_from(["\\boxed", "\\fbox", "\\boxed ", "\\boxed\n"]))
def test_boxed_round_trips_any_brace_balanced_content(prefix, content, suffix, command) -> None:
    assert boxed(f"{prefix}{command}{{{content}}}{suffix}") == content


@given(balanced, balanced)
def test_a_later_box_wins(first, second) -> None:
    assert boxed(f"\\boxed{{{first}}} then \\boxed{{{second}}}") == second


@given(box_free, balanced)
def test_think_blocks_never_yield_an_answer(thought, content) -> None:
    assert boxed(f"<think>{thought}\\boxed{{0}}</think>\\boxed{{{content}}}") == content
    assert boxed(f"<think>{thought}\\boxed{{{content}}}") is None
    assert diagnose(f"<think>{thought}\\boxed{{{content}}}") is not Diagnosis.OK


@given(any_text, special_token_lists)
def test_clean_text_removes_every_marker_and_is_idempotent(text, tokens) -> None:
    cleaned = clean_text(text, tokens)
    assert "<|im_end|>" not in cleaned and "<|endoftext|>" not in cleaned
    assert clean_text(cleaned, tokens) == cleaned


@given(any_text, st.text(min_size=1, max_size=40), st.integers(min_value=0, max_value=3))
def test_any_unit_repeated_long_enough_is_a_loop(prefix, unit, extra) -> None:
    repeats = max(4, math.ceil(64 / len(unit))) + extra
    assert is_repetition_loop(prefix + unit * repeats)


# --- numbers --------------------------------------------------------------------------------------------------------


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_integers_with_thousands_separators_normalize_to_the_integer(n) -> None:
    for written in (f"{n:,}", f"{n:,}".replace(",", "{,}"), f"${n:,}$", f"{n}.0", f"{n:,} dollars"):
        assert normalize_math(written) == str(n), written
    assert math_equal(f"{n:,}", str(n))
    assert not math_equal(str(n), str(n + 1))


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**6, max_value=10**6))
def test_decimals_keep_their_exact_value(d: Decimal) -> None:
    assert math_number(format(d, "f")) == Fraction(d)


@given(st.fractions(min_value=-1000, max_value=1000, max_denominator=64))
def test_fractions_equal_their_terminating_decimals(q: Fraction) -> None:
    latex = f"\\frac{{{q.numerator}}}{{{q.denominator}}}" if q.denominator != 1 else str(q.numerator)
    assert math_number(latex) == q
    decimal = Decimal(q.numerator) / Decimal(q.denominator)
    if Fraction(decimal) == q:  # terminating decimal: exactly equal
        assert math_equal(format(decimal, "f"), latex)


@settings(max_examples=60)
@given(any_text, any_text)
def test_math_equal_never_raises_and_is_reflexive(pred, gold) -> None:
    assert math_equal(pred, gold) in (True, False)
    assert math_equal(pred, pred) is (normalize_math(pred) is not None)


# --- SQuAD ----------------------------------------------------------------------------------------------------------

WORDS = ["the", "a", "Normans", "France", "Rollo", "of", "10th", "Paris,", "é", ""]
words = st.lists(st.sampled_from(WORDS), max_size=5)
phrases = st.one_of(words.map(" ".join), st.text(max_size=12))


@given(phrases, phrases)
def test_squad_item_scores_are_ordered_and_symmetric(gold, pred) -> None:
    exact, f1 = squad_exact(gold, pred), squad_f1(gold, pred)
    assert exact in (0, 1) and 0.0 <= f1 <= 1.0
    assert exact <= f1  # an exact match has F1 1
    assert f1 == squad_f1(pred, gold)


@given(any_text)
def test_squad_normalization_is_idempotent(text) -> None:
    assert squad_normalize(squad_normalize(text)) == squad_normalize(text)


@given(st.lists(st.tuples(phrases, st.lists(phrases, max_size=3)), max_size=12))
def test_squad_v2_stays_in_range_and_subsets_add_up(rows) -> None:
    predictions, references = [p for p, _ in rows], [r for _, r in rows]
    result = squad_v2(predictions, references)
    assert result["total"] == len(rows)
    for key, value in result.items():
        assert not (isinstance(value, float) and math.isnan(value))
        if not key.endswith("total"):
            assert 0.0 <= value <= 100.0
    has, no = sum(1 for r in references if r), sum(1 for r in references if not r)
    assert ("HasAns_total" in result) == (has > 0) and ("NoAns_total" in result) == (no > 0)
    if rows:
        parts = result.get("HasAns_f1", 0.0) * has + result.get("NoAns_f1", 0.0) * no
        assert math.isclose(parts, result["f1"] * len(rows), rel_tol=1e-9, abs_tol=1e-9)


@given(st.lists(st.lists(phrases, max_size=3), min_size=1, max_size=20))
def test_all_empty_predictions_score_exactly_the_trivial_baseline(references) -> None:
    items = [Item("t", str(i), "span", "q", tuple(r)) for i, r in enumerate(references)]
    result = squad_v2([""] * len(items), references)
    baseline = trivial_baseline(items)
    assert math.isclose(result["f1"], 100 * baseline["f1"]) and math.isclose(result["exact"], 100 * baseline["exact"])
    assert matches_baseline(result["f1"], 100 * baseline["f1"], len(items), scale=100)


# --- scores, aggregation, baselines ---------------------------------------------------------------------------------


@st.composite
def items(draw, family=None):
    family = family or draw(families)
    if family == "multiple_choice":
        k = draw(st.integers(min_value=2, max_value=len(CHOICE_LABELS)))
        answers = (draw(st.sampled_from(CHOICE_LABELS[:k])),)
        return Item("t", "0", family, "q", answers, choices=tuple("x" * k))
    if family == "yes_no":
        return Item("t", "0", family, "q", (draw(st.sampled_from(["yes", "no"])),))
    if family == "span":
        return Item("t", "0", family, "q", tuple(draw(st.lists(phrases, max_size=3))))
    gold = draw(st.one_of(st.integers(-10**6, 10**6).map(str), st.sampled_from(["\\frac{1}{2}", "\\pi", "x+1"])))
    return Item("t", "0", family, "q", (gold,))


@settings(max_examples=80)
@given(items(), any_text, finish_reasons)
def test_score_never_raises_and_stays_in_range(item, text, finish) -> None:
    s = score(item, extract(text, item.family, finish_reason=finish))
    assert 0.0 <= s.score <= 1.0 and s.correct in (True, False)
    assert s.abs_diff is None or (math.isfinite(s.abs_diff) and s.abs_diff >= 0)
    assert s.scored == (s.diagnosis is Diagnosis.OK)


unit_floats = st.floats(min_value=0.0, max_value=1.0)
item_scores = st.builds(
    lambda family, scored, value, diag, diff, unanswerable: ItemScore(
        family,
        value if scored else 0.0,
        scored and value == 1.0,
        scored,
        Diagnosis.OK if scored else diag,
        f1=(value if scored else 0.0) if family == "span" else None,
        abs_diff=diff if family == "math" and scored else None,
        unanswerable=unanswerable and family == "span",
    ),
    families,
    st.booleans(),
    unit_floats,
    st.sampled_from([d for d in Diagnosis if d is not Diagnosis.OK]),
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.7e308)),
    st.booleans(),
)


@given(families, st.data())
def test_aggregation_of_any_list_never_yields_nan(family, data) -> None:
    scores = data.draw(st.lists(item_scores.filter(lambda s: s.family == family), max_size=30))
    metrics = aggregate(scores, family)
    answered = sum(s.scored for s in scores)
    for name, m in metrics.items():
        assert m.value is None or math.isfinite(m.value)
        assert 0 <= m.n_scored <= m.n
        assert m.extraction_rate is None or 0.0 <= m.extraction_rate <= 1.0
        if name == "avg_abs_diff":
            assert (m.value is None) == (m.n_scored == 0)
            assert m.value is None or m.value >= 0
        else:
            assert m.value is None or 0.0 <= m.value <= 1.0
            if not name.startswith(("HasAns", "NoAns")):
                assert m.n == len(scores) and m.n_scored == answered
                assert (m.value is None) == (answered == 0)
        assert m.defined == (m.value is not None)
        assert (m.reason == "") == m.defined


@given(st.lists(items(), min_size=1, max_size=25).filter(lambda xs: len({x.family for x in xs}) == 1))
def test_the_trivial_strategy_scores_exactly_the_trivial_baseline(xs) -> None:
    family = xs[0].family
    baseline = trivial_baseline(xs)
    assert all(0.0 <= v <= 1.0 for v in baseline.values())
    if family == "span":
        response = lambda item: "\\boxed{}"  # noqa: E731
        key = "f1"
    elif family == "yes_no":
        majority = "yes" if sum(x.answers[0] == "yes" for x in xs) * 2 >= len(xs) else "no"
        response, key = (lambda item: f"\\boxed{{{majority}}}"), "accuracy"
    elif family == "multiple_choice":
        letters = [x.answers[0] for x in xs]
        top = max(set(letters), key=letters.count)
        response, key = (lambda item: f"\\boxed{{{top}}}"), "accuracy_most_frequent"
    else:
        response, key = (lambda item: ""), "accuracy"
    scores = [score(x, extract(response(x), family)) for x in xs]
    value = aggregate(scores, family)[PRIMARY_METRIC[family]].value or 0.0
    assert math.isclose(value, baseline[key], abs_tol=1e-12)


@given(unit_floats, unit_floats, st.integers(min_value=1, max_value=10**6))
def test_matches_and_beats_are_exclusive_and_beats_means_above(value, baseline, n) -> None:
    matches, beats = matches_baseline(value, baseline, n), beats_baseline(value, baseline, n)
    assert not (matches and beats)
    if beats:
        assert value > baseline
    assert baseline_tolerance(baseline, n) >= 1 / n
    assert matches_baseline(baseline, baseline, n)
