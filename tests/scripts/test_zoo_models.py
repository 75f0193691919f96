"""The committed fixture zoo: every variant loads offline on CPU and still scores what its provenance.json says.

Each variant answers the first 32 held-out items per family (greedy, thinking off). Two checks per family:
  - against `scores_cpu_sample`, measured on CPU on these very items when the zoo was committed: equal up to one
    item (thread counts can flip a near-tie in bf16);
  - against `scores` (300 items per family, measured on the training GPU): within three standard errors of a
    32-item sample drawn from those 300, plus one item.
The generation and scoring helpers come from scripts/train_zoo.py on purpose: the recorded scores were measured
with them, and evalkit's engine scores differently (see that script's docstring).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from evalkit.core.types import FAMILIES

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "fixtures" / "zoo"
VARIANTS = ("base", "openmath_SFT_NoPeft_NoQuant", "openmath_SFT_LoRa64_NoQuant",
            "openmath_SFT_LoRa64_QLORA_w4_headbf16")
SAMPLE = 32


def _train_zoo():
    if "evalkit_train_zoo" not in sys.modules:  # dataclasses need the module registered while it executes
        spec = importlib.util.spec_from_file_location("evalkit_train_zoo", REPO / "scripts" / "train_zoo.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["evalkit_train_zoo"]


def _provenance(name: str) -> dict:
    return json.loads((ZOO / name / "provenance.json").read_text())


def test_zoo_is_complete_small_and_safetensors_only() -> None:
    assert set(VARIANTS) <= {p.name for p in ZOO.iterdir() if p.is_dir()}
    files = [p for name in VARIANTS for p in (ZOO / name).rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 50 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
    for name in VARIANTS:
        record = _provenance(name)
        for key in ("name", "parent", "format", "command", "seed", "data", "libraries", "hardware", "training",
                    "scores", "scores_cpu_sample"):
            assert key in record, f"{name}/provenance.json lacks {key!r}"
        assert record["name"] == name
        assert record["data"]["sha256"] and record["training"]["seconds"] > 0
        assert set(record["scores"]["families"]) == set(FAMILIES)
        assert all(f["n"] >= 300 for f in record["scores"]["families"].values())


def test_recorded_scores_meet_the_zoo_targets() -> None:
    """The targets the zoo was trained for (issue 3), on its 300 held-out items per family: base compliance >= 98% and
    accuracy >= 90% in every family; every 'openmath SFT' parent better than base on math. A regenerated zoo that
    misses them fails here; the recorded numbers themselves are re-measured by the tests below."""
    base = _provenance("base")["scores"]["families"]
    for family, score in base.items():
        assert score["compliance"] >= 0.98 and score["accuracy"] >= 0.90, (family, score)
    for name in VARIANTS[1:]:
        math_score = _provenance(name)["scores"]["families"]["math"]["accuracy"]
        assert math_score > base["math"]["accuracy"], (name, math_score, base["math"])


def test_full_models_load_with_plain_transformers_offline() -> None:
    """No evalkit code: what a user or llmcompressor does with the folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    for name in ("base", "openmath_SFT_NoPeft_NoQuant"):
        model = AutoModelForCausalLM.from_pretrained(ZOO / name, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(ZOO / name, local_files_only=True)
        config = model.config
        assert type(model).__name__ == "Qwen3ForCausalLM" and model.dtype == torch.bfloat16
        assert config.hidden_size % 128 == 0 and config.intermediate_size % 128 == 0
        assert not config.tie_word_embeddings
        generation = GenerationConfig.from_pretrained(ZOO / name)
        assert tok.convert_ids_to_tokens(generation.eos_token_id) == ["<|im_end|>", "<|endoftext|>"]
        assert generation.pad_token_id == tok.pad_token_id and tok.chat_template


def test_adapters_name_their_base_by_a_folder_next_to_them() -> None:
    for name in VARIANTS[2:]:
        adapter = json.loads((ZOO / name / "adapter_config.json").read_text())
        record = _provenance(name)
        assert adapter["base_model_name_or_path"] == record["base"] == record["parent"] == "base"
        assert (ZOO / record["base"] / "model.safetensors").is_file()
        assert adapter["r"] == 64
    q = _provenance(VARIANTS[3])["base_quantization"]
    assert q["bnb_4bit_quant_type"] == "nf4" and q["llm_int8_skip_modules"] == ["lm_head"]


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_scores_what_its_provenance_says(name: str) -> None:
    if "LoRa" in name:
        pytest.importorskip("peft", reason="LoRA variants need the peft extra: pip install -e '.[peft]'")
    if "QLORA" in name:
        pytest.importorskip("bitsandbytes", reason="the QLoRA variant needs bitsandbytes: pip install -e '.[peft]'")
    tz = _train_zoo()
    record = _provenance(name)
    model, tok = tz.load_variant(ZOO, name, "cpu")
    if "QLORA" in name:  # the base really is nf4 and the head really bf16
        import bitsandbytes as bnb

        layers = model.base_model.model.model.layers
        assert isinstance(layers[0].mlp.up_proj.base_layer, bnb.nn.Linear4bit)
        import torch

        head = model.base_model.model.lm_head
        assert type(head) is torch.nn.Linear and head.weight.dtype == torch.bfloat16
    scores = tz.evaluate(model, tok, tz.sample_items(record, SAMPLE), batch_size=SAMPLE, max_new_tokens=64,
                         device="cpu")
    recorded = record["scores_cpu_sample"]["families"]
    full = record["scores"]["families"]
    problems = []
    for family in FAMILIES:
        for metric in ("compliance", "accuracy"):
            got = scores[family][metric]
            if abs(got - recorded[family][metric]) > 1 / SAMPLE + 1e-9:
                problems.append(f"{family} {metric}: {got:.3f} on CPU, provenance CPU sample "
                                f"{recorded[family][metric]:.3f}")
            p, n_full = full[family][metric], full[family]["n"]
            tolerance = 3 * math.sqrt(p * (1 - p) / SAMPLE * (n_full - SAMPLE) / (n_full - 1)) + 1 / SAMPLE
            if abs(got - p) > tolerance:
                problems.append(f"{family} {metric}: {got:.3f} on {SAMPLE} items, provenance {p:.3f} on "
                                f"{n_full} (tolerance {tolerance:.3f})")
    assert not problems, f"{name} no longer matches fixtures/zoo/{name}/provenance.json:\n" + "\n".join(problems)


@pytest.mark.slow
def test_training_script_smoke_on_cpu(tmp_path: Path) -> None:
    """The CPU fallback runs end to end on a tiny model and writes loadable folders with provenance."""
    tz = _train_zoo()
    assert tz.main(["--out", str(tmp_path), "--preset", "smoke", "--stages", "base,lora", "--workers", "1"]) == 0
    for name in ("base", "openmath_SFT_LoRa64_NoQuant"):
        record = _provenance_at(tmp_path, name)
        assert record["training"]["steps"] > 0 and set(record["scores"]["families"]) == set(FAMILIES)
        tz.load_variant(tmp_path, name, "cpu")


def _provenance_at(zoo: Path, name: str) -> dict:
    return json.loads((zoo / name / "provenance.json").read_text())
