"""Example tests for evalkit.core.metrics and evalkit.core.baselines, and the seed report's three symptoms reproduced.

The seed (/work/shared/seed/quantized_model_debug_report.md) saw F1 = 0, avg_abs_diff = NaN and a constant SQuAD
F1 = 50.0 and concluded the evaluator was fine. `TestSeedSymptoms` shows what each number really was, and what
evalkit reports instead.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from evalkit.core.baselines import baseline_tolerance, compare_with_baseline
from evalkit.core.extract import Diagnosis, extract
from evalkit.core.baselines import baseline_comparisons, beats_baseline, matches_baseline, trivial_baseline
from evalkit.core.metrics import ItemScore, Metric, PRIMARY_METRIC, aggregate, diagnosis_counts
from evalkit.core.scoring import math_equal, score, squad_exact, squad_f1, squad_v2
from evalkit.core.types import FAMILIES, Item

# --- SQuAD v2.0: the official script's definitions ------------------------------------------------------------------

SQUAD_ITEM_CASES = [
    # (gold, pred, exact, f1, why) -- values worked by hand from evaluate-v2.0.py
    ("Normandy", "Normandy", 1, 1.0, "identical"),
    ("the Normans", "Normans.", 1, 1.0, "articles and punctuation are normalized away"),
    ("Rollo of Normandy", "Rollo", 0, 0.5, "P=1, R=1/3 -> F1=0.5"),
    ("10th and 11th centuries", "in the 10th century", 0, 0.2857142857142857, "P=1/3, R=1/4 -> 2/7"),
    ("France", "Paris", 0, 0.0, "no overlap"),
    ("", "", 1, 1.0, "no-answer gold, no-answer prediction"),
    ("", "France", 0, 0.0, "no-answer gold, an answer"),
    ("France", "", 0, 0.0, "an answer gold, no-answer prediction"),
    ("", "the", 1, 1.0, "a prediction that normalizes to nothing is a no-answer"),
    ("a b a", "b", 1, 1.0, "articles vanish: gold normalizes to 'b'"),
    ("a b a", "a", 0, 0.0, "a prediction of only an article is a no-answer, the gold is not"),
]


@pytest.mark.parametrize(("gold", "pred", "exact", "f1", "why"), SQUAD_ITEM_CASES, ids=[c[4] for c in SQUAD_ITEM_CASES])
def test_squad_item_scores(gold: str, pred: str, exact: int, f1: float, why: str) -> None:
    assert squad_exact(gold, pred) == exact
    assert squad_f1(gold, pred) == pytest.approx(f1)


def test_squad_v2_keys_scale_and_subsets() -> None:
    result = squad_v2(["France", "", "Rollo", "something"], [["France", "France"], [], ["Rollo of Normandy"], []])
    assert result == {
        "exact": 50.0,
        "f1": pytest.approx(62.5),
        "total": 4,
        "HasAns_exact": 50.0,
        "HasAns_f1": pytest.approx(75.0),
        "HasAns_total": 2,
        "NoAns_exact": 50.0,
        "NoAns_f1": 50.0,
        "NoAns_total": 2,
    }


def test_squad_v2_takes_the_max_over_gold_answers_and_ignores_golds_that_normalize_to_nothing() -> None:
    assert squad_v2(["Rollo"], [["Rollo of Normandy", "Rollo"]])["f1"] == 100.0
    # The official script drops gold answers that normalize to "", and with none left the question is treated as
    # unanswerable (gold [""]) although it is counted in HasAns (its reference list is not empty).
    result = squad_v2([""], [["The"]])
    assert result["f1"] == 100.0 and result["HasAns_total"] == 1


def test_squad_v2_absent_subsets_are_absent_not_zero() -> None:
    only_answerable = squad_v2(["France"], [["France"]])
    assert "NoAns_f1" not in only_answerable and "NoAns_total" not in only_answerable
    only_unanswerable = squad_v2([""], [[]])
    assert "HasAns_f1" not in only_unanswerable
    assert squad_v2([], []) == {"total": 0}


def test_squad_v2_rejects_mismatched_inputs_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 reference lists"):
        squad_v2(["a", "b"], [["a"]])
    with pytest.raises(TypeError, match="prediction 0 is NoneType.*use '' for 'no answer'"):
        squad_v2([None], [["a"]])  # type: ignore[list-item]


# --- math_equal -----------------------------------------------------------------------------------------------------

MATH_EQUAL_CASES = [
    # (pred, gold, expected, source)
    ("3.0", "3", True, "issue: trailing zero"),
    ("1,000", "1000", True, "issue: thousands separator"),
    ("1{,}000", "1000", True, "LaTeX thousands separator"),
    ("\\frac{1}{2}", "0.5", True, "issue: fraction vs decimal"),
    ("0.75", "\\dfrac{3}{4}", True, "dfrac vs decimal"),
    ("\\frac34", "0.75", True, "brace-less fraction"),
    ("1/3", "\\frac{1}{3}", True, "slash fraction"),
    ("50\\%", "50", True, "issue: percent"),
    ("\\$18", "18", True, "issue: dollars"),
    ("5 \\text{ cm}", "5", True, "issue: units"),
    ("18 dollars", "18", True, "unit words"),
    ("x = 5", "5", True, "assignment"),
    ("\\sqrt{4}", "2", True, "Math-Verify: evaluates"),
    ("(x+1)^2", "x^2+2x+1", True, "Math-Verify: symbolic"),
    ("2\\frac12", "\\frac52", True, "Math-Verify: mixed number"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)", True, "MATH tuple"),
    ("\\text{Evelyn}", "evelyn", True, "text answers compare case-folded"),
    ("4 \\times \\binom{7}{3} \\times \\binom{7}{2}", "2940", True, "OpenMath: a binomial product"),
    ("3.14", "3.14159", False, "issue: strict on precision"),
    ("3.14159", "3.14", False, "issue: either way"),
    ("-5", "5", False, "the sign matters"),
    ("1000001", "1000000", False, "off by one"),
    ("0.33", "\\frac13", False, "too coarse"),
    ("(1,2)", "(2,1)", False, "ordered tuple"),
    ("\\text{seat}", "\\text{east}", False, "sympy would read both as the product e*a*s*t"),
    ("banana", "5", False, "a word is not a number"),
    ("", "", False, "empty equals nothing"),
    ("", "0", False, "empty is not zero"),
    ("0", "", False, "nothing is not zero"),
]


@pytest.mark.parametrize(("pred", "gold", "expected", "source"), MATH_EQUAL_CASES, ids=[c[3] for c in MATH_EQUAL_CASES])
def test_math_equal(pred: str, gold: str, expected: bool, source: str) -> None:
    assert math_equal(pred, gold) is expected


def test_math_equal_works_off_the_main_thread() -> None:
    """Math-Verify's timeouts use signals, which only work on the main thread; math_equal must not raise there."""
    cases = [(p, g) for p, g, _, _ in MATH_EQUAL_CASES] + [("\\sqrt{9}", "3"), ("x^2 - 1", "(x-1)(x+1)")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        in_threads = list(pool.map(lambda c: math_equal(*c), cases))
    assert in_threads == [math_equal(p, g) for p, g in cases]
    assert threading.current_thread() is threading.main_thread()


@pytest.mark.parametrize("pred", ["9^{9^{9^{9}}}", "10^{100000000}", "100000!", "2^2^2^2^2", "\\binom{100000}{50000}"])
def test_math_equal_skips_inputs_that_stall_sympy_even_in_a_thread(pred: str) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(math_equal, pred, "1").result(timeout=30) is False


def test_math_equal_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="compares strings"):
        math_equal(3, "3")  # type: ignore[arg-type]


# --- per-item scores ------------------------------------------------------------------------------------------------


def _item(family: str, answers: tuple[str, ...], **kw) -> Item:
    if family == "multiple_choice":
        kw.setdefault("choices", ("w", "x", "y", "z"))
    return Item("t", "0", family, "q", answers, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("family", "answers", "response", "correct", "value", "scored"),
    [
        ("multiple_choice", ("C",), "\\boxed{C}", True, 1.0, True),
        ("multiple_choice", ("C",), "\\boxed{(c)}", True, 1.0, True),
        ("multiple_choice", ("C",), "\\boxed{B}", False, 0.0, True),
        ("multiple_choice", ("C",), "\\boxed{banana}", False, 0.0, False),
        ("yes_no", ("yes",), "\\boxed{True}", True, 1.0, True),
        ("yes_no", ("no",), "\\boxed{Yes}", False, 0.0, True),
        ("math", ("1600",), "\\boxed{1,600}", True, 1.0, True),
        ("math", ("1600",), "\\boxed{1590}", False, 0.0, True),
        ("math", ("1600",), "1600", False, 0.0, False),
        ("span", ("Rollo of Normandy", "Rollo"), "\\boxed{Rollo}", True, 1.0, True),
        ("span", ("Rollo of Normandy",), "\\boxed{Rollo}", False, 0.5, True),
        ("span", (), "\\boxed{}", True, 1.0, True),
        ("span", (), "\\boxed{Paris}", False, 0.0, True),
        ("span", (), "I cannot tell.", False, 0.0, False),  # a missing box is not the empty answer
    ],
)
def test_score(family, answers, response, correct, value, scored) -> None:
    s = score(_item(family, answers), extract(response, family))
    assert (s.correct, s.score, s.scored) == (correct, pytest.approx(value), scored)
    assert s.exact == float(correct)
    assert (s.f1 is not None) == (family == "span")


def test_score_abs_diff_only_when_both_sides_are_numbers() -> None:
    item = _item("math", ("1600",))
    assert score(item, extract("\\boxed{\\$1,590}", "math")).abs_diff == 10.0
    assert score(item, extract("\\boxed{-\\frac{1}{2}}", "math")).abs_diff == 1600.5
    assert score(item, extract("\\boxed{\\sqrt{2}}", "math")).abs_diff is None
    assert score(item, extract("no box", "math")).abs_diff is None
    assert score(_item("math", ("\\pi",)), extract("\\boxed{3}", "math")).abs_diff is None
    huge = "9" * 350  # float(|huge - 1600|) overflows: undefined, never inf
    assert score(item, extract(f"\\boxed{{{huge}}}", "math")).abs_diff is None


def test_item_score_rejects_nan_and_out_of_range_values() -> None:
    with pytest.raises(ValueError, match=r"score must be in \[0, 1\], got nan"):
        ItemScore("math", math.nan, False, True, Diagnosis.OK)
    with pytest.raises(ValueError, match="abs_diff must be a finite"):
        ItemScore("math", 0.0, False, True, Diagnosis.OK, abs_diff=math.inf)
    with pytest.raises(ValueError, match="unscored"):
        ItemScore("math", 1.0, True, False, Diagnosis.NO_BOX)


# --- aggregation ----------------------------------------------------------------------------------------------------


def _scores(family: str, gold_and_responses: list[tuple[tuple[str, ...], str]]) -> list[ItemScore]:
    return [score(_item(family, gold), extract(resp, family)) for gold, resp in gold_and_responses]  # type: ignore


def test_aggregate_counts_unanswered_items_as_wrong_and_reports_the_extraction_rate() -> None:
    responses = [(("A",), "\\boxed{A}"), (("B",), "\\boxed{A}"), (("C",), "no box"), (("D",), "")]
    scores = _scores("multiple_choice", responses)
    m = aggregate(scores, "multiple_choice")["accuracy"]
    assert (m.value, m.n, m.n_scored, m.extraction_rate, m.defined) == (0.25, 4, 2, 0.5, True)


def test_aggregate_metric_names_per_family() -> None:
    assert set(aggregate([], "math")) == {"accuracy", "avg_abs_diff"}
    assert set(aggregate([], "multiple_choice")) == {"accuracy"}
    assert set(aggregate([], "yes_no")) == {"accuracy"}
    assert set(aggregate([], "span")) == {"exact", "f1"}
    for family in FAMILIES:
        assert PRIMARY_METRIC[family] in aggregate([], family)


def test_aggregate_of_nothing_is_undefined_not_nan() -> None:
    for family in FAMILIES:
        for m in aggregate([], family).values():
            assert m.value is None and not m.defined and m.n == 0 and m.extraction_rate is None
            assert m.reason == "no items"


def test_aggregate_span_subsets_follow_the_official_names_and_are_absent_when_empty() -> None:
    scores = _scores("span", [(("France",), "\\boxed{France}"), ((), "\\boxed{France}"), ((), "\\boxed{}")])
    m = aggregate(scores, "span")
    assert m["f1"].value == pytest.approx(2 / 3)
    assert m["HasAns_f1"].value == 1.0 and m["HasAns_f1"].n == 1
    assert m["NoAns_exact"].value == 0.5 and m["NoAns_exact"].n == 2
    assert "NoAns_f1" not in aggregate(scores[:1], "span")


def test_aggregate_avg_abs_diff_is_over_numeric_items_with_their_count() -> None:
    scores = _scores("math", [(("10",), r) for r in ["\\boxed{12}", "\\boxed{7}", "\\boxed{x}", ""]])
    m = aggregate(scores, "math")
    assert m["avg_abs_diff"].value == 2.5 and m["avg_abs_diff"].n_scored == 2 and m["avg_abs_diff"].n == 4
    assert m["accuracy"].value == 0.0 and m["accuracy"].n_scored == 3


def test_aggregate_avg_abs_diff_does_not_overflow() -> None:
    big = ItemScore("math", 0.0, False, True, Diagnosis.OK, abs_diff=1.5e308)
    m = aggregate([big, big], "math")["avg_abs_diff"]
    assert m.value == 1.5e308


def test_aggregate_rejects_a_mixed_task() -> None:
    with pytest.raises(ValueError, match="one task at a time"):
        aggregate(_scores("math", [(("1",), "\\boxed{1}")]), "span")


def test_metric_never_holds_nan() -> None:
    with pytest.raises(ValueError, match="finite or None"):
        Metric("accuracy", math.nan, 1, 1, 1.0)
    with pytest.raises(ValueError, match="n_scored <= n"):
        Metric("accuracy", 0.5, 1, 2, 1.0)


def test_diagnosis_counts_most_frequent_first() -> None:
    scores = _scores("math", [(("1",), ""), (("1",), "x"), (("1",), "y"), (("1",), "\\boxed{1}")])
    assert diagnosis_counts(scores) == {"no_box": 2, "empty": 1, "ok": 1}


# --- trivial baselines ----------------------------------------------------------------------------------------------


def test_trivial_baselines_per_family() -> None:
    span = [_item("span", () if i < 3 else ("Paris",)) for i in range(4)]
    assert trivial_baseline(span) == {"exact": 0.75, "f1": 0.75}
    yes_no = [_item("yes_no", (a,)) for a in ["yes", "no", "no", "no", "yes"]]
    assert trivial_baseline(yes_no) == {"accuracy": 0.6}
    mc = [_item("multiple_choice", (a,)) for a in "AAAB"] + [_item("multiple_choice", ("A",), choices=("x", "y"))]
    assert trivial_baseline(mc) == {
        "accuracy": 0.8, "accuracy_chance": pytest.approx((4 * 0.25 + 0.5) / 5), "accuracy_most_frequent": 0.8
    }
    mc_balanced = [_item("multiple_choice", (a,)) for a in "ABCD"]
    assert trivial_baseline(mc_balanced)["accuracy"] == 0.25
    assert trivial_baseline([_item("math", ("0",))] * 3) == {"accuracy": 0.0}
    assert trivial_baseline([]) == {}


def test_trivial_baseline_needs_one_family() -> None:
    with pytest.raises(ValueError, match="one family"):
        trivial_baseline([_item("math", ("1",)), _item("yes_no", ("yes",))])


@pytest.mark.parametrize(
    ("value", "baseline", "n", "matches", "beats"),
    [
        (0.5, 0.5, 300, True, False),
        (0.54, 0.5, 300, True, False),  # inside 1.645 standard errors (0.047)
        (0.56, 0.5, 300, False, True),
        (0.40, 0.5, 300, False, False),  # below: worse than doing nothing
        (0.0033, 0.0, 300, True, False),  # one item above a zero baseline is still noise
        (0.01, 0.0, 300, False, True),
        (0.6, 0.5, 10, True, False),  # small n, wide band
        (None, 0.5, 300, False, False),  # undefined never beats and never "matches"
        (0.9, 0.5, 0, False, False),  # no items: nothing to compare
    ],
)
def test_matches_and_beats_baseline_are_sample_size_aware(value, baseline, n, matches, beats) -> None:
    assert matches_baseline(value, baseline, n) is matches
    assert beats_baseline(value, baseline, n) is beats


def test_baseline_tolerance_scales_for_0_to_100_values() -> None:
    assert baseline_tolerance(50.0, 300, scale=100) == pytest.approx(100 * baseline_tolerance(0.5, 300))
    assert matches_baseline(50.0, 50.0, 300, scale=100)
    assert compare_with_baseline("f1", None, 0.5, 300).message.startswith("f1 is undefined")
    assert "is below the trivial baseline" in compare_with_baseline("accuracy", 0.1, 0.6, 300).message


# --- the seed report's three symptoms -------------------------------------------------------------------------------


class TestSeedSymptoms:
    def test_constant_squad_f1_50_is_the_all_empty_baseline_on_a_half_unanswerable_set(self) -> None:
        """Seed: "Squad F1: unusual consistent value of 50.0". On a set that is half unanswerable, answering nothing
        scores exactly 50.0 under the official SQuAD v2 definition, for every model. evalkit reports the 50.0 and
        says it equals the trivial baseline."""
        items = [_item("span", () if i % 2 else ("the Normans",)) for i in range(300)]
        official = squad_v2([""] * 300, [list(item.answers) for item in items])
        assert official["f1"] == 50.0 and official["exact"] == 50.0
        assert official["HasAns_f1"] == 0.0 and official["NoAns_f1"] == 100.0

        baseline = trivial_baseline(items)
        assert baseline["f1"] == 0.5
        metrics = aggregate([score(item, extract("\\boxed{}", "span")) for item in items], "span")
        assert metrics["f1"].value == 0.5 and metrics["f1"].extraction_rate == 1.0
        verdict = baseline_comparisons(metrics, baseline)["f1"]
        assert verdict.matches and not verdict.beats
        assert "equals the trivial baseline" in verdict.message
        assert matches_baseline(official["f1"], 100 * baseline["f1"], 300, scale=100)

    def test_empty_responses_do_not_score_50_on_squad(self) -> None:
        """The seed's models produced *empty* responses, which its evaluator turned into "" answers. In evalkit a
        missing box is not the empty answer: the metric is undefined and every response is diagnosed."""
        items = [_item("span", () if i % 2 else ("the Normans",)) for i in range(20)]
        metrics = aggregate([score(item, extract("", "span")) for item in items], "span")
        assert metrics["f1"].value is None and metrics["f1"].extraction_rate == 0.0
        assert metrics["f1"].reason == "no answer extracted from any of the 20 responses (empty: 20)"
        assert not baseline_comparisons(metrics, trivial_baseline(items))["f1"].beats

    def test_avg_abs_diff_without_numeric_answers_is_undefined_with_zero_scored_not_nan(self) -> None:
        """Seed: "Average Absolute Difference: None (-> NaN in aggregation)". A mean over zero numbers is undefined;
        evalkit says so, with n_scored = 0, instead of NaN."""
        item = _item("math", ("1600",))
        for responses in (["", "", ""], ["no box"] * 3, ["\\boxed{\\sqrt{2}}"] * 3):
            m = aggregate([score(item, extract(r, "math")) for r in responses], "math")["avg_abs_diff"]
            assert m.value is None and m.n_scored == 0 and m.n == 3 and not m.defined
            assert m.reason == "no item has a numeric answer and a numeric gold (0 of 3)"

    def test_f1_zero_from_missing_boxes_is_diagnosed_as_no_box(self) -> None:
        """Seed: "F1 Scores: consistently 0.0 ... Extracted: None". The answers were there in plain text, without
        \\boxed{}; scoring them as 0 hides that. evalkit diagnoses every response as no_box and leaves F1 undefined."""
        items = [_item("span", ("France",)) for _ in range(5)]
        responses = ["The Normans lived in France."] * 5
        scores = [score(item, extract(r, "span")) for item, r in zip(items, responses)]
        assert {s.diagnosis for s in scores} == {Diagnosis.NO_BOX}
        m = aggregate(scores, "span")["f1"]
        assert m.value is None and "no_box: 5" in m.reason
        assert Diagnosis.NO_BOX.explain.startswith("the response has text but no \\boxed{} answer")


def test_the_metric_registry_is_the_one_source_of_metrics() -> None:
    """Per family, the metrics, their order and the primary metric all come from `METRICS`."""
    from evalkit.core.metrics import METRICS, paired_metrics

    assert METRICS.names() == ("accuracy", "exact", "f1", "avg_abs_diff")
    assert paired_metrics() == ("accuracy", "exact", "f1")
    assert PRIMARY_METRIC == {"math": "accuracy", "multiple_choice": "accuracy", "yes_no": "accuracy", "span": "f1"}
    for family in ("math", "multiple_choice", "yes_no", "span"):
        scores = [ItemScore(family, 0.0, False, False, Diagnosis.NO_BOX)]
        assert list(aggregate(scores, family))[: len([s for s in METRICS.values() if family in s.families])] == [
            s.name for s in METRICS.values() if family in s.families]


def test_adding_a_metric_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered metric is aggregated for its families and reported by the trivial baseline."""
    from evalkit.core import metrics

    spec = metrics.MetricSpec("answered", ("yes_no",), lambda s: s.score, paired=False)
    monkeypatch.setitem(metrics.METRICS._entries, "answered", spec)
    items = [Item("t", str(i), "yes_no", "q", ("yes",)) for i in range(4)]
    out = aggregate([score(it, extract("\\boxed{yes}", "yes_no")) for it in items], "yes_no")
    assert out["answered"].value == 1.0 and out["answered"].n == 4
    assert trivial_baseline(items) == {"accuracy": 1.0, "answered": 1.0}
