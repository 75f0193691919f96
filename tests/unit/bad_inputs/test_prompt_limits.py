"""Prompts that would hang or exhaust memory never reach the model: diagnosed ``prompt_too_long`` before generation.

Before issue 13 a 5 MB BoolQ row started a 2M-token forward pass (5.7 GB and growing after 10 minutes), and an
832-token row on the zoo's 512-position model was evaluated silently, with the overflow only as a note.
"""

from __future__ import annotations

import json
import time

import pytest

from evalkit.data.tasks import load_task
from evalkit.gate.manifest import loads
from evalkit.gate.runner import Gate
from evalkit.models.loading import load_model
from evalkit.run import engine
from evalkit.run.engine import evaluate
from evalkit.run.generation import GenerationConfig
from bad_input_helpers import zoo_base  # noqa: F401 (fixtures)

SHORT = {"question": "is the sky blue", "passage": "The sky is blue.", "answer": True}


def _rows(path, *long_passages: str):
    rows = [SHORT, *({**SHORT, "question": f"long {i}", "passage": p} for i, p in enumerate(long_passages))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def base(zoo_base):
    return load_model(zoo_base)


def test_a_5_mb_row_is_refused_in_well_under_a_second(base, tmp_path):
    task = load_task("boolq", _rows(tmp_path / "big.jsonl", "The sky is blue. " * 300_000))  # 5.1 MB
    big = next(i for i in task.items if len(i.context or "") > 5_000_000)
    one = type(task)(task.name, task.family, (big,), task.source)
    started = time.perf_counter()
    result = evaluate(base, one, GenerationConfig(max_new_tokens=8))
    seconds = time.perf_counter() - started
    assert seconds < 0.5, f"{seconds:.2f}s"  # never rendered, tokenized or generated
    record = result.records[0]
    assert record.extraction.diagnosis == "prompt_too_long" and record.generation.output_tokens == 0
    assert f"over evalkit's cap of {engine.MAX_PROMPT_CHARS} characters" in " ".join(result.notes)
    assert len(result.to_json()) < 20_000  # the 5 MB text is not copied into the results document


def test_a_row_longer_than_the_context_is_diagnosed_in_the_verdict(zoo_base, tmp_path):
    """The verdict counts it and the compliance check names it; the short rows are evaluated as before."""
    data = _rows(tmp_path / "rows.jsonl", "The sky is blue and the grass is green. " * 60)  # ~840 tokens > 512
    manifest = loads(f'[gate]\ndevice = "cpu"\nmax_new_tokens = 8\ncache = "{tmp_path / "cache"}"\n'
                     f'[tasks.boolq]\nsource = "{data}"\n[models.base]\npath = "{zoo_base}"\n')
    gate = Gate(manifest, device="cpu")
    verdict = gate.verdict("base", "boolq")
    assert verdict.summary["diagnoses"]["prompt_too_long"] == 1 and verdict.summary["n"] == 2
    assert verdict.get("compliance").values["compliance"] <= 0.5  # the refused item counts as not answered
    result = gate.evidence("base", "boolq").result
    assert result.failure_examples()["prompt_too_long"][0]["finish_reason"] == "prompt_too_long"  # shown in reports
    assert [r.generation.finish_reason for r in result.records][1] == "prompt_too_long"
    assert any("prompt over the model's context of 512 tokens" in n for n in result.notes), result.notes
    assert result.records[0].generation.output_tokens > 0  # the short row was generated


def test_the_token_cap_holds_whatever_the_context_claims(base, monkeypatch):
    monkeypatch.setattr(base.model.config, "max_position_embeddings", 10**9)
    monkeypatch.setattr(engine, "MAX_PROMPT_TOKENS", 20)
    result = evaluate(base, load_task("zoo_span", limit=2), GenerationConfig(max_new_tokens=4))
    assert result.diagnoses["prompt_too_long"] == 2
    assert "prompt over evalkit's cap of 20 tokens" in " ".join(result.notes)


def test_a_cached_run_is_screened_too(base, tmp_path):
    """The cache stores the refused items as refused: a rerun reads the same diagnosis without generating."""
    from evalkit.run.cache import Cache

    task = load_task("boolq", _rows(tmp_path / "rows.jsonl", "x " * 60_000))
    first = evaluate(base, task, GenerationConfig(max_new_tokens=4), cache=Cache(tmp_path / "c"))
    again = evaluate(base, task, GenerationConfig(max_new_tokens=4), cache=Cache(tmp_path / "c"))
    assert again.cache_hit and again.diagnoses == first.diagnoses and first.diagnoses["prompt_too_long"] == 1
