"""evalkit.drift: teacher-forced KL, top-1 agreement, perplexity ratio, and the first diverging layer.

The corrupted-layer cases copy a saved model folder, damage one decoder layer's weights on disk (as a broken
quantization would), reload it, and check that drift names that layer.
"""

from __future__ import annotations

import shutil

import pytest

import tiny_models as et
from evalkit.run.drift import DriftConfig, DriftError, drift, teacher_from_generations, teacher_from_references
from evalkit.run.engine import evaluate
from evalkit.run.generation import GenerationConfig
from evalkit.data.synthetic import reference_response
from evalkit.data.tasks import load_task

torch = pytest.importorskip("torch")
LAYERS = 4


@pytest.fixture(scope="module")
def parent_dir(tmp_path_factory):
    return et.save_tiny(tmp_path_factory.mktemp("drift") / "parent", layers=LAYERS, seed=1)


@pytest.fixture(scope="module")
def parent(parent_dir):
    return et.load_tiny(parent_dir)


@pytest.fixture(scope="module")
def sequences(parent):
    result = evaluate(parent, load_task("zoo_yes_no", limit=6), GenerationConfig(max_new_tokens=10))
    return _teacher(result, parent.tokenizer)


def _teacher(result, tokenizer):
    """Teacher sequences from a parent's TaskResult, as the gate builds them from its generations."""
    return teacher_from_generations(tokenizer, [r.generation for r in result.records],
                                    plain=result.prompt_mode == "plain")


def _corrupted_copy(parent_dir, tmp_path, layer: int, scale: float = 1000.0):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / f"broken{layer}"
    shutil.copytree(parent_dir, folder)
    weights = load_file(folder / "model.safetensors")
    name = f"model.layers.{layer}.mlp.down_proj.weight"
    weights[name] = weights[name] * scale
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return et.load_tiny(folder)


def test_identical_model_has_no_drift(parent, parent_dir, sequences):
    r = drift(et.load_tiny(parent_dir), parent, sequences)
    assert r.n_sequences == 6 and r.n_tokens == sum(len(s.response_ids) for s in sequences)
    assert (r.kl_mean, r.kl_max, r.top1_agreement, r.ppl_ratio) == (0.0, 0.0, 1.0, 1.0)
    assert r.embedding_cosine == pytest.approx(1.0) and r.layer_cosine == pytest.approx((1.0,) * LAYERS)
    assert r.first_divergent_layer is None and r.largest_drop_layer is None


@pytest.mark.parametrize("layer", [1, 3])
def test_corrupted_layer_is_located(parent, parent_dir, sequences, tmp_path, layer):
    r = drift(_corrupted_copy(parent_dir, tmp_path, layer), parent, sequences)
    assert r.first_divergent_layer == layer and r.largest_drop_layer == layer
    assert r.layer_cosine[:layer] == pytest.approx((1.0,) * layer)
    assert r.layer_cosine[layer] < 0.95
    assert r.kl_mean > 0 and r.kl_max >= r.kl_p99 >= r.kl_p90 >= r.kl_median >= 0
    assert r.top1_agreement < 1.0 and r.ppl_ratio != 1.0
    doc = r.to_dict()
    assert doc["first_divergent_layer"] == layer and len(doc["layer_cosine"]) == LAYERS


def test_mild_noise_stays_above_threshold_but_is_still_located(parent, parent_dir, sequences, tmp_path):
    r = drift(_corrupted_copy(parent_dir, tmp_path, 2, scale=1.05), parent, sequences)
    assert r.first_divergent_layer is None and r.largest_drop_layer == 2
    assert 0 < r.kl_mean < 0.01 and min(r.layer_cosine) > 0.95


def test_threshold_is_configurable(parent, parent_dir, sequences, tmp_path):
    r = drift(_corrupted_copy(parent_dir, tmp_path, 2, scale=1.05), parent, sequences,
              DriftConfig(layer_threshold=0.999999))
    assert r.first_divergent_layer == 2


def test_vocabulary_mismatch_is_a_clear_error(parent, sequences, tmp_path):
    other_tok = et.build_tokenizer()
    other_tok.add_tokens(["<extra_token>"])
    variant = et.Tiny(model=parent.model, tokenizer=other_tok, path=tmp_path / "v", fingerprint="v")
    with pytest.raises(DriftError, match="different vocabularies .*compare against the right parent"):
        drift(variant, parent, sequences)


def test_nothing_to_compare(parent):
    with pytest.raises(DriftError, match="nothing to compare"):
        drift(parent, parent, [])


def test_reference_responses_as_teacher(parent, parent_dir):
    items = load_task("zoo_math", limit=3).items
    seqs = teacher_from_references(parent.tokenizer, items, [reference_response(i) for i in items])
    assert all(s.response_ids[-1] == parent.tokenizer.eos_token_id for s in seqs)
    r = drift(et.load_tiny(parent_dir), parent, seqs, DriftConfig(batch_size=2))
    assert r.n_sequences == 3 and r.kl_max == 0.0


# --- the zoo's trained base (skipped until fixtures/zoo/base exists) ------------------------------------------------

from pathlib import Path  # noqa: E402

ZOO = Path(__file__).resolve().parents[3] / "fixtures" / "zoo"
needs_zoo = pytest.mark.skipif(not (ZOO / "base" / "config.json").is_file(), reason="fixtures/zoo/base not built yet")


@pytest.fixture(scope="module")
def zoo_parent():
    from evalkit.models.loading import load_model

    return load_model(ZOO / "base", dtype="float32")


@pytest.fixture(scope="module")
def zoo_sequences(zoo_parent):
    seqs = []
    for name in ("zoo_math", "zoo_span"):
        result = evaluate(zoo_parent, load_task(name, limit=8), GenerationConfig(max_new_tokens=64))
        seqs += _teacher(result, zoo_parent.tokenizer)
    return seqs


@needs_zoo
@pytest.mark.slow
@pytest.mark.parametrize("layer", [0, 4])
def test_zoo_corrupted_layer_is_located(zoo_parent, zoo_sequences, tmp_path, layer):
    from safetensors.torch import load_file, save_file

    from evalkit.models.loading import load_model

    folder = tmp_path / "broken"
    shutil.copytree(ZOO / "base", folder)
    weights = load_file(folder / "model.safetensors")
    name = f"model.layers.{layer}.self_attn.o_proj.weight"
    g = torch.Generator().manual_seed(layer)
    weights[name] = torch.randn(weights[name].shape, generator=g).to(weights[name].dtype) * weights[name].std() * 8
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    r = drift(load_model(folder, dtype="float32"), zoo_parent, zoo_sequences)
    assert r.first_divergent_layer == layer and r.largest_drop_layer == layer
    assert r.kl_mean > 0.05 and r.top1_agreement < 0.99


@needs_zoo
@pytest.mark.slow
def test_zoo_sft_against_base_differs_without_a_broken_layer(zoo_parent, zoo_sequences):
    from evalkit.models.loading import load_model

    sft = ZOO / "openmath_SFT_NoPeft_NoQuant"
    if not (sft / "config.json").is_file():
        pytest.skip("SFT parent not built")
    r = drift(load_model(sft, dtype="float32"), zoo_parent, zoo_sequences)
    assert r.kl_mean > 0 and r.n_tokens == sum(len(s.response_ids) for s in zoo_sequences)


# --- issue 12: drift never errors on a pair that loads, and NaN says where it starts -------------------------------


def test_a_shallower_variant_is_compared_on_the_layers_both_have(parent, parent_dir, sequences, tmp_path):
    """Before: `zip() argument 2 is shorter than argument 1` (the layer cosines were skipped, then zipped)."""
    folder = et.truncate_depth(shutil.copytree(parent_dir, tmp_path / "shallow"), 2)  # the parent's first 2 layers
    r = drift(et.load_tiny(folder), parent, sequences)
    assert len(r.layer_cosine) == 2 and r.layer_cosine == pytest.approx((1.0, 1.0))  # the same first layers
    assert r.missing_layers == ("model.layers.2-3 of the parent have no counterpart (2 vs the parent's 4 decoder "
                                "layers; the first 2 compared)")


def test_nan_weights_are_located_at_the_first_layer_whose_hidden_states_turn_non_finite(parent, parent_dir,
                                                                                         sequences, tmp_path):
    """Before: NaN cosines never fall below the threshold, so the first diverging layer was 'none'."""
    broken = _corrupted_copy(parent_dir, tmp_path, 2, scale=float("nan"))
    r = drift(broken, parent, sequences)
    assert r.nonfinite == "model.layers.2" and r.first_divergent_layer == 2
    assert r.nonfinite_weights == ("model.layers.2.mlp.down_proj.weight",)
    assert r.kl_mean != r.kl_mean  # NaN: the gate's finite check names it (tests/unit/gate/test_loud_failures.py)


def test_drift_teacher_forces_the_token_ids_the_parent_generated(parent, sequences):
    from evalkit.run.generation import Generation

    g = Generation("0", "user", "yes", "yes", 1, 3, "eos", token_ids=(7, 8, 3))
    (s,) = teacher_from_generations(parent.tokenizer, [g])
    assert s.response_ids == (7, 8, 3)  # not the ids of re-tokenizing "yes"
