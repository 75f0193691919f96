"""evalkit.engine: records -> results (metrics, compliance, diagnosis histogram, baseline, failure examples).

The pure core (`score_generations`) is tested on hand-written responses; `evaluate` end to end on a real model:
the zoo's trained base when fixtures/zoo/base exists, and always on a tiny random Qwen3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tiny_models as et
from evalkit.run.cache import Cache
from evalkit.run.engine import RESULTS_SCHEMA_VERSION, TaskResult, evaluate, score_generations
from evalkit.core.extract import Diagnosis
from evalkit.run.backends.transformers import HFBackend
from evalkit.run.generation import Generation, GenerationConfig, GenerationRun
from evalkit.data.tasks import Task, load_task
from evalkit.core.types import Item

REPO = Path(__file__).resolve().parents[3]
ZOO_BASE = REPO / "fixtures" / "zoo" / "base"
EOS = "<|im_end|>"


def _gen(item_id: str, raw: str, finish: str = "eos") -> Generation:
    return Generation(item_id, "prompt", raw, raw.replace(EOS, ""), 5, max(1, len(raw) // 4), finish)


def _result(task: Task, raws: list[tuple[str, str]]) -> TaskResult:
    gens = tuple(_gen(i.id, raw, fin) for i, (raw, fin) in zip(task.items, raws))
    records = score_generations(task, gens, [EOS])
    return TaskResult({"path": "m", "fingerprint": "f", "format": "plain", "notes": []}, task, GenerationConfig(),
                      "chat_template", records, GenerationRun(gens, 2.0, {"backend": "test"}), False, None, 2.0)


YES_NO = Task("yn", "yes_no", tuple(Item("yn", str(i), "yes_no", "q", ("yes" if i % 4 else "no",))
                                    for i in range(8)), "inline")


# --- the pure core ------------------------------------------------------------------------------------------------


def test_all_empty_outputs_are_diagnosed_not_scored_zero():
    doc = _result(YES_NO, [(EOS, "eos")] * 4 + [("", "eos")] * 4).to_dict()
    assert doc["metrics"]["accuracy"]["value"] is None  # undefined, never a silent 0
    assert "no answer extracted from any of the 8 responses" in doc["metrics"]["accuracy"]["reason"]
    assert doc["compliance"] == 0.0
    assert doc["diagnoses"]["special_tokens_only"] == 4 and doc["diagnoses"]["empty"] == 4
    assert set(doc["failure_examples"]) == {"special_tokens_only", "empty"}
    assert doc["baseline_comparison"]["accuracy"]["message"].startswith("accuracy is undefined")


def test_mixed_outputs_histogram_compliance_and_examples():
    raws = [("\\boxed{yes}" + EOS, "eos"), ("\\boxed{no}" + EOS, "eos"), ("I think yes." + EOS, "eos"),
            ("\\boxed{maybe}" + EOS, "eos"), ("Let me think " * 3, "length"), ("\\boxed{yes" + EOS, "eos"),
            ("<think>hmm" + EOS, "eos"), ("\\boxed{yes}" + EOS, "eos")]
    result = _result(YES_NO, raws)
    doc = json.loads(result.to_json())
    assert doc["schema"] == "evalkit.results" and doc["schema_version"] == RESULTS_SCHEMA_VERSION
    assert doc["diagnoses"] == {"ok": 3, "empty": 0, "whitespace_only": 0, "no_box": 1, "malformed_box": 1,
                                "unclosed_think": 1, "truncated": 1, "repetition_loop": 0,
                                "special_tokens_only": 0, "invalid_answer": 1,
                                "prompt_too_long": 0}
    assert doc["compliance"] == 3 / 8
    # gold by item: no yes yes yes no yes yes yes; answered: 0 "yes" (wrong), 1 "no" (wrong), 7 "yes" (right)
    assert doc["metrics"]["accuracy"]["value"] == pytest.approx(1 / 8)
    assert doc["metrics"]["accuracy"]["n_scored"] == 3
    assert doc["trivial_baseline"] == {"accuracy": 0.75}
    assert [e["id"] for e in doc["failure_examples"]["wrong_answer"]] == ["0", "1"]
    assert doc["failure_examples"]["truncated"][0]["finish_reason"] == "length"
    assert doc["primary_metric"] == "accuracy"
    lines = result.samples_jsonl().splitlines()
    assert len(lines) == 8 and json.loads(lines[3])["diagnosis"] == "invalid_answer"


def test_generations_must_match_items():
    with pytest.raises(ValueError, match="paired with item"):
        score_generations(YES_NO, [_gen("x", "a")] + [_gen(i.id, "a") for i in YES_NO.items[1:]])
    with pytest.raises(ValueError, match="7 generations for 8 items"):
        score_generations(YES_NO, [_gen(i.id, "a") for i in YES_NO.items[1:]])


def test_long_examples_are_shortened_but_samples_keep_everything():
    long = " ".join(f"word{i}" for i in range(300)) + EOS
    result = _result(YES_NO, [(long, "eos")] * 8)
    example = result.to_dict()["failure_examples"]["no_box"][0]["raw_text"]
    assert len(example) < 700 and "chars]" in example
    assert json.loads(result.samples_jsonl().splitlines()[0])["raw_text"] == long


# --- evaluate, end to end ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return et.load_tiny(et.save_tiny(tmp_path_factory.mktemp("tiny") / "m"))


class CountingBackend(HFBackend):
    """The real HF backend, counting generate() calls (to prove a cache hit generates nothing)."""

    calls = 0

    def generate(self, prompts, config):
        CountingBackend.calls += 1
        return super().generate(prompts, config)


def test_evaluate_writes_results_and_samples(tiny, tmp_path):
    task = load_task("zoo_span", limit=6)
    result = evaluate(tiny, task, GenerationConfig(max_new_tokens=8, batch_size=4))
    json_path, jsonl_path = result.write(tmp_path)
    doc = json.loads(json_path.read_text())
    assert doc["model"]["fingerprint"] == tiny.fingerprint and doc["task"]["n"] == 6
    assert doc["generation"]["prompt_mode"] == "chat_template" and doc["generation"]["max_new_tokens"] == 8
    assert sum(doc["diagnoses"].values()) == 6
    assert set(doc["metrics"]) >= {"exact", "f1"} and doc["trivial_baseline"]
    t = doc["throughput"]
    assert t["samples"] == 6 and t["output_tokens"] > 0 and t["seconds_per_sample"] > 0 and t["from_cache"] is False
    assert t["device"] == "cpu" and t["decoder"] == "eager"
    rows = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    assert [r["id"] for r in rows] == [i.id for i in task.items]
    assert all(r["prompt"].startswith("<|im_start|>user") for r in rows)


def test_cached_rerun_generates_nothing_and_gives_the_same_results(tiny, tmp_path):
    task = load_task("zoo_yes_no", limit=6)
    cfg = GenerationConfig(max_new_tokens=8)
    cache = Cache(tmp_path / "cache")
    CountingBackend.calls = 0
    first = evaluate(tiny, task, cfg, cache=cache, backend=CountingBackend(tiny.model, tiny.tokenizer))
    again = evaluate(tiny, task, cfg, cache=cache, backend=CountingBackend(tiny.model, tiny.tokenizer))
    assert CountingBackend.calls == 1 and (first.cache_hit, again.cache_hit) == (False, True)
    assert first.cache_key == again.cache_key
    assert again.samples_jsonl() == first.samples_jsonl()
    a, b = first.to_dict(), again.to_dict()
    assert a["throughput"] == {**b["throughput"], "from_cache": False}  # the original speed is kept
    for doc in (a, b):
        doc.pop("cache"), doc.pop("throughput")
    assert a == b
    other = evaluate(tiny, task, GenerationConfig(max_new_tokens=8, system_prompt="Be brief."), cache=cache)
    assert not other.cache_hit


def test_model_without_chat_template_says_so(tmp_path):
    model = et.load_tiny(et.save_tiny(tmp_path / "plain", chat_template=None))
    result = evaluate(model, load_task("zoo_math", limit=2), GenerationConfig(max_new_tokens=4))
    doc = result.to_dict()
    assert doc["generation"]["prompt_mode"] == "plain"
    assert any("no chat template" in n for n in doc["notes"])


@pytest.mark.parametrize("name", ["arc_easy", "boolq", "squad_v2", "gsm8k", "math", "openmath"])
def test_evaluate_on_real_data_samples(tiny, data_dir, name):
    result = evaluate(tiny, load_task(name, data_dir, limit=4), GenerationConfig(max_new_tokens=6))
    doc = result.to_dict()
    assert doc["task"]["name"] == name and sum(doc["diagnoses"].values()) == 4
    assert doc["trivial_baseline"] and doc["metrics"]


needs_zoo = pytest.mark.skipif(not (ZOO_BASE / "config.json").is_file(), reason="fixtures/zoo/base not built yet")


@pytest.fixture(scope="module")
def zoo_base():
    from evalkit.models.loading import load_model

    return load_model(ZOO_BASE)


@needs_zoo
@pytest.mark.slow
@pytest.mark.parametrize("name", ["zoo_math", "zoo_multiple_choice", "zoo_yes_no", "zoo_span"])
def test_zoo_base_answers_its_tasks(zoo_base, name, tmp_path):
    result = evaluate(zoo_base, load_task(name, limit=16), GenerationConfig(max_new_tokens=96, batch_size=16))
    doc = json.loads(result.write(tmp_path)[0].read_text())
    assert doc["compliance"] >= 0.8, doc["diagnoses"]
    primary = doc["metrics"][doc["primary_metric"]]
    assert primary["value"] is not None
    assert doc["baseline_comparison"][doc["primary_metric"]]["beats"], doc["baseline_comparison"]


@needs_zoo
@pytest.mark.parametrize("name", ["arc_challenge", "boolq", "squad_v2", "gsm8k", "math", "openmath"])
def test_zoo_base_on_real_data_samples(zoo_base, data_dir, name, tmp_path):
    result = evaluate(zoo_base, load_task(name, data_dir, limit=4), GenerationConfig(max_new_tokens=48))
    doc = json.loads(result.write(tmp_path)[0].read_text())
    assert sum(doc["diagnoses"].values()) == 4 and doc["trivial_baseline"]
    assert doc["metrics"][doc["primary_metric"]]["n"] == 4


def test_diagnosis_enum_covers_histogram():
    assert list(_result(YES_NO, [("x", "eos")] * 8).diagnoses) == [d.value for d in Diagnosis]


def test_prompts_that_fit_but_leave_no_room_for_the_reply_are_noted(tiny, monkeypatch):
    task = load_task("zoo_span", limit=1)
    longest = max(len(p.token_ids) for p in HFBackend(tiny.model, tiny.tokenizer).render(task.items, GenerationConfig()))
    monkeypatch.setattr(tiny.model.config, "max_position_embeddings", longest + 1)  # the prompts fit, replies do not
    doc = evaluate(tiny, task, GenerationConfig(max_new_tokens=2)).to_dict()
    assert any(f"1 of 1 prompts plus max_new_tokens exceed the model's max_position_embeddings ({longest + 1})" in n
               for n in doc["notes"])
    assert doc["diagnoses"]["prompt_too_long"] == 0
