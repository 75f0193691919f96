"""evalkit.tasks: the real datasets in their official schemas, the zoo tasks, sampling and clear row errors.

Cases "from the samples" read /work/shared/data (skipped when absent); the facts checked are the ones each
SOURCE.md documents (numeric ARC labels, 5-choice rows, SQuAD's unanswerable half, GSM8K thousands separators).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.data.tasks import TASKS, Task, TaskError, load_task, sample
from evalkit.core.types import Item

# --- from the samples (SOURCE.md facts) ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, n, family", [
    ("arc_challenge", 150, "multiple_choice"), ("arc_easy", 150, "multiple_choice"), ("boolq", 300, "yes_no"),
    ("squad_v2", 300, "span"), ("gsm8k", 300, "math"), ("math", 300, "math"), ("openmath", 300, "math"),
])
def test_every_real_task_loads_from_the_data_folder(data_dir, name, n, family):
    task = load_task(name, data_dir)
    assert (task.name, task.family, len(task.items)) == (name, family, n)
    assert len({i.id for i in task.items}) == n
    assert all(i.task == name and i.family == family for i in task.items)


def test_arc_numeric_labels_become_letters(data_dir, dataset):
    raw = {r["id"]: r for r in dataset("arc/arc_challenge_test_sample.jsonl")}
    numeric = [k for k, r in raw.items() if r["answerKey"].isdigit()]
    assert len(numeric) == 4  # SOURCE.md: 4 rows with labels "1"-"4" in the Challenge sample
    items = {i.id: i for i in load_task("arc_challenge", data_dir).items}
    for k in numeric:
        assert items[k].answers == ("ABCD"[int(raw[k]["answerKey"]) - 1],)
        assert items[k].choices == tuple(c["text"] for c in raw[k]["question"]["choices"])
    easy = load_task("arc_easy", data_dir).items
    five = [i for i in easy if len(i.choices) == 5]
    assert len(five) == 1 and five[0].answers == ("E",)  # SOURCE.md: one 5-choice row, answerKey "E"


def test_arc_gold_matches_source_distribution(data_dir):
    from collections import Counter

    golds = Counter(i.answers[0] for i in load_task("arc_challenge", data_dir).items)
    # SOURCE.md: A 32, B 34, C 46, D 34, "1" 2, "3" 2  ->  A 34, B 34, C 48, D 34
    assert golds == {"A": 34, "B": 34, "C": 48, "D": 34}


def test_squad_v2_unanswerable_half(data_dir):
    task = load_task("squad_v2", data_dir)
    assert sum(i.unanswerable for i in task.items) == 150
    assert task.trivial_baseline() == {"exact": 0.5, "f1": 0.5}  # the seed's mysterious constant 50.0


def test_boolq_majority_baseline(data_dir):
    task = load_task("boolq", data_dir)
    assert task.trivial_baseline() == {"accuracy": 0.6}  # SOURCE.md: 180 / 300 true
    assert dict(task.items[0].meta)["title"] == "Ethanol fuel"


def test_gsm8k_thousands_separators_removed(data_dir):
    golds = [i.answers[0] for i in load_task("gsm8k", data_dir).items]
    assert golds[0] == "18"
    assert "1600" in golds and "1450000" in golds and not any("," in g for g in golds)


def test_math_answer_from_solution_box_and_openmath_expected_answer(data_dir):
    math_items = load_task("math", data_dir).items
    assert math_items[0].id == "test/precalculus/807.json"
    assert math_items[0].answers == ("(3,\\frac{\\pi}{2})",)
    assert dict(math_items[0].meta) == {"level": "Level 2", "type": "Precalculus"}
    openmath = load_task("openmath", data_dir).items
    assert openmath[0].answers == ("45",) and dict(openmath[0].meta)["problem_source"] == "augmented_gsm8k"


def test_source_may_be_the_file_itself_or_the_env_folder(data_dir, monkeypatch):
    by_file = load_task("gsm8k", data_dir / "gsm8k" / "gsm8k_test_sample.jsonl", limit=5)
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(data_dir))
    assert load_task("gsm8k", limit=5).items == by_file.items


# --- sampling -----------------------------------------------------------------------------------------------------


def _items(n: int) -> list[Item]:
    return [Item("t", f"r{i}", "yes_no", f"q{i}", ("yes",)) for i in range(n)]


def test_limit_is_deterministic_nested_and_in_dataset_order():
    items = _items(50)
    a, b = sample(items, 10, seed=1), sample(items, 20, seed=1)
    assert a == sample(items, 10, seed=1) and set(a) <= set(b)
    assert [items.index(i) for i in a] == sorted(items.index(i) for i in a)
    assert sample(items, 10, seed=2) != a
    assert sample(items, 99) == tuple(items) and sample(items, None) == tuple(items)


def test_limit_is_stable_when_rows_are_appended():
    # picking by id hash: old rows chosen after rows were appended were chosen before too
    before = set(sample(_items(50), 10))
    after_old = {i for i in sample(_items(60), 10) if int(i.id[1:]) < 50}
    assert after_old <= before


def test_zoo_tasks_generate_limit_items():
    for name in ("zoo_math", "zoo_multiple_choice", "zoo_yes_no", "zoo_span"):
        task = load_task(name, limit=5, seed=3)
        assert len(task.items) == 5 and task.family == TASKS[name].family
        assert task.source == "synthetic:test:seed=3"
    assert load_task("zoo_math", limit=5).items == load_task("zoo_math", limit=8).items[:5]


def test_digest_changes_with_any_row():
    task = load_task("zoo_yes_no", limit=4)
    edited = Task(task.name, task.family, task.items[:3] + (_items(1)[0],), task.source)
    assert task.digest() == load_task("zoo_yes_no", limit=4).digest() != edited.digest()


# --- bad input: one clear error naming the thing -----------------------------------------------------------------


def _jsonl(tmp_path: Path, rows: list, name: str = "rows.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GSM_ROW = {"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}
ARC_ROW = {"id": "x1", "question": {"stem": "Pick", "choices": [{"text": "a", "label": "A"},
                                                                {"text": "b", "label": "B"}]}, "answerKey": "B"}


@pytest.mark.parametrize("task, row, needle", [
    ("gsm8k", {"question": "q"}, "row 1: field 'answer' is missing"),
    ("gsm8k", {"question": "q", "answer": "no final line"}, "row 1: field 'answer' has no '#### <final answer>'"),
    ("gsm8k", {"question": 3, "answer": "#### 4"}, "row 1: field 'question' is a int, expected str"),
    ("arc_challenge", {**ARC_ROW, "answerKey": "C"}, "field 'answerKey' is 'C', not one of the option labels 'AB'"),
    ("arc_challenge", {**ARC_ROW, "question": {"stem": "s", "choices": [{"text": "a", "label": "Q"}]}},
     "field 'choices' has an option with label 'Q'"),
    ("boolq", {"question": "q", "passage": "p", "answer": "maybe"}, "field 'answer' is 'maybe'"),
    ("squad_v2", {"id": "s", "context": "c", "question": "q", "answers": {"text": ["x"], "answer_start": [0]},
                  "is_impossible": True}, "field 'is_impossible' is True but the row has 1 answers"),
    ("math", {"problem": "p", "solution": "no box here"}, "field 'solution' has no \\boxed{}"),
    ("openmath", {"problem": "p", "expected_answer": ""}, "field 'expected_answer' is empty"),
])
def test_malformed_row_names_file_row_and_field(tmp_path, task, row, needle):
    path = _jsonl(tmp_path, [GSM_ROW if task == "gsm8k" else ARC_ROW if task == "arc_challenge" else row, row])
    if task not in ("gsm8k", "arc_challenge"):
        path = _jsonl(tmp_path, [row])
        needle = needle.replace("row 1", "row 0")
    with pytest.raises(TaskError) as err:
        load_task(task, path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_invalid_json_line_is_named(tmp_path):
    path = _jsonl(tmp_path, [GSM_ROW, "{not json"])
    with pytest.raises(TaskError, match=r"rows.jsonl:2: not valid JSON"):
        load_task("gsm8k", path)


@pytest.mark.parametrize("make, needle", [
    (lambda p: p / "missing.jsonl", "no such file"),
    (lambda p: _jsonl(p, []), "holds no rows"),
    (lambda p: _jsonl(p, [GSM_ROW], "rows.csv"), "unsupported file type '.csv'"),
    (lambda p: p, "is a folder without gsm8k/gsm8k_test_sample.jsonl"),
])
def test_missing_empty_or_unsupported_source(tmp_path, make, needle):
    with pytest.raises(TaskError, match=needle):
        load_task("gsm8k", make(tmp_path))


def test_duplicate_ids_rejected(tmp_path):
    with pytest.raises(TaskError, match="rows 0 and 1 share the id 'x1'"):
        load_task("arc_easy", _jsonl(tmp_path, [ARC_ROW, ARC_ROW]))


def test_unknown_task_lists_known_ones():
    with pytest.raises(TaskError, match="unknown task 'arc'; known tasks: arc_challenge, arc_easy"):
        load_task("arc")


def test_bad_limit():
    with pytest.raises(TaskError, match="limit must be >= 1"):
        load_task("zoo_math", limit=0)


# --- other official layouts ----------------------------------------------------------------------------------------


def test_hf_flattened_arc_and_superglue_boolq(tmp_path):
    arc = {"id": "h1", "question": "Pick one", "choices": {"text": ["x", "y", "z"], "label": ["1", "2", "3"]},
           "answerKey": "3"}
    item = load_task("arc_easy", _jsonl(tmp_path, [arc])).items[0]
    assert (item.question, item.choices, item.answers) == ("Pick one", ("x", "y", "z"), ("C",))
    sg = {"question": "q", "passage": "T -- p", "idx": 7, "label": "false"}
    item = load_task("boolq", _jsonl(tmp_path, [sg], "sg.jsonl")).items[0]
    assert (item.id, item.answers) == ("7", ("no",))


def test_squad_release_json_is_flattened(tmp_path):
    release = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "a", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}],
         "is_impossible": False},
        {"id": "b", "question": "Where is Rome?", "answers": [], "plausible_answers": [], "is_impossible": True},
    ]}]}]}
    path = tmp_path / "dev-v2.0.json"
    path.write_text(json.dumps(release))
    items = load_task("squad_v2", path).items
    assert [(i.id, i.answers, i.unanswerable) for i in items] == [("a", ("France",), False), ("b", (), True)]
    assert items[0].context == "Paris is in France."


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "gsm8k.parquet"
    pq.write_table(pa.Table.from_pylist([GSM_ROW, {**GSM_ROW, "answer": "#### 1,000"}]), path)
    assert [i.answers for i in load_task("gsm8k", path).items] == [("4",), ("1000",)]


def test_hf_name_offline_gives_one_clear_error(monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TaskError, match=r"could not load hf:openai/gsm8k/main:test .*pass a local .jsonl"):
        load_task("gsm8k", "hf")


def test_math_hard_is_the_level_5_subset_of_math(data_dir, tmp_path):
    """MATH-Hard (the worked example of docs/ARCHITECTURE.md): MATH's level-5 problems, from the same file."""
    hard = load_task("math_hard", data_dir)
    full = load_task("math", data_dir)
    assert hard.family == "math" and 0 < len(hard.items) < len(full.items)
    assert all(dict(item.meta)["level"] == "Level 5" for item in hard.items)
    by_id = {item.id: item for item in full.items}
    assert all(by_id[item.id].answers == item.answers for item in hard.items)
    assert {i.id for i in full.items if dict(i.meta).get("level") == "Level 5"} == {i.id for i in hard.items}
    assert load_task("math_hard", data_dir, limit=10).items == sample(hard.items, 10)
    rows = tmp_path / "hard.jsonl"
    rows.write_text('{"problem": "p", "solution": "\\\\boxed{1}", "level": 3, "unique_id": "a"}\n')
    with pytest.raises(TaskError, match="holds no rows"):
        load_task("math_hard", rows)
