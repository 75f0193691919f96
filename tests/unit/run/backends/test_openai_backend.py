"""The `openai` backend against a fake completions server: what it sends, how it retries and fails, what it records.

Fast (no vLLM, no model weights): part of the ordinary `make test`.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_server import FakeServer

from evalkit.errors import BackendError, RequestError
from evalkit.run.backends.served import served_model
from evalkit.run.backends.openai import OpenAIBackend, OpenAIConfig
from evalkit.run.cache import Cache
from evalkit.run.engine import evaluate
from evalkit.run.backends.transformers import HFBackend
from evalkit.run.generation import GenerationConfig, Prompt
from evalkit.data.tasks import load_task

REPO = Path(__file__).resolve().parents[4]
BASE = REPO / "fixtures" / "zoo" / "base"


@pytest.fixture(scope="module")
def base():
    return served_model(BASE)


def backend(base, *urls: str, **kw) -> OpenAIBackend:
    kw.setdefault("backoff_s", 0.001)
    return OpenAIBackend.for_model(base, OpenAIConfig(tuple(urls), **kw))


def prompts(base, n: int = 3) -> list[Prompt]:
    task = load_task("zoo_yes_no", limit=n)
    return backend(base, "http://unused").render(task.items, GenerationConfig())


def test_every_decoding_parameter_is_sent_explicitly(base):
    with FakeServer() as s:
        b = backend(base, s.url)
        ps = prompts(base, 1)
        b.generate(ps, GenerationConfig(max_new_tokens=7))
    body = s.requests[0]
    assert body["prompt"] == list(ps[0].token_ids)  # token ids rendered by evalkit: no server-side template
    assert "messages" not in body
    assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"], body["n"]) == (0.0, 1.0, 0, 0.0, 1)
    assert (body["repetition_penalty"], body["presence_penalty"], body["frequency_penalty"]) == (1.0, 0.0, 0.0)
    assert body["max_tokens"] == 7 and body["seed"] == 0 and body["min_tokens"] == 0 and body["ignore_eos"] is False
    assert body["stop_token_ids"] == [2, 0]  # the model's end tokens: generation_config's and the tokenizer's
    assert body["skip_special_tokens"] is False and body["include_stop_str_in_output"] is True
    assert body["return_token_ids"] is True and body["add_special_tokens"] is False


@pytest.mark.parametrize("row", [[5, 6, 2], [5, 6, 2, 7, 8], [5, 0], [5, 6, 7, 8]])
def test_records_are_decoded_as_hf_backend_decodes_its_tokens(base, row):
    hf = HFBackend(SimpleNamespace(generation_config=base.generation_config), base.tokenizer)
    prompt = prompts(base, 1)[0]
    with FakeServer(reply=lambda body: {"token_ids": row}) as s:
        gen = backend(base, s.url).generate([prompt], GenerationConfig(max_new_tokens=4 if len(row) == 4 else 8))
    assert gen.generations[0] == hf._records([prompt], [row])[0]


def test_finish_reasons(base):
    with FakeServer(reply=lambda body: {"token_ids": [5, 6, 2]}) as s:
        assert backend(base, s.url).generate(prompts(base, 1), GenerationConfig()).generations[0].finish_reason == "eos"
    with FakeServer(reply=lambda body: {"token_ids": [5] * body["max_tokens"], "finish_reason": "length"}) as s:
        gen = backend(base, s.url).generate(prompts(base, 1), GenerationConfig(max_new_tokens=5)).generations[0]
    assert (gen.finish_reason, gen.output_tokens) == ("length", 5)


def test_a_stop_without_end_token_before_max_tokens_is_an_error(base):
    with FakeServer(reply=lambda body: {"token_ids": [5, 6], "finish_reason": "length"}) as s:
        with pytest.raises(RequestError, match=r"stopped after 2 of 9 tokens without an end token"):
            backend(base, s.url).generate(prompts(base, 1), GenerationConfig(max_new_tokens=9))


def test_503_is_retried_with_backoff_then_succeeds(base):
    with FakeServer(fail=[503, 503]) as s:
        b = backend(base, s.url, retries=3, backoff_s=0.02, concurrency=1)
        start = time.perf_counter()
        run = b.generate(prompts(base, 1), GenerationConfig())
        waited = time.perf_counter() - start
    assert len(s.requests) == 3 and run.generations[0].finish_reason == "eos"
    assert waited >= 0.02 + 0.04  # backoff doubles: 0.02 s, then 0.04 s


def test_final_failure_names_server_item_status_and_body(base):
    with FakeServer(fail=[503] * 10) as s:
        ps = prompts(base, 1)
        with pytest.raises(RequestError) as err:
            backend(base, s.url, retries=2).generate(ps, GenerationConfig())
    text = str(err.value)
    assert s.url in text and repr(ps[0].item_id) in text and "HTTP 503" in text and "scripted 503" in text
    assert "after 3 attempts" in text and len(s.requests) == 3


def test_client_errors_are_not_retried(base):
    with FakeServer(fail=[400]) as s:
        with pytest.raises(RequestError, match=r"HTTP 400: .*scripted 400"):
            backend(base, s.url, retries=3).generate(prompts(base, 1), GenerationConfig())
    assert len(s.requests) == 1


def test_an_unreachable_server_is_named(base):
    with FakeServer() as s:
        b = backend(base, s.url, retries=1)
        b.describe()
    with pytest.raises(RequestError, match=rf"{s.url}.*(Connection refused|URLError)"):
        b.generate(prompts(base, 1), GenerationConfig())


def test_concurrency_limit_per_server_is_honoured(base):
    with FakeServer(delay_s=0.05) as a, FakeServer(delay_s=0.05) as b:
        run = backend(base, a.url, b.url, concurrency=2).generate(prompts(base, 12), GenerationConfig())
    assert len(run.generations) == 12 and run.backend["servers"] == "2"
    assert a.max_in_flight <= 2 and b.max_in_flight <= 2
    assert len(a.requests) >= 2 and len(b.requests) >= 2 and a.max_in_flight + b.max_in_flight >= 3
    assert [g.item_id for g in run.generations] == [p.item_id for p in prompts(base, 12)]  # item order kept


def test_describe_names_engine_version_and_model_and_servers_must_agree(base):
    with FakeServer(model="base") as a, FakeServer(model="base", version="0.31.0") as b:
        info = backend(base, a.url).describe()
        assert info == {"backend": "openai", "dialect": "vllm", "engine": "vllm", "engine_version": "0.32.0",
                        "model": "base", "max_model_len": "512"}
        with pytest.raises(BackendError, match="servers disagree"):
            backend(base, a.url, b.url).describe()


def test_prompts_longer_than_the_server_allows_fail_before_any_request(base):
    with FakeServer(max_model_len=60) as s:
        with pytest.raises(BackendError, match=r"exceed the server's max_model_len 60"):
            backend(base, s.url).generate(prompts(base, 3), GenerationConfig(max_new_tokens=32))
    assert s.requests == []


def test_engine_counters_are_read_from_metrics(base):
    with FakeServer() as s:
        run = backend(base, s.url).generate(prompts(base, 4), GenerationConfig())
    assert run.backend["engine_generation_tokens"] == "12"


def test_plain_openai_dialect_sends_stop_strings_and_restores_the_end_token(base):
    eos = base.tokenizer.convert_ids_to_tokens(2)
    with FakeServer(reply=lambda body: {"text": "\\boxed{yes}", "token_ids": None}) as s:
        gen = backend(base, s.url, dialect="openai").generate(prompts(base, 1), GenerationConfig()).generations[0]
    body = s.requests[0]
    assert body["stop"] == [eos, base.tokenizer.convert_ids_to_tokens(0)] and "stop_token_ids" not in body
    assert gen.raw_text == "\\boxed{yes}" + eos and gen.text == "\\boxed{yes}" and gen.finish_reason == "eos"


def test_evaluate_through_a_server_uses_the_cache_with_the_backend_in_its_key(base, tmp_path):
    task = load_task("zoo_yes_no", limit=3)
    cache = Cache(tmp_path)
    with FakeServer(reply=lambda body: {"token_ids": base.tokenizer("\\boxed{yes}")["input_ids"] + [2]}) as s:
        first = evaluate(base, task, GenerationConfig(), cache=cache, backend=backend(base, s.url))
        again = evaluate(base, task, GenerationConfig(), cache=cache, backend=backend(base, s.url))
    assert not first.cache_hit and again.cache_hit and len(s.requests) == 3
    assert first.compliance == 1.0 and first.throughput()["backend"] == "openai"
