"""evalkit.models.artifacts: what a variant must share with its parent, compared item by item (pure), and read from
real loaded folders (the edge)."""

from __future__ import annotations

import json
import shutil

import pytest

from evalkit.models.artifacts import (IGNORED_CONFIG_FIELDS, Artifacts, compare, compare_prompts, describe,
                                      first_difference)
from evalkit.models.loading import load_model
from tiny_models import tiny_qwen3

PARENT = Artifacts(vocab={"a": 0, "b": 1}, merges=("a b",), special={"eos_token": "<|im_end|>"},
                   added={0: "<|im_end|> (special)"}, chat_template="{{ messages }}",
                   generation={"eos_token_id": [0, 2], "do_sample": False},
                   architecture={"num_hidden_layers": 6, "hidden_size": 256})


def _with(**changes: object) -> Artifacts:
    return Artifacts(**{**{f: getattr(PARENT, f) for f in PARENT.__dataclass_fields__}, **changes})  # type: ignore


@pytest.mark.parametrize(("changes", "diagnosis", "shown"), [
    ({"merges": ("a c",)}, "tokenizer_mismatch", "merges: merge 0 is 'a c', the parent's 'a b'"),
    ({"special": {"eos_token": "<|endoftext|>"}}, "tokenizer_mismatch", "special tokens: eos_token: '<|endoftext|>'"),
    ({"added": {0: "<|im_end|>"}}, "tokenizer_mismatch", "added tokens: 0: '<|im_end|>', the parent's"),
    ({"chat_template": None}, "no_chat_template", "the model has no chat template"),
    ({"chat_template": "{{ message }}"}, "chat_template_mismatch", "differs from character 10"),
    ({"generation": {"eos_token_id": [0], "do_sample": False}}, "generation_config_mismatch", "eos_token_id: [0]"),
    ({"generation": {"eos_token_id": [0, 2], "do_sample": True}}, "generation_config_mismatch", "do_sample: True"),
    ({"architecture": {"num_hidden_layers": 6, "hidden_size": 512}}, "architecture_mismatch", "hidden_size: 512"),
])
def test_each_difference_is_named_with_its_first_differing_item(changes, diagnosis, shown) -> None:
    (d,) = compare(_with(**changes), PARENT)
    assert d.diagnosis == diagnosis and shown in d.detail, d.detail


def test_identical_artifacts_have_no_difference_and_absent_fields_show_as_absent() -> None:
    assert compare(_with(), PARENT) == ()
    assert first_difference({"a": 1}, {}) == "a: 1, the parent's absent"


def test_the_first_differing_prompt_is_named_by_text_or_token_ids() -> None:
    parent = [("0", "Q: 1", [5, 6]), ("1", "Q: 2", [5, 7])]
    assert compare_prompts(parent, parent) is None
    d = compare_prompts([("0", "Q: 1", [5, 6]), ("1", "Q: 3", [5, 8])], parent)
    assert d.diagnosis == "prompt_mismatch" and d.detail.startswith("1 of 2 prompts differ; first item 1: text")


def test_fields_that_differ_by_construction_are_ignored_when_read_from_folders(tmp_path) -> None:
    assert {"quantization_config", "dtype", "transformers_version"} <= IGNORED_CONFIG_FIELDS
    copy = shutil.copytree(tiny_qwen3(), tmp_path / "copy")
    config = json.loads((copy / "config.json").read_text())
    config.update(dtype="float32", transformers_version="0.0.1")
    (copy / "config.json").write_text(json.dumps(config))
    parent, variant = (load_model(p) for p in (tiny_qwen3(), copy))
    assert compare(describe(variant.model, variant.tokenizer), describe(parent.model, parent.tokenizer)) == ()
    config["rms_norm_eps"] = 0.01
    (copy / "config.json").write_text(json.dumps(config))
    other = load_model(copy)
    (d,) = compare(describe(other.model, other.tokenizer), describe(parent.model, parent.tokenizer))
    assert (d.diagnosis, d.detail) == ("architecture_mismatch", "config.json rms_norm_eps: 0.01, the parent's 1e-06")
