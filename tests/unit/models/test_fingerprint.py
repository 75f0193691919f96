"""evalkit.fingerprint: same behaviour-deciding bytes -> same digest; any change that alters behaviour -> new digest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evalkit.models.fingerprint import combine, fingerprint, fingerprint_files
from tiny_models import tiny_qwen3


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_qwen3(), tmp_path / "model"))


def test_stable_and_independent_of_location(folder, tmp_path):
    fp = fingerprint(folder)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fingerprint(folder) == fp == fingerprint(tiny_qwen3())
    moved = shutil.move(folder, tmp_path / "elsewhere")
    assert fingerprint(moved) == fp


def _flip_one_weight_byte(f: Path) -> None:
    data = bytearray((f / "model.safetensors").read_bytes())
    data[-3] ^= 0x01
    (f / "model.safetensors").write_bytes(bytes(data))


def _drop_eos(f: Path) -> None:
    config = json.loads((f / "generation_config.json").read_text())
    config.pop("eos_token_id")
    (f / "generation_config.json").write_text(json.dumps(config))


def _edit_template(f: Path) -> None:
    (f / "chat_template.jinja").write_text((f / "chat_template.jinja").read_text().replace("assistant", "bot"))


def _lose_template(f: Path) -> None:
    (f / "chat_template.jinja").unlink()


def _edit_tokenizer(f: Path) -> None:
    config = json.loads((f / "tokenizer_config.json").read_text())
    config["eos_token"] = "<|endoftext|>"
    (f / "tokenizer_config.json").write_text(json.dumps(config))


def _edit_config(f: Path) -> None:
    config = json.loads((f / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (f / "config.json").write_text(json.dumps(config))


def _rename_weights(f: Path) -> None:
    (f / "model.safetensors").rename(f / "model-renamed.safetensors")


CHANGES = {
    "one weight byte": _flip_one_weight_byte,
    "generation config lost eos": _drop_eos,
    "chat template edited": _edit_template,
    "chat template lost": _lose_template,
    "tokenizer config": _edit_tokenizer,
    "model config": _edit_config,
    "weight file renamed": _rename_weights,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_behaviour_changes_change_the_fingerprint(folder, change):
    before = fingerprint(folder)
    CHANGES[change](folder)
    assert fingerprint(folder) != before


def test_documentation_does_not_change_the_fingerprint(folder):
    before = fingerprint(folder)
    (folder / "README.md").write_text("# notes")
    (folder / "provenance.json").write_text('{"trained": "yesterday"}')
    (folder / ".cache").mkdir()
    (folder / ".cache" / "x.json").write_text("{}")
    assert fingerprint(folder) == before
    assert {p.name for p in fingerprint_files(folder)} == {
        "chat_template.jinja", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json"}


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no model files"):
        fingerprint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fingerprint(tmp_path / "missing")


def test_combine_is_order_sensitive():
    assert combine("a", "b") != combine("b", "a")
    assert combine("a", "b") == combine("a", "b") != "a"
