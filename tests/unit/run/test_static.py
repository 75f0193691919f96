"""The static decoders' fast path on the zoo: GQA attention, compressed-tensors layers, fused kernels, phase timings.

The zoo's parents are trained models, so equal greedy tokens there mean the fast path computes what eager decoding
computes on real weights, not only on noise (tests/unit/run/test_generation.py covers the tiny random models).
"""

from __future__ import annotations

import pytest

from evalkit.run.backends.transformers import HFBackend
from evalkit.run.generation import GenerationConfig

torch = pytest.importorskip("torch")

PARENTS = ("base", "openmath_SFT_NoPeft_NoQuant", "openmath_SFT_LoRa64_NoQuant")


def _zoo(names, device="cpu"):
    from evalkit.models.loading import load_model
    from evalkit.zoo import default_zoo_dir
    from evalkit.zoo.build import build

    if not all((default_zoo_dir() / p).is_dir() for p in PARENTS):
        pytest.skip(f"the committed zoo parents are not under {default_zoo_dir()}")
    return {n: load_model(p, device=device) for n, p in build(only=list(names)).items()}


def _generations(model, decoder, tasks=("zoo_math", "zoo_span"), limit=12, batch_size=8):
    from evalkit.data.tasks import load_task

    backend = HFBackend(model.model, model.tokenizer)
    cfg = GenerationConfig(max_new_tokens=96, batch_size=batch_size, decoder=decoder)
    runs = [backend.generate(backend.render(load_task(t, limit=limit).items, cfg), cfg) for t in tasks]
    return [g for r in runs for g in r.generations], runs


def test_gqa_attention_gives_eager_tokens_on_the_zoo_parents():
    for name, model in _zoo(PARENTS).items():  # 8 items of 2 tasks each, ragged prompt lengths (left padding)
        eager, _ = _generations(model, "eager", limit=8)
        static, runs = _generations(model, "static", limit=8)
        assert static == eager, name
        assert all(r.backend.get("fallback") is None for r in runs)


def test_every_run_is_timed_per_phase():
    model = _zoo(["base"])["base"]
    for decoder in ("eager", "static"):
        _, runs = _generations(model, decoder, tasks=("zoo_math",))
        p = runs[0].phases
        assert p is not None and p.batches == 2 and p.prefill_s_per_token > 0
        assert p.decode_steps > 20 and p.decode_s_per_row > 0  # zoo_math replies run ~30-60 tokens


def test_int8_activation_quantization_is_the_librarys_bit_for_bit():
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import forward_quantize

    from evalkit.run.backends.transformers.quantized import _Constants, fake_quant_int8_token

    args = QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="token", dynamic=True)
    module = torch.nn.Linear(8, 8)
    module.quantization_status = None
    g = torch.Generator().manual_seed(0)
    for dtype, bits in ((torch.bfloat16, torch.int16), (torch.float16, torch.int16), (torch.float32, torch.int32)):
        for scale in (1e-3, 1.0, 30.0):
            x = (torch.randn(3, 5, 64, generator=g) * scale).to(dtype)
            x[0, 1] = 0  # an all-zero token: its scale is the dtype's eps
            x[1, 2, :7] = -0.0
            ref = forward_quantize(module, x, "input", args)
            mine = fake_quant_int8_token(x, _Constants(args, x.device, dtype))
            assert torch.equal(ref.view(bits), mine.view(bits))  # signed zeros included


def test_quantized_fast_forwards_change_no_logit():
    pytest.importorskip("compressed_tensors")
    from evalkit.run.backends.transformers.quantized import QuantizedModules

    models = _zoo(["base_smoothquant_w8a8", "base_gptq_w4g64"])
    ids = torch.randint(3, 1000, (3, 11), generator=torch.Generator().manual_seed(0))
    for name, loaded in models.items():
        fast = QuantizedModules(loaded.model, share_inputs=True)
        assert fast.note() is None and set(fast.kinds) == ({"int8_token"} if "w8a8" in name else {"passthrough"})
        with torch.inference_mode():
            before = loaded.model(input_ids=ids).logits
            with fast.installed():
                during = loaded.model(input_ids=ids).logits
            after = loaded.model(input_ids=ids).logits
        assert torch.equal(before, during) and torch.equal(before, after), name


def test_fused_kernels_compile_per_argument_dtype_on_their_own_code_object():
    """Dynamo allows 8 recompiles per code object: one code object shared by every model of a gate ran out after a
    few models (bf16, fp32, int8 inputs), and later models silently left the fast path (seen on an H200)."""
    from evalkit.run.backends.transformers import kernels

    f32, bf16 = torch.ones(2), torch.ones(2, dtype=torch.bfloat16)
    a, b = (kernels._compiled("square", kernels._square, x) for x in (f32, bf16))
    assert a is not b and kernels._compiled("square", kernels._square, torch.zeros(3)) is a
    codes = [getattr(fn, "_torchdynamo_orig_callable", fn).__code__ for fn in (a, b)]  # what dynamo caches on
    assert len({id(c) for c in codes}) == 2 and all(c is not kernels._square.__code__ for c in codes)


# --- on a GPU ------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_triton_kernels_agree_with_eager_on_gpu():
    """The hand-written kernels against the eager ops they replace, on shapes the probes do not use: rotary embedding
    bit for bit, RMSNorm within `RMS_TOLERANCE` steps of its dtype, decode attention within bf16 rounding of SDPA."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("triton")
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm, apply_rotary_pos_emb

    from evalkit.run.backends.transformers import decode_attention, triton_kernels
    from evalkit.run.backends.transformers.kernels import _within_ulps

    g = torch.Generator(device="cuda").manual_seed(1)

    def randn(*shape):
        return (torch.randn(shape, generator=g, device="cuda") * 4).to(torch.bfloat16)

    q, k = randn(7, 33, 16, 64).transpose(1, 2), randn(7, 33, 4, 64).transpose(1, 2)
    cos, sin = randn(7, 33, 64), randn(7, 33, 64)
    for ours, eager in zip(triton_kernels.rope(q, k, cos, sin), apply_rotary_pos_emb(q, k, cos, sin), strict=True):
        assert torch.equal(ours, eager)
    norm = Qwen3RMSNorm(896, eps=1e-6).to("cuda", torch.bfloat16)
    norm.weight.data = randn(896)
    x = randn(3, 41, 896)
    ours = triton_kernels.rms_norm(x, norm.weight, norm.variance_epsilon)
    assert _within_ulps(ours, norm(x), triton_kernels.RMS_TOLERANCE)
    assert not _within_ulps(ours, norm(x) * 1.05, triton_kernels.RMS_TOLERANCE)  # the bound does bind
    assert decode_attention.check(torch.device("cuda"), torch.bfloat16, 14, 2, 64) is None


@pytest.mark.gpu
@pytest.mark.parametrize("attention", ["triton", "sdpa", "flash"])
@pytest.mark.parametrize("name", ["base", "openmath_SFT_LoRa64_NoQuant", "base_smoothquant_w8a8", "base_gptq_w4g64"])
def test_cuda_graph_decoder_gives_eager_tokens_on_the_zoo(name, attention, monkeypatch):
    """The three decode attentions (Triton over each row's attended slots, the default; masked SDPA over buckets;
    flash varlen), with the Triton RMSNorm and rotary kernels, on a parent, the LoRA parent, W8A8 (activation
    quantization captured) and W4A16."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    monkeypatch.setenv("EVALKIT_ATTENTION", attention)
    model = _zoo([name], device="cuda")[name]
    eager, _ = _generations(model, "eager", limit=48, batch_size=16)
    fast, runs = _generations(model, "cuda_graph", limit=48, batch_size=16)
    assert all(r.backend.get("fallback") is None for r in runs), runs[0].backend  # captured, fused, on the fast path
    assert fast == eager
