"""evalkit.quantization: named llmcompressor recipes, instruction-aware calibration, recorded and deterministic."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch

from evalkit.models.loading import load_model
from evalkit.models.quantization import (RECIPES, QuantizationError, calibration_items, calibration_texts, provenance_versions,
                                  quantize)
from evalkit.data.synthetic import generate
from tiny_models import tiny_lora, tiny_quantized, tiny_qwen3


def test_registry_has_the_seed_recipes_and_each_builds_modifiers():
    assert {"gptq-w4g64", "awq-w4g128", "smoothquant-w8a8", "rtn-w4g128", "gptq-w8"} <= set(RECIPES)
    for name, recipe in RECIPES.items():
        assert recipe.name == name and recipe.description
        assert recipe.build(), name


def test_calibration_items_are_training_items_of_every_family():
    items = calibration_items(8, seed=0)
    assert [i.family for i in items] == ["math", "multiple_choice", "yes_no", "span"] * 2
    test_items = {(i.question, i.context, i.choices) for f in ("math", "multiple_choice", "yes_no", "span")
                  for i in generate(f, 200, seed=0)}
    assert not {(i.question, i.context, i.choices) for i in items} & test_items
    assert calibration_items(8, seed=0) == items != calibration_items(8, seed=1)


def test_calibration_texts_are_chat_templated_prompts_with_answers():
    tokenizer = load_model(tiny_qwen3()).tokenizer
    items = calibration_items(4)
    texts = calibration_texts(items, tokenizer)
    for item, text in zip(items, texts):
        assert text.startswith("<|im_start|>user\n") and "<|im_start|>assistant\n" in text
        assert "\\boxed{" in text.split("<|im_start|>assistant\n")[1]
        assert text.rstrip().endswith("<|im_end|>")
    tokenizer.chat_template = None
    plain = calibration_texts(items[:1], tokenizer)[0]
    assert "Answer: " in plain and "<|im_start|>" not in plain


def test_gptq_w4g64_folder_is_compressed_tensors_with_its_provenance():
    folder = tiny_quantized("gptq-w4g64")
    config = json.loads((folder / "config.json").read_text())["quantization_config"]
    weights = config["config_groups"]["group_0"]["weights"]
    assert (config["quant_method"], weights["num_bits"], weights["group_size"]) == ("compressed-tensors", 4, 64)
    assert config["ignore"] == ["lm_head"]
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["evalkit_recipe"] == "gptq-w4g64"
    assert provenance["calibration"]["n"] == 8 and provenance["calibration"]["seed"] == 0
    assert provenance["versions"] == provenance_versions() and provenance["versions"]["llmcompressor"] != "absent"
    assert provenance["parent"]["fingerprint"] == load_model(tiny_qwen3()).fingerprint
    lines = (folder / "calibration.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[0])["task"] == "zoo_math"
    assert load_model(folder).format == "compressed-tensors"


def test_w8a8_recipe_quantizes_inputs_dynamically_per_token():
    config = json.loads((tiny_quantized("smoothquant-w8a8") / "config.json").read_text())["quantization_config"]
    group = config["config_groups"]["group_0"]
    assert group["weights"]["num_bits"] == 8 and group["weights"]["strategy"] == "channel"
    acts = group["input_activations"]
    assert (acts["num_bits"], acts["strategy"], acts["dynamic"], acts["type"]) == (8, "token", True, "int")


@pytest.mark.slow
def test_same_inputs_give_byte_identical_folders_whatever_the_caller_threads(tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a = quantize(tiny_qwen3(), "gptq-w4g64", tmp_path / "a", n_calibration=8)
        torch.set_num_threads(1)
        b = quantize(tiny_qwen3(), "gptq-w4g64", tmp_path / "b", n_calibration=8)
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.slow
def test_awq_runs_on_cpu(tmp_path):
    """llmcompressor's AWQ pins memory unconditionally; evalkit's guard lets it run without an accelerator."""
    folder = quantize(tiny_qwen3(), "awq-w4g128", tmp_path / "awq", n_calibration=4)
    loaded = load_model(folder)
    assert loaded.notes[0] == "weights int4 asym group 128 [28 modules]"
    with torch.no_grad():
        assert torch.isfinite(loaded.model(torch.tensor([[1, 5, 9]])).logits).all()


def test_lora_adapter_is_merged_before_quantizing(tmp_path):
    folder = quantize(tiny_lora(), "rtn-w4g128", tmp_path / "lora_rtn", n_calibration=2)
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["parent"]["format"] == "peft-lora"
    assert provenance["calibration"] is None and not (folder / "calibration.jsonl").exists()  # RTN: none used
    assert not (folder / "adapter_config.json").exists()
    assert load_model(folder).format == "compressed-tensors"


def test_refusals(tmp_path):
    with pytest.raises(QuantizationError, match="unknown recipe 'gptq-w5'"):
        quantize(tiny_qwen3(), "gptq-w5", tmp_path / "x")
    with pytest.raises(QuantizationError, match="quantize its unquantized parent"):
        quantize(tiny_quantized("gptq-w4g64"), "gptq-w4g64", tmp_path / "x")
    with pytest.raises(QuantizationError, match="empty calibration set"):
        quantize(tiny_qwen3(), "gptq-w4g64", tmp_path / "x", calibration=[])
    assert not (tmp_path / "x").exists()


def test_missing_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llmcompressor", None)  # what an environment without the extra looks like
    with pytest.raises(QuantizationError, match=r"pip install 'evalkit\[quant\]'"):
        quantize(tiny_qwen3(), "gptq-w4g64", tmp_path / "x")


def test_failed_run_leaves_no_partial_folder(tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tiny_qwen3(), out)  # an older build at the destination survives a failed rebuild
    with pytest.raises(QuantizationError):
        quantize(tiny_quantized("gptq-w4g64"), "gptq-w4g64", out)
    assert (out / "model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_variant_keeps_the_parents_tokenizer_files():
    folder = tiny_quantized("gptq-w4g64")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (folder / name).read_bytes() == (tiny_qwen3() / name).read_bytes(), name


def test_deterministic_restores_the_random_state_and_thread_count() -> None:
    """Quantizing seeds torch and pins one thread; the caller's generator and thread count come back afterwards."""
    import torch

    from evalkit.models.quantization import QUANT_THREADS, deterministic

    threads = torch.get_num_threads()
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    with deterministic(7):
        assert torch.get_num_threads() == QUANT_THREADS
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected) and not torch.equal(inside, expected)
    assert torch.get_num_threads() == threads


def test_quiet_loguru_sets_the_handlers_aside_and_puts_them_back() -> None:
    """Only errors reach stderr while quantizing; the process's own loguru handlers work again afterwards."""
    from loguru import logger

    from evalkit.models.quantization import quiet_loguru

    seen: list[str] = []
    handler = logger.add(seen.append, level="INFO", format="{message}")
    try:
        with quiet_loguru():
            logger.info("inside")
        logger.info("after")
    finally:
        logger.remove(handler)
    assert [m.strip() for m in seen] == ["after"]
