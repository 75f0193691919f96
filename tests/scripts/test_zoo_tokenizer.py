"""scripts/zoo_tokenizer.py: Qwen3-style special tokens and chat template, digit splitting, offline HF round trip."""

from __future__ import annotations

import doctest
import json

import pytest

import zoo_tokenizer as zt  # scripts/ is on sys.path (tests/scripts/conftest.py)
from evalkit.core.prompts import messages
from evalkit.data.synthetic import generate, reference_response
from evalkit.core.types import FAMILIES


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The zoo tokenizer, built from a small corpus, saved and reloaded through AutoTokenizer (offline)."""
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("tok")
    tokenizer = zt.build_zoo_tokenizer(per_family=400)
    tokenizer.save_pretrained(path)
    zt.save_generation_config(str(path), tokenizer)
    return path, AutoTokenizer.from_pretrained(path)


def test_doctests() -> None:
    assert doctest.testmod(zt).failed == 0


def test_special_tokens_like_qwen3(saved) -> None:
    _, tok = saved
    assert len(tok) == zt.VOCAB_SIZE + 2 == 1024
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    for token in ("<think>", "</think>", "<|im_start|>", "<|im_end|>"):
        assert tok.convert_ids_to_tokens(tok(token)["input_ids"]) == [token]
    text = "<think>\n\n</think>\n\n\\boxed{5}<|im_end|>"
    assert "<think>" in tok.decode(tok(text)["input_ids"], skip_special_tokens=True)  # added, not special
    assert "<|im_end|>" not in tok.decode(tok(text)["input_ids"], skip_special_tokens=True)


def test_generation_config_stops_on_im_end(saved) -> None:
    path, _ = saved
    config = json.loads((path / "generation_config.json").read_text())
    assert config["eos_token_id"] == [2, 0] and config["pad_token_id"] == 0


def test_digits_are_single_tokens(saved) -> None:
    _, tok = saved
    pieces = tok.convert_ids_to_tokens(tok("Ada has 1234 pens, 56 + 7 = 63")["input_ids"])
    digits = [p.lstrip("Ġ") for p in pieces if any(c.isdigit() for c in p)]
    assert digits == list("1234567" + "63")


@pytest.mark.parametrize("enable_thinking", [False, True])
def test_hf_chat_template_matches_ours_and_qwen3_think_switch(saved, enable_thinking: bool) -> None:
    _, tok = saved
    for family in FAMILIES:
        item = generate(family, 1, seed=0)[0]
        ours = zt.render_prompt(item, enable_thinking=enable_thinking)
        theirs = tok.apply_chat_template(messages(item), tokenize=False, add_generation_prompt=True,
                                         enable_thinking=enable_thinking)
        assert ours == theirs
        assert theirs.endswith("<|im_start|>assistant\n" + ("" if enable_thinking else "<think>\n\n</think>\n\n"))
    # Qwen3 default (no enable_thinking passed) is thinking on: no empty think block.
    default = tok.apply_chat_template(messages(item), tokenize=False, add_generation_prompt=True)
    assert default.endswith("<|im_start|>assistant\n")


def test_training_text_equals_the_templates_own_rendering_of_the_answer() -> None:
    """What the zoo learns is what the template renders for a finished conversation (Qwen3's empty think)."""
    for family in FAMILIES:
        item = generate(family, 1, seed=0)[0]
        prompt, completion = zt.chat_example(item)
        chat = messages(item) + [{"role": "assistant", "content": reference_response(item)}]
        assert zt.render_chat(chat, add_generation_prompt=False) == prompt + completion + "\n"
        think_prompt, think_completion = zt.chat_example(item, enable_thinking=True)
        assert think_prompt + think_completion == prompt + completion


def test_round_trip_and_lengths_fit_cpu_generation(saved) -> None:
    """Prompts under 120 tokens and responses under 56 keep the gate's CPU generation fast (and under the
    training script's 64-token evaluation budget)."""
    _, tok = saved
    for family in FAMILIES:
        for item in generate(family, 100, seed=0):
            prompt, completion = zt.chat_example(item)
            ids = tok(prompt + completion)["input_ids"]
            assert tok.decode(ids) == prompt + completion
            assert len(tok(prompt)["input_ids"]) < 120
            assert len(tok(completion)["input_ids"]) < 56


def test_build_is_reproducible() -> None:
    a = zt.build_zoo_tokenizer(per_family=200)
    b = zt.build_zoo_tokenizer(per_family=200)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
