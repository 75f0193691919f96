"""Records -> results: generate (or read the cache), extract, diagnose, score, and summarize one (model, task).

`evaluate` is the one call the pytest plugin and the CLI share. Its result keeps every sample's record (prompt, raw
text, diagnosis, score) and a summary: metrics, format compliance, a histogram of diagnoses, the trivial baseline,
examples of each failure class and throughput. `TaskResult.to_json()` is the versioned results document described
in docs/results-schema.md; `TaskResult.samples_jsonl()` is one line per sample.

>>> RESULTS_SCHEMA_VERSION
1
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evalkit.core import metrics
from evalkit.core.baselines import baseline_comparisons
from evalkit.core.extract import Diagnosis, Extraction, extract
from evalkit.core.scoring import ItemScore, score
from evalkit.core.types import Item
from evalkit.data.tasks import Task
from evalkit.run.backends import BACKENDS
from evalkit.run.cache import Cache, cache_versions, key_parts, make_key
from evalkit.run.generation import Backend, Generation, GenerationConfig, GenerationRun, end_of_turn_tokens

RESULTS_SCHEMA = "evalkit.results"
RESULTS_SCHEMA_VERSION = 1
EXAMPLES_PER_CLASS = 3  # failure examples kept in the results JSON per diagnosis (all samples are in the JSONL)
EXAMPLE_CHARS = 600  # longer raw texts are shortened in examples to head ... tail (the JSONL keeps them whole)
WRONG_ANSWER = "wrong_answer"  # failure class for a well-formed answer that is not the gold one


class ModelLike(Protocol):
    """What `evaluate` needs of a loaded model: the engine's minimal interface (`evalkit.models.loading.LoadedModel`
    has all of it, plus the folder it came from, its format and its loader notes)."""

    @property
    def model(self) -> Any: ...

    @property
    def tokenizer(self) -> Any: ...

    @property
    def fingerprint(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One item, what the model said, what was read from it, and its score."""

    item: Item
    generation: Generation
    extraction: Extraction
    score: ItemScore

    def to_dict(self) -> dict[str, Any]:
        g, s = self.generation, self.score
        return {
            "task": self.item.task,
            "id": self.item.id,
            "family": self.item.family,
            "gold": list(self.item.answers),
            "prompt": g.prompt,
            "raw_text": g.raw_text,
            "answer_text": g.raw_text[: self.extraction.turn_end],  # the reply's own turn: what extraction read
            "text": g.text,
            "prompt_tokens": g.prompt_tokens,
            "output_tokens": g.output_tokens,
            "finish_reason": g.finish_reason,
            "raw_box": self.extraction.raw_box,
            "answer": self.extraction.answer,
            "diagnosis": self.extraction.diagnosis.value,
            "scored": s.scored,
            "correct": s.correct,
            "score": s.score,
            "f1": s.f1,
            "abs_diff": s.abs_diff,
        }


@dataclass(frozen=True, slots=True)
class TaskResult:
    """Everything one (model, task) evaluation produced."""

    model: dict[str, Any]  # path, fingerprint, format, notes
    task: Task
    config: GenerationConfig
    prompt_mode: str  # "chat_template" or "plain" (no template, or use_chat_template=False)
    records: tuple[SampleRecord, ...]
    run: GenerationRun
    cache_hit: bool
    cache_key: str | None
    seconds: float  # wall time of this evaluate() call (a cache hit is fast; `run.seconds` is the generation's)
    notes: tuple[str, ...] = field(default=())

    # -- summaries -------------------------------------------------------------------------------------------------

    @property
    def metrics(self) -> dict[str, metrics.Metric]:
        return metrics.aggregate([r.score for r in self.records], self.task.family)

    @property
    def compliance(self) -> float:
        """Share of samples with a complete, valid \\boxed{} answer (diagnosis ``ok``)."""
        return sum(r.extraction.diagnosis is Diagnosis.OK for r in self.records) / len(self.records)

    @property
    def diagnoses(self) -> dict[str, int]:
        """Count of every diagnosis (zeros included, in the enum's order, so documents diff cleanly)."""
        counts = {d.value: 0 for d in Diagnosis}
        for r in self.records:
            counts[r.extraction.diagnosis.value] += 1
        return counts

    def failure_examples(self, k: int = EXAMPLES_PER_CLASS) -> dict[str, list[dict[str, Any]]]:
        """Up to `k` samples per failure class: each non-ok diagnosis, plus well-formed wrong answers."""
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.records:
            d = r.extraction.diagnosis
            cls = d.value if d is not Diagnosis.OK else (WRONG_ANSWER if not r.score.correct else None)
            if cls is None or len(out.setdefault(cls, [])) >= k:
                continue
            out[cls].append({
                "id": r.item.id,
                "gold": list(r.item.answers),
                "answer": r.extraction.answer,
                "finish_reason": r.generation.finish_reason,
                "output_tokens": r.generation.output_tokens,
                "raw_text": _shorten(r.generation.raw_text),
            })
        order = [d.value for d in Diagnosis] + [WRONG_ANSWER]  # fixed order, so documents diff cleanly
        return {cls: out[cls] for cls in order if out.get(cls)}

    def throughput(self) -> dict[str, Any]:
        """Generation speed (from the original run when read from the cache): the slow-kernel alarm reads this."""
        return {**self.run.throughput(), **self.run.backend, "batch_size": self.config.batch_size,
                "from_cache": self.cache_hit}

    # -- documents -------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        family = self.task.family
        metric_map = self.metrics
        baseline = self.task.trivial_baseline()
        comparisons = baseline_comparisons(metric_map, baseline)
        return {
            "schema": RESULTS_SCHEMA,
            "schema_version": RESULTS_SCHEMA_VERSION,
            "model": self.model,
            "task": {"name": self.task.name, "family": family, "source": self.task.source, "n": len(self.records),
                     "rows_digest": self.task.digest()},
            "generation": {**self.config.to_dict(), "prompt_mode": self.prompt_mode},
            "primary_metric": metrics.PRIMARY_METRIC[family],
            "metrics": {name: _metric_dict(m) for name, m in metric_map.items()},
            "compliance": round(self.compliance, 6),
            "diagnoses": self.diagnoses,
            "trivial_baseline": baseline,
            "baseline_comparison": {name: {"value": c.value, "baseline": c.baseline, "tolerance": c.tolerance,
                                           "matches": c.matches, "beats": c.beats, "message": c.message}
                                    for name, c in comparisons.items()},
            "failure_examples": self.failure_examples(),
            "throughput": self.throughput(),
            "cache": {"hit": self.cache_hit, "key": self.cache_key, "seconds": round(self.seconds, 4)},
            "environment": {"python": platform.python_version(), **cache_versions()},
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The results document (docs/results-schema.md)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def samples_jsonl(self) -> str:
        """One JSON object per sample, in task order."""
        return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in self.records)

    def write(self, folder: str | Path, stem: str | None = None) -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.samples.jsonl`` (stem: the task name) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = stem or self.task.name
        results, samples = folder / f"{stem}.json", folder / f"{stem}.samples.jsonl"
        results.write_text(self.to_json() + "\n", encoding="utf-8")
        samples.write_text(self.samples_jsonl(), encoding="utf-8")
        return results, samples


# ---------------------------------------------------------------------------------------------------- core


def score_generations(task: Task, generations: Sequence[Generation], special_tokens: Sequence[str] = (),
                      end_of_turn: Sequence[str] = ()) -> tuple[SampleRecord, ...]:
    """Extract, diagnose and score each generation against its item (pure: strings in, records out).

    >>> from evalkit.core.types import Item
    >>> task = Task("t", "yes_no", (Item("t", "0", "yes_no", "q", ("yes",)),), "inline")
    >>> gen = Generation("0", "p", "\\\\boxed{yes}<|im_end|>", "\\\\boxed{yes}", 3, 4, "eos")
    >>> [(r.extraction.answer, r.score.correct) for r in score_generations(task, [gen], ["<|im_end|>"])]
    [('yes', True)]
    """
    if len(generations) != len(task.items):
        raise ValueError(f"{task.name}: {len(generations)} generations for {len(task.items)} items")
    records = []
    for item, gen in zip(task.items, generations, strict=True):
        if gen.item_id != item.id:
            raise ValueError(f"{task.name}: generation for item {gen.item_id!r} paired with item {item.id!r}")
        ex = extract(gen.raw_text, item.family, finish_reason=gen.finish_reason, special_tokens=special_tokens,
                     end_of_turn=end_of_turn)
        records.append(SampleRecord(item, gen, ex, score(item, ex)))
    return tuple(records)


def evaluate(model: ModelLike, task: Task, config: GenerationConfig = GenerationConfig(), *,
             cache: Cache | None = None, backend: Backend | None = None) -> TaskResult:
    """Evaluate one model on one task: generate (or read the cache), then extract, diagnose and score.

    backend: defaults to the ``transformers`` backend of `evalkit.run.backends.BACKENDS` for `model`; pass another
    (vLLM, a server) to swap engines.
    The model is used as it was loaded; nothing here re-casts or re-wraps its modules.
    """
    import time

    start = time.perf_counter()
    backend = backend or BACKENDS.get("transformers")(model)
    prompts = backend.render(task.items, config)
    modes = sorted({p.mode for p in prompts})
    prompt_mode = modes[0] if len(modes) == 1 else "mixed"
    notes = []
    if config.use_chat_template and prompt_mode == "plain":
        notes.append("the tokenizer has no chat template: prompts used evalkit.prompts.plain_prompt")  # the note text results documents keep
    limit = getattr(getattr(getattr(model, "model", None), "config", None), "max_position_embeddings", None)
    if isinstance(limit, int):
        over = sum(len(p.token_ids) + config.max_new_tokens > limit for p in prompts)
        if over:
            notes.append(f"{over} of {len(prompts)} prompts plus max_new_tokens exceed the model's "
                         f"max_position_embeddings ({limit}): positions past it were never trained")
    key, run = None, None
    if cache is not None:
        parts = key_parts(fingerprint=model.fingerprint, task_name=task.name, task_digest=task.digest(),
                          prompts=prompts, config=config, backend=backend.describe())
        key = make_key(parts)
        run = cache.get(key)
    hit = run is not None
    if run is None:
        run = backend.generate(prompts, config)
        if cache is not None and key is not None:
            cache.put(key, run, parts)
    turn = end_of_turn_tokens(model.tokenizer, getattr(backend, "eos_ids", ()))
    records = score_generations(task, run.generations, getattr(backend, "special_tokens", ()), turn)
    info = {"path": str(getattr(model, "path", "")), "fingerprint": model.fingerprint,
            "format": getattr(model, "format", "unknown"), "notes": list(getattr(model, "notes", ()))}
    return TaskResult(info, task, config, prompt_mode, records, run, hit, key, time.perf_counter() - start,
                      tuple(notes))


def _metric_dict(m: metrics.Metric) -> dict[str, Any]:
    d = asdict(m)
    d.pop("name", None)
    return d


def _shorten(text: str, limit: int = EXAMPLE_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} …[{len(text) - 2 * half} chars]… {text[-half:]}"
