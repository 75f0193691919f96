"""Hub-scale sources sampled by row index (evalkit.data.sampling), on synthetic large files in OpenMathInstruct-2's
schema: 150,000 rows, past `LARGE_SOURCE`, as a local JSONL and a Parquet file with row groups, and the same rows as
a real `datasets.Dataset` (the hub itself is unreachable here).

That the unchosen rows are never parsed is shown by planting rows that cannot be parsed (a line that is not JSON,
a row without its answer) where the draw does not go: reading every row would fail on them. That the split is not
materialized is shown by the memory the load takes.
"""

from __future__ import annotations

import itertools
import json
import tracemalloc
from pathlib import Path

import pytest

from evalkit.data import sampling
from evalkit.data.tasks import load_task
from evalkit.errors import TaskError

N_ROWS = sampling.LARGE_SOURCE + 50_000
SEED = 0


def _row(i: int) -> dict:
    return {"problem": f"What is {i} + 1?", "generated_solution": f"{i} + 1 = \\boxed{{{i + 1}}}",
            "expected_answer": str(i + 1), "problem_source": "synthetic"}


def _never_drawn(n: int) -> list[int]:
    """Row indices far from the first draws of seed 0: where the planted broken rows go."""
    first = set(itertools.islice(sampling.draw(N_ROWS, seed=SEED), n))
    return [i for i in range(N_ROWS - 1, 0, -1) if i not in first][:2]


@pytest.fixture(scope="module")
def planted() -> list[int]:
    return _never_drawn(2000)


@pytest.fixture(scope="module")
def big_jsonl(tmp_path_factory: pytest.TempPathFactory, planted: list[int]) -> Path:
    path = tmp_path_factory.mktemp("hub") / "openmathinstruct2_train.jsonl"
    not_json, no_answer = planted
    with path.open("w", encoding="utf-8") as fh:
        for i in range(N_ROWS):
            if i == not_json:
                fh.write("{this line is not JSON\n")
            elif i == no_answer:
                fh.write(json.dumps({k: v for k, v in _row(i).items() if k != "expected_answer"}) + "\n")
            else:
                fh.write(json.dumps(_row(i)) + "\n")
    return path


@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory: pytest.TempPathFactory, planted: list[int]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [_row(i) for i in range(N_ROWS)]
    rows[planted[1]]["expected_answer"] = None
    path = tmp_path_factory.mktemp("hub") / "openmathinstruct2_train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=10_000)
    return path


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_a_large_file_is_sampled_without_parsing_every_row(kind: str, big_jsonl: Path, big_parquet: Path) -> None:
    path = big_jsonl if kind == "jsonl" else big_parquet
    task = load_task("openmath", path, limit=200, seed=SEED)
    assert len(task.items) == 200 and len({i.id for i in task.items}) == 200
    rows = [int(item.id) for item in task.items]
    assert rows == sorted(rows)  # row order, as every task keeps it
    first = sorted(itertools.islice(sampling.draw(N_ROWS, seed=SEED), 200))
    assert rows == first  # the seeded draw's first rows (every one of them parses)
    assert all(item.answers == (str(int(item.id) + 1),) for item in task.items)
    assert f"sampled by row index: 200 of {N_ROWS} rows, seed 0" in task.source
    with pytest.raises(TaskError):  # the planted rows are really there: parsing everything fails
        load_task("openmath", path, limit=N_ROWS, seed=SEED)


def test_samples_are_nested_deterministic_and_seeded(big_parquet: Path) -> None:
    small = load_task("openmath", big_parquet, limit=50, seed=SEED)
    large = load_task("openmath", big_parquet, limit=150, seed=SEED)
    assert set(small.items) <= set(large.items)
    assert load_task("openmath", big_parquet, limit=50, seed=SEED).items == small.items
    assert set(load_task("openmath", big_parquet, limit=50, seed=1).items) != set(small.items)


def test_jsonl_and_parquet_of_the_same_rows_give_the_same_items(big_jsonl: Path, big_parquet: Path) -> None:
    assert load_task("openmath", big_jsonl, limit=100).items == load_task("openmath", big_parquet, limit=100).items


def test_a_datasets_split_is_sampled_by_index(big_parquet: Path, tmp_path: Path) -> None:
    """The path `hf:nvidia/OpenMathInstruct-2` takes: a memory-mapped `datasets.Dataset`, rows selected by index."""
    import datasets

    ds = datasets.Dataset.from_parquet(str(big_parquet), cache_dir=str(tmp_path))
    source = sampling.hf_rows(ds, "hf:nvidia/OpenMathInstruct-2:train")
    assert source.n_rows == N_ROWS
    from evalkit.data.tasks import parse_openmath

    picked = sampling.pick(source, lambda row, i: parse_openmath(row, "openmath", i), 100, seed=SEED)
    assert tuple(item for _, item in picked) == load_task("openmath", big_parquet, limit=100).items


def test_the_load_does_not_materialize_the_split(big_jsonl: Path) -> None:
    tracemalloc.start()
    try:
        load_task("openmath", big_jsonl, limit=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = big_jsonl.stat().st_size
    assert size > 15e6 and peak < size / 10, (size, peak)  # every row as a dict would take several times the file


def test_a_parser_that_skips_rows_draws_more(tmp_path: Path) -> None:
    """MATH-Hard keeps level-5 rows only: the sample still has `limit` items, all of level 5."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"problem": f"p{i}", "solution": f"\\boxed{{{i}}}", "level": f"Level {1 + i % 5}", "type": "Algebra",
             "unique_id": f"u{i}"} for i in range(N_ROWS)]
    path = tmp_path / "math.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=20_000)
    task = load_task("math_hard", path, limit=120)
    assert len(task.items) == 120 and {dict(i.meta)["level"] for i in task.items} == {"Level 5"}


def test_small_sources_keep_the_id_hash_sample(tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(_row(i)) + "\n" for i in range(500)))
    task = load_task("openmath", path, limit=20)
    assert "sampled by row index" not in task.source and len(task.items) == 20
