"""evalkit.zoo: the variant matrix, and building quantized + known-broken variants idempotently into a cache."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from evalkit.models.fingerprint import fingerprint
from evalkit.models.loading import load_model
from evalkit.zoo import PARENTS, QLORA, VARIANTS, ZooError, build, variant, variant_path
from tiny_models import make_tiny_zoo


def test_matrix_is_the_seeds():
    quantized = sorted(n for n, v in VARIANTS.items() if v.kind == "quantized")
    assert quantized == sorted(f"{p}_{s}" for p in PARENTS for s in ("gptq_w4g64", "awq_w4g128", "smoothquant_w8a8"))
    assert variant(QLORA).kind == "qlora" and variant(QLORA).parent == "openmath_SFT_LoRa64_NoQuant"
    broken = [v for v in VARIANTS.values() if v.kind == "broken"]
    assert len(broken) >= 5 and all(v.expected for v in broken)
    for v in VARIANTS.values():  # every source is built before what depends on it
        if v.source and v.kind in ("quantized", "broken"):
            assert list(VARIANTS).index(v.source) < list(VARIANTS).index(v.name)
    with pytest.raises(ZooError, match="unknown zoo model 'base_gptq_w3'"):
        variant_path("base_gptq_w3")


def test_missing_parents_name_the_fix(tmp_path):
    """In a checkout the message names the committed parents and the training script, both of which exist here (an
    installed evalkit names the wheel that ships them instead: evalkit.zoo.build._where_parents_come_from)."""
    with pytest.raises(ZooError, match=r"zoo parents missing.*\['base'\].*train_zoo\.py") as caught:
        build(tmp_path / "zoo", tmp_path / "cache", only=["base_gptq_w4g64"])
    named = re.findall(r"(/\S+?)(?:[),]|$)", str(caught.value).split(";", 1)[1])
    assert named and all(Path(p).exists() for p in named), named


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    return make_tiny_zoo(tmp_path_factory.mktemp("zoo"))


BROKEN_FROM_GPTQ = ["base_gptq_w4g64_scales_corrupted", "base_gptq_w4g64_lost_eos", "base_gptq_w4g64_eos_flood",
                    "base_gptq_w4g64_no_chat_template"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def broken(tiny_zoo, cache):
    return build(tiny_zoo, cache, only=["base_gptq_w4g64", *BROKEN_FROM_GPTQ], n_calibration=8)


def test_a_built_zoo_is_read_without_waiting_for_the_lock(tiny_zoo, cache, broken):
    """While another process holds the build lock (a gate's prebuild worker building the next variant), a model that
    is already built is returned at once: the evaluating process never waits on a build it does not need."""
    import threading

    from filelock import FileLock

    got = {}
    with FileLock(str(cache / ".build.lock")):
        reader = threading.Thread(target=lambda: got.update(build(tiny_zoo, cache, only=["base_gptq_w4g64_lost_eos"],
                                                                   n_calibration=8)), daemon=True)
        reader.start()
        reader.join(timeout=60)
        assert not reader.is_alive(), "build() waited for the lock although the variant was up to date"
    assert got == {"base_gptq_w4g64_lost_eos": broken["base_gptq_w4g64_lost_eos"]}


@pytest.mark.slow
def test_build_is_idempotent_and_rebuilds_when_its_inputs_change(tiny_zoo, cache, broken):
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.is_dir()}
    assert sorted(stamps) == sorted(broken)
    prints = {name: fingerprint(path) for name, path in broken.items()}
    again = build(tiny_zoo, cache, only=["base_gptq_w4g64", *BROKEN_FROM_GPTQ], n_calibration=8)
    assert again == broken  # second run: nothing to do
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.is_dir()} == stamps
    # a different calibration size is a different build ...
    build(tiny_zoo, cache, only=["base_gptq_w4g64"], n_calibration=4)
    assert fingerprint(cache / "base_gptq_w4g64") != prints["base_gptq_w4g64"]
    # ... and going back rebuilds the source and everything made from it, to the same bytes
    rebuilt = build(tiny_zoo, cache, only=BROKEN_FROM_GPTQ, n_calibration=8)
    assert {name: fingerprint(path) for name, path in rebuilt.items()} == \
        {name: prints[name] for name in BROKEN_FROM_GPTQ}


def _first_step_logits(path, text="<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"):
    loaded = load_model(path, dtype="float32")
    ids = loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return loaded, loaded.model(ids).logits[0, -1]


def test_eos_flood_makes_eos_the_first_token(broken):
    loaded, logits = _first_step_logits(broken["base_gptq_w4g64_eos_flood"])
    assert logits.argmax().item() == loaded.tokenizer.convert_tokens_to_ids("<|im_end|>")
    _, healthy = _first_step_logits(broken["base_gptq_w4g64"])
    assert healthy.argmax().item() != loaded.tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_lost_eos_keeps_the_weights_but_not_the_stop_token(broken):
    lost = load_model(broken["base_gptq_w4g64_lost_eos"])
    assert lost.tokenizer.eos_token == "<|endoftext|>"
    assert lost.model.generation_config.eos_token_id == lost.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    healthy = broken["base_gptq_w4g64"]
    assert (broken["base_gptq_w4g64_lost_eos"] / "model.safetensors").read_bytes() == \
        (healthy / "model.safetensors").read_bytes()


def test_no_chat_template_loads_without_one(broken):
    loaded = load_model(broken["base_gptq_w4g64_no_chat_template"])
    assert not loaded.has_chat_template and any("no chat template" in n for n in loaded.notes)


def test_corrupted_scales_change_exactly_one_layer(broken):
    from safetensors.torch import load_file

    bad = load_file(broken["base_gptq_w4g64_scales_corrupted"] / "model.safetensors")
    good = load_file(broken["base_gptq_w4g64"] / "model.safetensors")
    changed = [k for k in good if not torch.equal(good[k], bad[k])]
    assert changed == ["model.layers.2.mlp.down_proj.weight_scale"]
    record = json.loads((broken["base_gptq_w4g64_scales_corrupted"] / "provenance.json").read_text())
    assert record["zoo"]["breakage_detail"] == "model.layers.2.mlp.down_proj.weight_scale x64"


def test_every_broken_variant_records_the_failure_it_must_trigger(broken):
    for name in BROKEN_FROM_GPTQ:
        record = json.loads((broken[name] / "provenance.json").read_text())["zoo"]
        assert record["expected_failure"] == VARIANTS[name].expected and record["parent"] == "base"


def test_default_locations_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_ZOO_DIR", os.fspath(tmp_path / "z"))
    monkeypatch.setenv("EVALKIT_ZOO_CACHE", os.fspath(tmp_path / "c"))
    assert variant_path("base") == tmp_path / "z" / "base"
    assert variant_path("base_awq_w4g128") == tmp_path / "c" / "base_awq_w4g128"


# ------------------------------------------------------------------------------------------------ the real zoo
# The committed parents and the broken variants built from them (into the default cache the gate also uses):
# each broken variant must misbehave measurably, in the way docs/broken-variants.md says.

ZOO_BROKEN = ["base_rtn_w2", *BROKEN_FROM_GPTQ]


@pytest.fixture(scope="module")
def real_zoo():
    from evalkit.zoo import default_zoo_dir

    if not all((default_zoo_dir() / p).is_dir() for p in PARENTS):
        pytest.skip(f"the committed zoo parents are not under {default_zoo_dir()}")
    paths = build(only=["base", "base_gptq_w4g64", *ZOO_BROKEN])
    return {name: load_model(path) for name, path in paths.items()}


def _references(n_per_family=4):
    from evalkit.data.synthetic import generate, reference_response
    from evalkit.core.types import FAMILIES

    items = [i for f in FAMILIES for i in generate(f, n_per_family, seed=0)]
    return items, [reference_response(i) for i in items]


def _drift(real_zoo, name):
    from evalkit.run.drift import drift, teacher_from_references

    items, refs = _references()
    parent = real_zoo["base"]
    return drift(real_zoo[name], parent, teacher_from_references(parent.tokenizer, items, refs))


def _evaluate(loaded, task, n=8):
    from evalkit.run.engine import evaluate
    from evalkit.run.generation import GenerationConfig
    from evalkit.data.tasks import load_task

    return evaluate(loaded, load_task(task, limit=n), GenerationConfig(max_new_tokens=64, batch_size=n))


@pytest.mark.slow
def test_real_zoo_healthy_reference_stays_close(real_zoo):
    d = _drift(real_zoo, "base_gptq_w4g64")
    assert d.top1_agreement > 0.99 and d.kl_mean < 1e-3 and d.first_divergent_layer is None


@pytest.mark.slow
def test_real_zoo_two_bit_rtn_collapses(real_zoo):
    d = _drift(real_zoo, "base_rtn_w2")
    # Teacher-forced on references that mostly copy the prompt, even this model still agrees on about half the
    # tokens (0.51 measured; the healthy GPTQ variant 1.00); its KL (2.6 vs 5e-7) and its generations collapse.
    assert d.top1_agreement < 0.6 and d.kl_mean > 1.0
    assert _evaluate(real_zoo["base_rtn_w2"], "zoo_math").compliance < 0.2


@pytest.mark.slow
def test_real_zoo_corrupted_scales_are_found_in_their_layer(real_zoo):
    d = _drift(real_zoo, "base_gptq_w4g64_scales_corrupted")
    assert d.first_divergent_layer == 3  # model.layers.3.mlp.down_proj, the corrupted module (6 layers // 2)
    assert d.top1_agreement < 0.8


@pytest.mark.slow
def test_real_zoo_eos_flood_gives_empty_replies(real_zoo):
    result = _evaluate(real_zoo["base_gptq_w4g64_eos_flood"], "zoo_yes_no")
    assert all(r.generation.output_tokens == 1 and r.generation.finish_reason == "eos" for r in result.records)
    assert result.compliance == 0.0


@pytest.mark.slow
def test_real_zoo_lost_eos_runs_to_the_token_limit(real_zoo):
    healthy = _evaluate(real_zoo["base_gptq_w4g64"], "zoo_math")
    lost = _evaluate(real_zoo["base_gptq_w4g64_lost_eos"], "zoo_math")
    assert all(r.generation.finish_reason == "eos" for r in healthy.records)
    assert all(r.generation.finish_reason == "length" for r in lost.records)


@pytest.mark.slow
def test_real_zoo_lost_chat_template_breaks_the_answers(real_zoo):
    loaded = real_zoo["base_gptq_w4g64_no_chat_template"]
    assert not loaded.has_chat_template
    healthy = _evaluate(real_zoo["base_gptq_w4g64"], "zoo_math", n=16)
    broken = _evaluate(loaded, "zoo_math", n=16)
    assert broken.prompt_mode == "plain"
    accuracy = lambda r: r.metrics["accuracy"].value or 0.0  # noqa: E731
    assert accuracy(healthy) - accuracy(broken) > 0.5
