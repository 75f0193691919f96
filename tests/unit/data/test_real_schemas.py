"""The gold parsers and metrics on the real dataset samples in /work/shared/data (skipped when absent).

Each test reads the rows in their original schema and checks that every gold answer normalizes, and that a response
that states the gold answer in the expected format scores as correct through extract -> score -> aggregate.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from evalkit.core.boxes import boxed
from evalkit.core.extract import Diagnosis, extract
from evalkit.core.normalize import choice_label, gsm8k_final_answer, math_solution_answer, normalize_math, squad_gold_answers, yes_no_label
from evalkit.core.baselines import baseline_comparisons, trivial_baseline
from evalkit.core.metrics import aggregate
from evalkit.core.scoring import math_equal, score, squad_v2
from evalkit.core.types import CHOICE_LABELS, Item


def test_gsm8k_final_answers_are_integers_without_separators(dataset) -> None:
    rows = dataset("gsm8k/gsm8k_test_sample.jsonl")
    golds = [gsm8k_final_answer(r["answer"]) for r in rows]
    assert all(g is not None and re.fullmatch(r"-?\d+", g) for g in golds)
    finals = [r["answer"].rpartition("####")[2].strip() for r in rows]
    separated = [(raw, gold) for raw, gold in zip(finals, golds) if "," in raw]
    assert separated, "the sample documents '#### 1,600'-style answers"
    for raw, gold in separated:
        assert gold == raw.replace(",", "") and math_equal(raw, gold)


def test_gsm8k_a_boxed_gold_scores_correct_and_an_off_by_one_does_not(dataset) -> None:
    rows = dataset("gsm8k/gsm8k_test_sample.jsonl")
    items = [Item("gsm8k", str(i), "math", r["question"], (gsm8k_final_answer(r["answer"]),))
             for i, r in enumerate(rows)]
    right = aggregate([score(it, extract(f"So \\boxed{{{it.answers[0]}}}.", "math")) for it in items], "math")
    wrong = aggregate([score(it, extract(f"\\boxed{{{int(it.answers[0]) + 1}}}", "math")) for it in items], "math")
    assert right["accuracy"].value == 1.0 and right["avg_abs_diff"].value == 0.0
    assert wrong["accuracy"].value == 0.0 and wrong["avg_abs_diff"].value == 1.0
    assert wrong["avg_abs_diff"].n_scored == len(items)


def test_math_solutions_box_their_answer_and_normalizing_keeps_its_meaning(dataset) -> None:
    """MATH has no answer field: the gold is the solution's last \\boxed{}. Normalizing it (units, degrees, \\text,
    thousands separators, \\dfrac) must not change what Math-Verify reads in it."""
    from math_verify import parse, verify

    rows = dataset("math/math_test_sample.jsonl")
    for row in rows:
        raw = boxed(row["solution"])
        gold = math_solution_answer(row["solution"])
        assert raw is not None and gold is not None, row["unique_id"]
        assert verify(parse(f"\\boxed{{{raw}}}"), parse(f"\\boxed{{{gold}}}")), (row["unique_id"], raw, gold)
        # The reference solution, read as a model response, is a correct one.
        item = Item("math", row["unique_id"], "math", row["problem"], (gold,))
        assert score(item, extract(row["solution"], "math")).correct, row["unique_id"]


def test_openmath_expected_answers_normalize_and_match_the_generated_solutions(dataset) -> None:
    rows = dataset("math/openmathinstruct2_train_sample.jsonl")
    items = [Item("openmath", str(i), "math", r["problem"], (normalize_math(r["expected_answer"]),))
             for i, r in enumerate(rows)]
    assert all(item.answers[0] for item in items)
    scores = [score(item, extract(r["generated_solution"], "math")) for item, r in zip(items, rows)]
    assert Counter(s.diagnosis for s in scores) == {Diagnosis.OK: len(rows)}
    wrong = [(r["expected_answer"], boxed(r["generated_solution"])) for r, s in zip(rows, scores) if not s.correct]
    assert wrong == []


@pytest.mark.parametrize("split", ["arc_challenge", "arc_easy"])
def test_arc_labels_map_to_letters_including_the_numeric_nysedregents_rows(dataset, split: str) -> None:
    rows = dataset(f"arc/{split}_test_sample.jsonl")
    numeric = [r for r in rows if r["answerKey"].isdigit()]
    assert numeric and all(r["id"].startswith("NYSEDREGENTS") for r in numeric)
    items = []
    for r in rows:
        labels = [choice_label(c["label"]) for c in r["question"]["choices"]]
        assert "".join(labels) == CHOICE_LABELS[: len(labels)], r["id"]
        gold = choice_label(r["answerKey"])
        assert gold in labels, r["id"]
        items.append(Item(split, r["id"], "multiple_choice", r["question"]["stem"], (gold,),
                          choices=tuple(c["text"] for c in r["question"]["choices"])))
    assert all(choice_label(r["answerKey"]) == "ABCD"[int(r["answerKey"]) - 1] for r in numeric)
    responses = [f"\\boxed{{({it.answers[0]})}}" for it in items]
    right = aggregate([score(it, extract(r, "multiple_choice")) for it, r in zip(items, responses)], "multiple_choice")
    assert right["accuracy"].value == 1.0
    baseline = trivial_baseline(items)
    letters = Counter(it.answers[0] for it in items)
    assert baseline["accuracy_most_frequent"] == max(letters.values()) / len(items)
    assert baseline["accuracy"] >= baseline["accuracy_chance"] > 0.2


def test_boolq_labels_and_the_majority_baseline(dataset) -> None:
    rows = dataset("boolq/boolq_dev_sample.jsonl")
    items = [Item("boolq", str(i), "yes_no", r["question"], (yes_no_label(r["answer"]),), context=r["passage"])
             for i, r in enumerate(rows)]
    share_true = sum(r["answer"] is True for r in rows) / len(rows)
    assert trivial_baseline(items) == {"accuracy": max(share_true, 1 - share_true)}
    always_yes = aggregate([score(it, extract("\\boxed{Yes}", "yes_no")) for it in items], "yes_no")["accuracy"]
    assert always_yes.value == pytest.approx(share_true)


class TestSquadV2:
    @pytest.fixture()
    def rows(self, dataset):
        return dataset("squad_v2/squad_v2_dev_sample.jsonl")

    def test_unanswerable_rows_have_no_gold_answers(self, rows) -> None:
        references = [squad_gold_answers(r["answers"]) for r in rows]
        assert all(ref is not None for ref in references)
        assert [not ref for ref in references] == [r["is_impossible"] for r in rows]

    def test_all_empty_predictions_score_the_unanswerable_share_and_equal_the_trivial_baseline(self, rows) -> None:
        """The seed's constant 50.0, on real rows: doing nothing scores the share of unanswerable questions."""
        references = [list(squad_gold_answers(r["answers"])) for r in rows]
        share = sum(r["is_impossible"] for r in rows) / len(rows)
        official = squad_v2([""] * len(rows), references)
        assert official["f1"] == pytest.approx(100 * share) and official["exact"] == pytest.approx(100 * share)
        assert official["HasAns_f1"] == 0.0 and official["NoAns_f1"] == 100.0

        items = [Item("squad_v2", r["id"], "span", r["question"], squad_gold_answers(r["answers"]),
                      context=r["context"]) for r in rows]
        metrics = aggregate([score(it, extract("\\boxed{}<|im_end|>", "span")) for it in items], "span")
        assert metrics["f1"].value == pytest.approx(share)
        verdict = baseline_comparisons(metrics, trivial_baseline(items))
        assert verdict["f1"].matches and not verdict["f1"].beats
        assert verdict["f1"].message.startswith(f"f1 = {share:.4g} equals the trivial baseline")

    def test_gold_answers_score_100_and_plausible_answers_score_0_on_unanswerable_rows(self, rows) -> None:
        references = [list(squad_gold_answers(r["answers"])) for r in rows]
        assert squad_v2([ref[0] if ref else "" for ref in references], references)["f1"] == 100.0
        plausible = [r["plausible_answers"][0]["text"] if r["is_impossible"] else r["answers"]["text"][0] for r in rows]
        result = squad_v2(plausible, references)
        assert result["NoAns_f1"] == 0.0 and result["HasAns_f1"] == 100.0
