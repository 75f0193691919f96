"""Hub-scale task sources, sampled without materializing them: only the rows a limit picks are read and parsed.

OpenMathInstruct-2's train split has about 14M rows; reading it the small-file way (every row a dict, every row
parsed, then a 1,000-item sample) costs minutes and gigabytes. A source with more than `LARGE_SOURCE` rows, given a
limit, is sampled by row index instead: a seeded stream of distinct row indices (`draw`), of which the first rows
that parse are kept (a parser may skip a row: more are drawn), in row order. A larger limit extends a smaller one,
and the same seed and source give the same items. The rows are fetched by index from the source as it lies:

- Parquet: the row counts of its row groups come from the footer; only the row groups holding a chosen row are read,
  and only the chosen rows of each become dicts;
- JSONL: one pass counts the rows (lines are not parsed), one pass per batch keeps the chosen lines, and only those
  are parsed as JSON;
- a Hugging Face dataset: `datasets` keeps the split memory-mapped on disk; the chosen rows are selected by index.

Small sources keep `evalkit.data.tasks.sample` (every row parsed, the sample chosen by a seeded hash of the ids),
so the items of every existing task and limit stay what they were.

>>> list(itertools.islice(draw(10, seed=0), 4)) == list(itertools.islice(draw(10, seed=0), 4))
True
>>> sorted(draw(5, seed=3))
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import TaskError

__all__ = ["LARGE_SOURCE", "RowSource", "draw", "hf_rows", "jsonl_rows", "parquet_rows", "pick"]

LARGE_SOURCE = 100_000
"""Sources with more rows than this are sampled by row index (below it, every row is parsed as before)."""


@dataclass(frozen=True)
class RowSource:
    """A source that can be read by row index: how many rows it has and how to fetch some of them."""

    where: str  # for messages and the task's source
    n_rows: int
    fetch: Callable[[Sequence[int]], dict[int, Any]]  # sorted row indices -> {index: row}


def draw(n_rows: int, *, seed: int) -> Iterator[int]:
    """Distinct row indices of ``range(n_rows)`` in a seeded random order (expected O(k) for the first k)."""
    rng = random.Random(f"evalkit-rows|{seed}|{n_rows}")
    seen: set[int] = set()
    while len(seen) < n_rows:
        if len(seen) > n_rows // 2:  # the rest, shuffled: no endless redraws near the end
            rest = [i for i in range(n_rows) if i not in seen]
            rng.shuffle(rest)
            yield from rest
            return
        i = rng.randrange(n_rows)
        if i not in seen:
            seen.add(i)
            yield i


def pick(source: RowSource, parse: Callable[[Any, int], Any], limit: int, *, seed: int) -> list[tuple[int, Any]]:
    """(row index, parsed item) of the first `limit` drawn rows that parse to an item, in row order.

    Rows are fetched in batches (a few more than still needed, as a parser may skip rows); whatever the batches,
    the result is the first `limit` rows *in draw order* that parse, so a larger limit extends a smaller one."""
    indices = enumerate(draw(source.n_rows, seed=seed))
    kept: list[tuple[int, int, Any]] = []  # (draw position, row index, item)
    while len(kept) < limit:
        batch = list(itertools.islice(indices, (limit - len(kept)) * 5 // 4 + 16))
        if not batch:
            break
        rows = source.fetch(sorted(i for _, i in batch))
        for position, i in batch:
            item = parse(rows[i], i)
            if item is not None:
                kept.append((position, i, item))
    kept.sort(key=lambda entry: entry[0])
    return sorted((i, item) for _, i, item in kept[:limit])


# ---------------------------------------------------------------------------------------------------- sources


def parquet_rows(path: Path, task: str) -> RowSource:
    """A Parquet file by row index: row groups located from the footer, only the needed ones read."""
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise TaskError(f"{task}: reading {path} needs pyarrow: pip install 'evalkit[datasets]'") from err
    file = pq.ParquetFile(path)
    starts = list(itertools.accumulate((file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)),
                                       initial=0))

    def fetch(indices: Sequence[int]) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for g, group in itertools.groupby(indices, key=lambda i: _group_of(starts, i)):
            wanted = list(group)
            table = file.read_row_group(g).take([i - starts[g] for i in wanted])
            out.update(zip(wanted, table.to_pylist(), strict=True))
        return out

    return RowSource(str(path), starts[-1], fetch)


def jsonl_rows(path: Path, task: str) -> RowSource:
    """A JSONL file by row index (its non-blank lines, as the small-file reader numbers them)."""
    with path.open("rb") as fh:
        n_rows = sum(1 for line in fh if line.strip())

    def fetch(indices: Sequence[int]) -> dict[int, Any]:
        wanted, out = set(indices), {}
        with path.open("rb") as fh:
            for i, (lineno, line) in enumerate((n, line) for n, line in enumerate(fh, 1) if line.strip()):
                if i in wanted:
                    try:
                        out[i] = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise TaskError(f"{task}: {path}:{lineno}: not valid JSON ({err.msg})") from err
                    if len(out) == len(wanted):
                        break
        return out

    return RowSource(str(path), n_rows, fetch)


def hf_rows(dataset: Any, where: str) -> RowSource:
    """A (memory-mapped) `datasets.Dataset` by row index."""

    def fetch(indices: Sequence[int]) -> dict[int, Any]:
        return dict(zip(indices, (dict(r) for r in dataset.select(list(indices))), strict=True))

    return RowSource(where, len(dataset), fetch)


def _group_of(starts: Sequence[int], i: int) -> int:
    """The row group holding row `i`, from the groups' first rows."""
    return bisect.bisect_right(starts, i) - 1

