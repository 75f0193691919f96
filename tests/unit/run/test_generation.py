"""evalkit.generation: prompts through the chat template, batched greedy decoding, per-sample records.

Real transformers generation on a tiny random Qwen3 (tests/unit/tiny_models.py): the outputs are noise, but every
path (chat template, left padding, eos handling, static cache) is the one real models take.
"""

from __future__ import annotations

import pytest

import tiny_models as et
from evalkit.core import prompts
from evalkit.run.backends.transformers import HFBackend
from evalkit.run.generation import (
    Backend,
    Generation,
    GenerationConfig,
    Prompt,
    eos_token_ids,
    render_prompts,
)
from evalkit.core.types import Item

torch = pytest.importorskip("torch")


def _items(n: int = 7) -> list[Item]:
    # different lengths on purpose: batches are length-sorted and left-padded
    return [Item("t", f"i{k}", "yes_no", "is the sky blue " * (k % 4 + 1), ("yes",),
                 context="the sky is blue . " * (k % 3)) for k in range(n)]


@pytest.fixture(scope="module")
def tiny():
    tok = et.build_tokenizer()
    model = et.build_model(len(tok), layers=2, hidden=64, seed=3, eos_id=tok.eos_token_id)
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, tok


# --- configuration and prompts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, needle", [
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"batch_size": 0}, "batch_size"),
    ({"decoder": "fast"}, "decoder"),
])
def test_config_rejects_bad_values(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        GenerationConfig(**kwargs)


def test_config_is_frozen_and_serializable():
    cfg = GenerationConfig(system_prompt="Be brief.")
    with pytest.raises(AttributeError):
        cfg.batch_size = 3  # type: ignore[misc]
    assert cfg.to_dict()["system_prompt"] == "Be brief."


def test_chat_template_gets_enable_thinking_and_system_prompt():
    tok = et.build_tokenizer()
    item = _items(1)[0]
    off = render_prompts(tok, [item], GenerationConfig())[0]
    on = render_prompts(tok, [item], GenerationConfig(enable_thinking=True, system_prompt="Be brief."))[0]
    assert off.mode == on.mode == "chat_template"
    assert off.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # thinking off: empty think block
    assert "<think>" not in on.text and on.text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert prompts.user_message(item) in off.text
    assert list(off.token_ids) == tok(off.text, add_special_tokens=False)["input_ids"]


def test_no_chat_template_falls_back_to_plain_prompt():
    tok = et.build_tokenizer(chat_template=None)
    item = _items(1)[0]
    p = render_prompts(tok, [item], GenerationConfig(system_prompt="Sys"))[0]
    assert p.mode == "plain" and p.text == prompts.plain_prompt(item, "Sys")
    forced = render_prompts(et.build_tokenizer(), [item], GenerationConfig(use_chat_template=False))[0]
    assert forced.mode == "plain"


def test_eos_ids_merge_generation_config_and_tokenizer(tiny):
    model, tok = tiny
    model.generation_config.eos_token_id = [5, tok.eos_token_id]
    try:
        assert eos_token_ids(model, tok) == (5, tok.eos_token_id)
    finally:
        model.generation_config.eos_token_id = tok.eos_token_id


# --- decoding -----------------------------------------------------------------------------------------------------


def test_backend_satisfies_protocol(tiny):
    assert isinstance(HFBackend(*tiny), Backend)


def test_batched_equals_one_at_a_time_and_keeps_order(tiny):
    backend = HFBackend(*tiny)
    cfg = GenerationConfig(max_new_tokens=8, batch_size=3)
    ps = backend.render(_items(), cfg)
    batched = backend.generate(ps, cfg)
    single = backend.generate(ps, GenerationConfig(max_new_tokens=8, batch_size=1))
    assert [g.item_id for g in batched.generations] == [p.item_id for p in ps]
    assert batched.generations == single.generations  # left padding does not change greedy tokens
    for g, p in zip(batched.generations, ps):
        assert g.prompt == p.text and g.prompt_tokens == len(p.token_ids)
    assert batched.backend["decoder"] == "eager" and batched.seconds > 0


def test_static_decoder_matches_eager(tiny):
    backend = HFBackend(*tiny)
    items = _items(9)
    eager = backend.generate(backend.render(items, GenerationConfig(max_new_tokens=10, batch_size=4)),
                             GenerationConfig(max_new_tokens=10, batch_size=4))
    cfg = GenerationConfig(max_new_tokens=10, batch_size=4, decoder="static")
    static = backend.generate(backend.render(items, cfg), cfg)
    assert static.generations == eager.generations


def test_eos_stops_a_row_and_is_recorded(tiny):
    model, tok = tiny
    backend = HFBackend(model, tok)
    cfg = GenerationConfig(max_new_tokens=6, batch_size=4)
    ps = backend.render(_items(4), cfg)
    free = backend.generate(ps, cfg).generations
    assert all(g.finish_reason == "length" and g.output_tokens == 6 for g in free)
    # Declare the token the model emits third in row 0 an eos token: row 0 must now stop there.
    third = tok(free[0].raw_text, add_special_tokens=False)["input_ids"][2]
    model.generation_config.eos_token_id = [tok.eos_token_id, third]
    try:
        for decoder in ("eager", "static"):
            cfg2 = GenerationConfig(max_new_tokens=6, batch_size=4, decoder=decoder)
            stopped = HFBackend(model, tok).generate(ps, cfg2).generations
            g = stopped[0]
            assert g.finish_reason == "eos" and g.output_tokens <= 3
            assert g.raw_text.endswith(tok.convert_ids_to_tokens(third))
    finally:
        model.generation_config.eos_token_id = tok.eos_token_id


def test_special_tokens_kept_in_raw_text_only(tiny):
    model, tok = tiny
    backend = HFBackend(model, tok)
    cfg = GenerationConfig(max_new_tokens=4)
    model.generation_config.eos_token_id = [tok.eos_token_id]
    g = backend.generate(backend.render(_items(1), cfg), cfg).generations[0]
    ids = tok(g.raw_text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == g.text


def test_host_side_padding_and_decoding_are_the_per_row_ones(tiny):
    """The batch-at-once left padding and decoding (written for batches of 1024 rows) against the per-row forms they
    replaced: ragged and empty rows, special and added tokens, end tokens mid-row; and a tokenizer whose decode does
    its own clean-up is decoded row by row."""
    import random

    _, tok = tiny
    backend = HFBackend(tiny[0], tok)
    rng = random.Random(0)
    rows = [[rng.randrange(len(tok)) for _ in range(rng.randrange(0, 12))] for _ in range(40)] + [[]]
    ids, mask = backend._left_pad(rows)
    width = max(map(len, rows))
    for row, got, m in zip(rows, ids.tolist(), mask.tolist(), strict=True):
        assert got == [backend.pad_id] * (width - len(row)) + row and m == [0] * (width - len(row)) + [1] * len(row)
    prompts = [Prompt(str(i), "", (1,), "plain") for i in range(len(rows))]
    eos = set(backend.eos_ids)
    assert any(eos & set(r[:-1]) for r in rows)  # some rows are cut before their end
    kept = [row[:next((k + 1 for k, t in enumerate(row) if t in eos), len(row))] for row in rows]  # up to the end
    for row, toks, g in zip(rows, kept, backend._records(prompts, rows), strict=True):
        assert g.token_ids == tuple(toks) and g.finish_reason == ("eos" if eos & set(row) else "length")
        assert (g.raw_text, g.text) == (tok.decode(toks), tok.decode(toks, skip_special_tokens=True))
    from evalkit.run.backends.transformers import _batch_decodes

    assert _batch_decodes(tok)
    tok.clean_up_tokenization_spaces = True
    try:
        assert not _batch_decodes(tok)
        assert [g.raw_text for g in backend._records(prompts, rows)] == [tok.decode(toks) for toks in kept]
    finally:
        tok.clean_up_tokenization_spaces = False


def test_throughput_counts_tokens():
    from evalkit.run.generation import GenerationRun

    gens = tuple(Generation(str(i), "p", "x", "x", 3, 10, "length") for i in range(4))
    t = GenerationRun(gens, 2.0, {"backend": "x"}).throughput()
    assert t == {"samples": 4, "seconds": 2.0, "seconds_per_sample": 0.5, "output_tokens": 40,
                 "tokens_per_second": 20.0}


@pytest.mark.gpu
@pytest.mark.parametrize("decoder", ["compiled", "cuda_graph"])
def test_fast_decoder_matches_eager_on_gpu(decoder):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    tok = et.build_tokenizer()
    model = et.build_model(len(tok), layers=2, hidden=64, seed=3, eos_id=tok.eos_token_id).cuda()
    backend = HFBackend(model, tok)
    items = _items(9)
    runs = {}
    for name in ("eager", decoder):
        cfg = GenerationConfig(max_new_tokens=10, batch_size=4, decoder=name)
        runs[name] = backend.generate(backend.render(items, cfg), cfg).generations
    assert runs[decoder] == runs["eager"]


def test_cuda_graph_decoder_needs_cuda(tiny):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    backend = HFBackend(*tiny)
    cfg = GenerationConfig(max_new_tokens=4, decoder="cuda_graph")
    with pytest.raises(ValueError, match="decoder='cuda_graph' needs the model on a CUDA device"):
        backend.generate(backend.render(_items(2), cfg), cfg)


def test_checkpoint_sampling_settings_are_ignored(tiny):
    """A generation_config.json asking for sampling / repetition penalty must not change greedy evaluation."""
    model, tok = tiny
    backend = HFBackend(model, tok)
    cfg = GenerationConfig(max_new_tokens=8, batch_size=4)
    ps = backend.render(_items(4), cfg)
    plain = backend.generate(ps, cfg).generations
    gc = model.generation_config
    saved = (gc.do_sample, gc.temperature, gc.repetition_penalty, gc.min_new_tokens)
    gc.do_sample, gc.temperature, gc.repetition_penalty, gc.min_new_tokens = True, 0.6, 1.5, 8
    try:
        assert backend.generate(ps, cfg).generations == plain
    finally:
        gc.do_sample, gc.temperature, gc.repetition_penalty, gc.min_new_tokens = saved
