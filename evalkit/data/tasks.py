"""Tasks: the real datasets and the zoo's synthetic families, all loaded as `evalkit.core.types.Item`s.

A `Task` is a name, a family and its items (plus where they came from). The family decides the rest: prompts come
from `evalkit.core.prompts`, answers are read by `evalkit.core.extract`, and the metric set and trivial baseline come from
`evalkit.core.metrics`, so adding a dataset is one parser and one registration in `TASKS` here (docs/ARCHITECTURE.md).
The zoo's tasks are the synthetic families of `evalkit.data.synthetic`, registered here under their task names.

Sources, in the official schemas (see each dataset's SOURCE.md under the shared data folder):
local JSONL, JSON (SQuAD's nested release file too) or Parquet, or a Hugging Face `datasets` name (offline unless
the environment allows downloads). A malformed row is one error naming the file, the row and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.core import normalize
from evalkit.core.baselines import trivial_baseline
from evalkit.core.registry import Registry
from evalkit.core.types import CHOICE_LABELS, Family, Item
from evalkit.data import sampling, synthetic
from evalkit.errors import TaskError

DATA_DIR_ENV = "EVALKIT_DATA_DIR"
ZOO_DEFAULT_N = 64  # items per zoo task when no limit is given


@dataclass(frozen=True, slots=True)
class Task:
    """A named, frozen list of items of one family.

    >>> task = load_task("zoo_yes_no", limit=3)
    >>> task.name, task.family, len(task.items)
    ('zoo_yes_no', 'yes_no', 3)
    """

    name: str
    family: Family
    items: tuple[Item, ...]
    source: str  # where the rows came from: a file path, "hf:<name>/<config>:<split>", "synthetic:<split>:seed=<s>"

    def digest(self) -> str:
        """Content hash of the items (order included): part of the cache key, so edited rows are re-evaluated."""
        h = hashlib.sha256()
        for item in self.items:
            row = [item.task, item.id, item.family, item.question, item.answers, item.context, item.choices, item.meta]
            h.update(json.dumps(row, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()

    def trivial_baseline(self) -> dict[str, float]:
        """What a constant answerer scores here (majority class, always-unanswerable, ...): a score equal to this
        is no evidence the model learned anything."""
        return trivial_baseline(list(self.items))


Parser = Callable[[Mapping[str, Any], str, int], "Item | None"]  # (row, task name, row index) -> Item; None: skip


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """How to load one task: its family, row parser, and default sources."""

    name: str
    family: Family
    parse: Parser | None  # None for zoo tasks (generated, not parsed)
    local: str = ""  # default file, relative to the data folder
    hf: tuple[str, str | None, str] | None = None  # (dataset name, config, split)


# ------------------------------------------------------------------------------------------------ row parsing


class _Row:
    """Field access that names the row and the field when something is missing or of the wrong type."""

    def __init__(self, row: Mapping[str, Any], task: str, index: int) -> None:
        if not isinstance(row, Mapping):
            raise TaskError(f"{task}: row {index} is a {type(row).__name__}, expected a JSON object")
        self.row, self.task, self.index = row, task, index

    def fail(self, name: str, problem: str) -> TaskError:
        return TaskError(f"{self.task}: row {self.index}: field {name!r} {problem}")

    def get(self, name: str, kind: type | tuple[type, ...] = str, *, default: Any = ...) -> Any:
        if name not in self.row or self.row[name] is None:
            if default is not ...:
                return default
            raise self.fail(name, f"is missing (row has {sorted(self.row)})")
        value = self.row[name]
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(name, f"is a {type(value).__name__}, expected {names}")
        return value

    def text(self, name: str) -> str:
        value = self.get(name)
        if not value.strip():
            raise self.fail(name, "is empty")
        return value

    def ident(self, name: str = "id") -> str:
        value = self.get(name, (str, int), default=None)
        return str(self.index) if value is None else str(value)


def _meta(**pairs: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in pairs.items() if v is not None and v != ""))


def parse_arc(row: Mapping[str, Any], task: str, index: int) -> Item:
    """ARC in AI2's release schema ({question: {stem, choices}}) or HF's flattened one; labels A-E or 1-5."""
    r = _Row(row, task, index)
    q = r.get("question", (str, dict))
    if isinstance(q, dict):
        stem = _Row(q, task, index).text("stem")
        raw_choices = _Row(q, task, index).get("choices", list)
        pairs = [(c.get("label"), c.get("text")) if isinstance(c, dict) else (None, None) for c in raw_choices]
    else:
        stem = r.text("question")
        choices = r.get("choices", dict)
        texts, labels = choices.get("text"), choices.get("label")
        if not isinstance(texts, list) or not isinstance(labels, list) or len(texts) != len(labels):
            raise r.fail("choices", "needs equal-length lists 'text' and 'label'")
        pairs = list(zip(labels, texts, strict=True))
    lettered = []
    for label, text in pairs:
        letter = normalize.choice_label(label) if label is not None else None
        if letter is None or not isinstance(text, str):
            raise r.fail("choices", f"has an option with label {label!r} and text {text!r}; expected A-H or 1-8")
        lettered.append((letter, text))
    lettered.sort()
    letters = "".join(letter for letter, _ in lettered)
    if letters != CHOICE_LABELS[: len(lettered)] or len(lettered) < 2:
        raise r.fail("choices", f"labels {letters!r} are not consecutive from A (2-{len(CHOICE_LABELS)} options)")
    gold = normalize.choice_label(r.get("answerKey", (str, int)))
    if gold is None or gold not in letters:
        raise r.fail("answerKey", f"is {row.get('answerKey')!r}, not one of the option labels {letters!r}")
    return Item(task, r.ident(), "multiple_choice", stem, (gold,), choices=tuple(t for _, t in lettered))


def parse_boolq(row: Mapping[str, Any], task: str, index: int) -> Item:
    """BoolQ (question, passage, answer: bool; title kept as meta) or SuperGLUE's (label: bool or "true"/"false")."""
    r = _Row(row, task, index)
    name = "answer" if "answer" in row else "label"
    gold = normalize.yes_no_label(r.get(name, (bool, str, int)))
    if gold is None:
        raise r.fail(name, f"is {row.get(name)!r}; expected true/false")
    ident = r.ident("idx") if "idx" in row else str(index)
    return Item(task, ident, "yes_no", r.text("question"), (gold,), context=r.text("passage"),
                meta=_meta(title=r.get("title", str, default=None)))


def parse_squad_v2(row: Mapping[str, Any], task: str, index: int) -> Item:
    """SQuAD v2, one row per question (HF columns or the official per-question dict); no answers = unanswerable."""
    r = _Row(row, task, index)
    answers = normalize.squad_gold_answers(r.get("answers", (dict, list)))
    if answers is None:
        raise r.fail("answers", "is neither {text: [...], answer_start: [...]} nor a list of {text, answer_start}")
    impossible = row.get("is_impossible")
    if impossible is not None and bool(impossible) == bool(answers):
        raise r.fail("is_impossible", f"is {impossible!r} but the row has {len(answers)} answers")
    return Item(task, r.text("id"), "span", r.text("question"), answers, context=r.text("context"),
                meta=_meta(title=r.get("title", str, default=None)))


def parse_gsm8k(row: Mapping[str, Any], task: str, index: int) -> Item:
    """GSM8K: the gold is the number after the answer's last '####' (thousands separators removed)."""
    r = _Row(row, task, index)
    gold = normalize.gsm8k_final_answer(r.text("answer"))
    if not gold:
        raise r.fail("answer", "has no '#### <final answer>' line")
    return Item(task, r.ident(), "math", r.text("question"), (gold,))


def parse_math(row: Mapping[str, Any], task: str, index: int) -> Item:
    """MATH: the gold is the solution's last \\boxed{} (MATH-500's 'answer' column is the fallback)."""
    r = _Row(row, task, index)
    gold = normalize.math_solution_answer(r.text("solution"))
    if gold is None and isinstance(row.get("answer"), str):
        gold = normalize.normalize_math(row["answer"])
    if not gold:
        raise r.fail("solution", "has no \\boxed{} final answer")
    level = r.get("level", (str, int), default=None)
    subject = r.get("type", str, default=None) or r.get("subject", str, default=None)
    return Item(task, r.ident("unique_id"), "math", r.text("problem"), (gold,), meta=_meta(level=level, type=subject))


def parse_openmath(row: Mapping[str, Any], task: str, index: int) -> Item:
    """OpenMathInstruct-2: the gold is `expected_answer` (a string, LaTeX allowed)."""
    r = _Row(row, task, index)
    gold = normalize.normalize_math(r.text("expected_answer"))
    if not gold:
        raise r.fail("expected_answer", f"is {row['expected_answer']!r}, which is no valid math answer")
    return Item(task, r.ident(), "math", r.text("problem"), (gold,),
                meta=_meta(problem_source=r.get("problem_source", str, default=None)))


def parse_math_hard(row: Mapping[str, Any], task: str, index: int) -> Item | None:
    """MATH-Hard (the Open LLM Leaderboard's "MATH Lvl 5"): MATH's level-5 problems; rows of other levels are skipped.

    >>> row = {"problem": "1+1?", "solution": "\\\\boxed{2}", "level": "Level 5", "type": "Algebra"}
    >>> parse_math_hard(row, "math_hard", 0).answers, parse_math_hard({**row, "level": "Level 4"}, "math_hard", 1)
    (('2',), None)
    """
    item = parse_math(row, task, index)
    return item if dict(item.meta).get("level") in ("Level 5", "5") else None


TASKS: Registry[TaskSpec] = Registry("task", error=TaskError)
"""Every task `load_task` knows, by name: the real datasets, then the zoo's synthetic families."""

for _spec in (
    TaskSpec("arc_challenge", "multiple_choice", parse_arc, "arc/arc_challenge_test_sample.jsonl",
             ("allenai/ai2_arc", "ARC-Challenge", "test")),
    TaskSpec("arc_easy", "multiple_choice", parse_arc, "arc/arc_easy_test_sample.jsonl",
             ("allenai/ai2_arc", "ARC-Easy", "test")),
    TaskSpec("boolq", "yes_no", parse_boolq, "boolq/boolq_dev_sample.jsonl", ("google/boolq", None, "validation")),
    TaskSpec("squad_v2", "span", parse_squad_v2, "squad_v2/squad_v2_dev_sample.jsonl",
             ("rajpurkar/squad_v2", None, "validation")),
    TaskSpec("gsm8k", "math", parse_gsm8k, "gsm8k/gsm8k_test_sample.jsonl", ("openai/gsm8k", "main", "test")),
    TaskSpec("math", "math", parse_math, "math/math_test_sample.jsonl", ("HuggingFaceH4/MATH-500", None, "test")),
    TaskSpec("openmath", "math", parse_openmath, "math/openmathinstruct2_train_sample.jsonl",
             ("nvidia/OpenMathInstruct-2", None, "train")),
    *(TaskSpec(maker.task, maker.family, None) for maker in synthetic.MAKERS.values()),
    TaskSpec("math_hard", "math", parse_math_hard, "math/math_test_sample.jsonl",
             ("HuggingFaceH4/MATH-500", None, "test")),
):
    TASKS.register(_spec.name, _spec)


# ------------------------------------------------------------------------------------------------ loading


def load_task(name: str, source: str | os.PathLike[str] | None = None, *, limit: int | None = None, seed: int = 0,
              split: str | None = None) -> Task:
    """Load a task by name.

    source: a .jsonl/.json/.parquet file, a data folder (holding the task's default file), ``"hf"`` or
    ``"hf:<dataset name>"`` for Hugging Face `datasets`; None: the folder in $EVALKIT_DATA_DIR if set, else "hf".
    Zoo tasks ignore `source` and generate `limit` items (default 64) of the given split (default "test").
    limit: keep at most this many items, chosen by a seeded hash of their ids (a larger limit keeps the smaller
    one's items), in dataset order.

    >>> load_task("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evalkit.errors.TaskError: unknown task 'nope'; known tasks: arc_challenge, arc_easy, ...
    """
    spec = TASKS.get(name)
    if limit is not None and limit < 1:
        raise TaskError(f"{name}: limit must be >= 1, got {limit}")
    if spec.parse is None:
        return _zoo_task(spec, limit, seed, split or "test")
    large = _large_source(spec, source, split) if limit is not None else None
    if large is not None and limit is not None:  # hub-scale: only the rows the limit picks are read and parsed
        picked = sampling.pick(large, lambda row, i: _parse(spec, row, i, large.where), limit, seed=seed)
        items = [item for _, item in picked]
        where = f"{large.where} (sampled by row index: {len(items)} of {large.n_rows} rows, seed {seed})"
        return Task(name, spec.family, _unique(name, items, large.where, [i for i, _ in picked]), where)
    rows, where = _read_source(spec, source, split)
    items = [item for i, row in enumerate(rows) if (item := _parse(spec, row, i, where)) is not None]
    return Task(name, spec.family, sample(_unique(name, items, where), limit, seed), where)


def _parse(spec: TaskSpec, row: Any, index: int, where: str) -> Item | None:
    assert spec.parse is not None
    try:
        return spec.parse(row, spec.name, index)
    except (TaskError, ValueError) as err:  # Item's own checks raise ValueError
        raise TaskError(f"{where}: {err}") from None


def _unique(name: str, items: Sequence[Item], where: str, rows: Sequence[int] | None = None) -> tuple[Item, ...]:
    """`items`, refused when empty or when two share an id (naming their rows)."""
    if not items:
        raise TaskError(f"{name}: {where} holds no rows")
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        row = rows[i] if rows is not None else i
        if item.id in seen:
            raise TaskError(f"{name}: {where}: rows {seen[item.id]} and {row} share the id {item.id!r}; "
                            "ids must be unique")
        seen[item.id] = row
    return tuple(items)


def sample(items: Sequence[Item], limit: int | None, seed: int = 0) -> tuple[Item, ...]:
    """At most `limit` items, picked by a seeded hash of each id and returned in their original order.

    Picking by id (not by position) keeps the choice stable when rows are added, and nested: limit 10 is a subset
    of limit 20.

    >>> items = [Item("t", str(i), "yes_no", "q", ("yes",)) for i in range(10)]
    >>> sample(items, 3) == sample(items, 3), set(sample(items, 3)) <= set(sample(items, 5))
    (True, True)
    """
    if limit is None or limit >= len(items):
        return tuple(items)
    rank = sorted(range(len(items)), key=lambda i: hashlib.sha256(f"{seed}|{items[i].id}".encode()).digest())
    return tuple(items[i] for i in sorted(rank[:limit]))


def data_dir() -> Path | None:
    """The folder named by $EVALKIT_DATA_DIR, if set."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value) if value else None


def _zoo_task(spec: TaskSpec, limit: int | None, seed: int, split: str) -> Task:
    items = synthetic.generate(spec.family, limit or ZOO_DEFAULT_N, seed=seed, split=split)
    return Task(spec.name, spec.family, tuple(items), f"synthetic:{split}:seed={seed}")


def _read_source(spec: TaskSpec, source: str | os.PathLike[str] | None, split: str | None) -> tuple[list[Any], str]:
    where = _locate(spec, source)
    if isinstance(where, str):
        dataset, name = _hf_dataset(spec, where, split)
        return [dict(r) for r in dataset], name
    return list(_read_file(where, spec.name)), str(where)


def _large_source(spec: TaskSpec, source: str | os.PathLike[str] | None, split: str | None
                  ) -> sampling.RowSource | None:
    """The source as rows by index when it holds more than `evalkit.data.sampling.LARGE_SOURCE` rows (a file under
    a megabyte cannot, and is not opened twice)."""
    where = _locate(spec, source)
    if isinstance(where, str):
        dataset, name = _hf_dataset(spec, where, split)
        big = sampling.hf_rows(dataset, name)
    elif where.suffix.lower() in (".parquet", ".jsonl") and where.stat().st_size >= 1 << 20:
        reader = sampling.parquet_rows if where.suffix.lower() == ".parquet" else sampling.jsonl_rows
        big = reader(where, spec.name)
    else:
        return None
    return big if big.n_rows > sampling.LARGE_SOURCE else None


def _locate(spec: TaskSpec, source: str | os.PathLike[str] | None) -> Path | str:
    """The file a task reads, or ``"hf"`` / ``"hf:<name>"`` for a Hugging Face dataset."""
    if source is None:
        folder = data_dir()
        source = folder if folder is not None else "hf"
    if isinstance(source, str) and (source == "hf" or source.startswith("hf:")):
        return source
    path = Path(source)
    if path.is_dir():
        candidate = path / spec.local
        if not candidate.is_file():
            raise TaskError(f"{spec.name}: {path} is a folder without {spec.local}; pass the dataset file itself")
        path = candidate
    if not path.is_file():
        raise TaskError(f"{spec.name}: no such file {path}; pass a .jsonl, .json or .parquet file in the official "
                        "schema")
    return path


def _read_file(path: Path, task: str) -> Iterator[Any]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as err:
                        raise TaskError(f"{task}: {path}:{lineno}: not valid JSON ({err.msg})") from err
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise TaskError(f"{task}: {path}: not valid JSON ({err.msg} at line {err.lineno})") from err
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            yield from _flatten_squad(data["data"], task, path)
        elif isinstance(data, list):
            yield from data
        else:
            raise TaskError(f"{task}: {path}: expected a JSON array of rows (or SQuAD's {{'data': [...]}} file)")
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as err:
            raise TaskError(f"{task}: reading {path} needs pyarrow: pip install 'evalkit[datasets]'") from err
        yield from pq.read_table(path).to_pylist()
    else:
        raise TaskError(f"{task}: {path}: unsupported file type {suffix!r}; use .jsonl, .json or .parquet")


def _flatten_squad(articles: list[Any], task: str, path: Path) -> Iterator[dict[str, Any]]:
    """SQuAD's release JSON (article -> paragraphs -> qas) as one row per question, in file order."""
    for a, article in enumerate(articles):
        try:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    yield {**qa, "context": paragraph["context"], "title": article.get("title", "")}
        except (KeyError, TypeError) as err:
            raise TaskError(f"{task}: {path}: article {a} does not follow SQuAD's data/paragraphs/qas layout ({err!r})")


def _hf_dataset(spec: TaskSpec, source: str, split: str | None) -> tuple[Any, str]:
    """The (memory-mapped) `datasets.Dataset` of ``"hf"`` / ``"hf:<name>"`` and its ``hf:name/config:split``."""
    name = source.removeprefix("hf").removeprefix(":") or None
    if spec.hf is None:
        raise TaskError(f"{spec.name}: no Hugging Face dataset is known for this task; pass a local file")
    default_name, config, default_split = spec.hf
    name, split = name or default_name, split or default_split
    where = f"hf:{name}{'/' + config if config else ''}:{split}"
    try:
        import datasets
    except ImportError as err:
        raise TaskError(f"{spec.name}: loading {where} needs the datasets package: pip install 'evalkit[datasets]'"
                        f", or pass a local file (or set {DATA_DIR_ENV})") from err
    try:
        rows = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # offline, unknown name, no cache: one message with the ways out
        raise TaskError(f"{spec.name}: could not load {where} ({type(err).__name__}: {err}). evalkit is offline by "
                        f"default: pass a local .jsonl/.parquet file, set {DATA_DIR_ENV} to a data folder, or allow "
                        "downloads with HF_DATASETS_OFFLINE=0") from err
    return rows, where
