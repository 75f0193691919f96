"""Records -> results: generate (or read the cache), extract, diagnose, score, and summarize one (model, task).

`evaluate` is the one call the pytest plugin and the CLI share. Its result keeps every sample's record (prompt, raw
text, diagnosis, score) and a summary: metrics, format compliance, a histogram of diagnoses, the trivial baseline,
examples of each failure class and throughput. `TaskResult.to_json()` is the versioned results document described
in docs/results-schema.md; `TaskResult.samples_jsonl()` is one line per sample.

>>> RESULTS_SCHEMA_VERSION
1
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evalkit.core import jsonsafe, metrics
from evalkit.core.baselines import baseline_comparisons
from evalkit.core.extract import Diagnosis, Extraction, extract
from evalkit.core.scoring import ItemScore, score
from evalkit.core.types import Item
from evalkit.data.tasks import Task
from evalkit.run.backends import BACKENDS
from evalkit.run.cache import Cache, cache_versions, key_parts, make_key
from evalkit.run.generation import (Backend, Generation, GenerationConfig, GenerationRun, Prompt,
                                    end_of_turn_tokens)

RESULTS_SCHEMA = "evalkit.results"
RESULTS_SCHEMA_VERSION = 1
EXAMPLES_PER_CLASS = 3  # failure examples kept in the results JSON per diagnosis (all samples are in the JSONL)
EXAMPLE_CHARS = 600  # longer raw texts are shortened in examples to head ... tail (the JSONL keeps them whole)
WRONG_ANSWER = "wrong_answer"  # failure class for a well-formed answer that is not the gold one
MAX_PROMPT_CHARS = 100_000
"""Hard cap on an item's text (question, context, choices), checked before its prompt is rendered or tokenized: a
5 MB row is refused in microseconds instead of tokenized for seconds and sent to a 2M-token forward pass."""
MAX_PROMPT_TOKENS = 32_768
"""Hard cap on a rendered prompt's tokens, whatever the model's context claims (a forward pass over more on one
machine is a hang, not an evaluation)."""


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
        """The results document (docs/results-schema.md); valid JSON (`evalkit.core.jsonsafe`: no NaN literals)."""
        return jsonsafe.dumps(self.to_dict(), indent=indent)

    def samples_jsonl(self) -> str:
        """One JSON object per sample, in task order."""
        return "".join(jsonsafe.dumps(r.to_dict()) + "\n" for r in self.records)

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
    context = context_length(model)
    prompts, refused = screen(task.items, backend, config, context)
    modes = sorted({p.mode for p in prompts if p.token_ids} or {p.mode for p in prompts})  # rendered ones only
    prompt_mode = modes[0] if len(modes) == 1 else "mixed"
    notes = []
    if config.use_chat_template and prompt_mode == "plain":
        notes.append("the tokenizer has no chat template: prompts used evalkit.prompts.plain_prompt")  # the note text results documents keep
    if refused:
        notes.append(f"{len(refused)} of {len(prompts)} prompts were never sent to the model (diagnosis "
                     f"prompt_too_long): {'; '.join(sorted(set(refused.values())))}")
    if context is not None:
        over = sum(len(p.token_ids) + config.max_new_tokens > context for i, p in enumerate(prompts) if i not in refused)
        if over:
            notes.append(f"{over} of {len(prompts)} prompts plus max_new_tokens exceed the model's "
                         f"max_position_embeddings ({context}): positions past it were never trained")
    key, run = None, None
    if cache is not None:
        parts = key_parts(fingerprint=model.fingerprint, task_name=task.name, task_digest=task.digest(),
                          prompts=prompts, config=config, backend=backend.describe())
        key = make_key(parts)
        run = cache.get(key, expect=[p.item_id for p in prompts])
    hit = run is not None
    if run is None:
        run = _generate(backend, prompts, refused, config)
        if cache is not None and key is not None:
            cache.put(key, run, parts)
    turn = end_of_turn_tokens(model.tokenizer, getattr(backend, "eos_ids", ()))
    records = score_generations(task, run.generations, getattr(backend, "special_tokens", ()), turn)
    info = {"path": str(getattr(model, "path", "")), "fingerprint": model.fingerprint,
            "format": getattr(model, "format", "unknown"), "notes": list(getattr(model, "notes", ()))}
    return TaskResult(info, task, config, prompt_mode, records, run, hit, key, time.perf_counter() - start,
                      tuple(notes))


# ------------------------------------------------------------------------------------------- over-long prompts


def context_length(model: ModelLike) -> int | None:
    """The model's context in tokens (its config's ``max_position_embeddings``), None when it does not say."""
    limit = getattr(getattr(getattr(model, "model", None), "config", None), "max_position_embeddings", None)
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None


def item_chars(item: Item) -> int:
    """Characters of an item's own text (question, context, choices): what its prompt is rendered from."""
    return len(item.question) + len(item.context or "") + sum(len(c) for c in item.choices)


def screen(items: Sequence[Item], backend: Backend, config: GenerationConfig, context: int | None
           ) -> tuple[list[Prompt], dict[int, str]]:
    """Render the prompts that can be sent, and say why the others cannot: {index: reason}.

    An item over `MAX_PROMPT_CHARS` is never rendered or tokenized (its prompt is a short stand-in, so the cache
    key and the samples still name it); a rendered prompt over the model's context or `MAX_PROMPT_TOKENS` is kept
    as rendered but never generated from. Both end as diagnosis ``prompt_too_long`` (`_generate`).
    """
    refused: dict[int, str] = {}
    sendable = []
    for i, item in enumerate(items):
        chars = item_chars(item)
        if chars > MAX_PROMPT_CHARS:
            refused[i] = f"item text over evalkit's cap of {MAX_PROMPT_CHARS} characters"
        else:
            sendable.append(i)
    rendered = iter(backend.render([items[i] for i in sendable], config)) if sendable else iter(())
    cap = min(context, MAX_PROMPT_TOKENS) if context is not None else MAX_PROMPT_TOKENS
    prompts = []
    for i, item in enumerate(items):
        if i in refused:
            text = item.question[:200]
            prompts.append(Prompt(item.id, f"{text} …[item text of {item_chars(item)} characters, not rendered]",
                                  (), "plain"))
            continue
        prompt = next(rendered)
        if len(prompt.token_ids) > cap:
            refused[i] = (f"prompt over the model's context of {context} tokens" if cap == context else
                          f"prompt over evalkit's cap of {MAX_PROMPT_TOKENS} tokens")
        prompts.append(prompt)
    return prompts, refused


def _generate(backend: Backend, prompts: Sequence[Prompt], refused: dict[int, str], config: GenerationConfig
              ) -> GenerationRun:
    """Generate for the prompts that can be sent; the refused ones get an empty reply that says why."""
    sendable = [p for i, p in enumerate(prompts) if i not in refused]
    run = backend.generate(sendable, config) if sendable else GenerationRun(
        (), 0.0, {**backend.describe(), "decoder": config.decoder})
    replies = iter(run.generations)
    gens = tuple(Generation(p.item_id, p.text, "", "", len(p.token_ids), 0, "prompt_too_long") if i in refused
                 else next(replies) for i, p in enumerate(prompts))
    return GenerationRun(gens, run.seconds, run.backend, run.phases)


def _metric_dict(m: metrics.Metric) -> dict[str, Any]:
    d = asdict(m)
    d.pop("name", None)
    return d


def _shorten(text: str, limit: int = EXAMPLE_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} …[{len(text) - 2 * half} chars]… {text[-half:]}"
