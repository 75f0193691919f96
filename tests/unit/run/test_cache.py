"""evalkit.cache: keys cover everything that changes a generation; entries round-trip; bad entries are ignored."""

from __future__ import annotations

import json

import pytest

from evalkit.run.cache import Cache, cache_versions, key_parts, make_key
from evalkit.run.generation import Generation, GenerationConfig, GenerationRun, Prompt


def _run() -> GenerationRun:
    gens = (Generation("a", "p", "\\boxed{1}<|im_end|>", "\\boxed{1}", 4, 5, "eos"),
            Generation("b", "p2", "…", "…", 2, 9, "length"))
    return GenerationRun(gens, 1.25, {"backend": "transformers", "device": "cpu", "dtype": "float32"})


PROMPTS = [Prompt("a", "p", (1, 2), "chat_template")]


def _parts(**changes):
    base = dict(fingerprint="fp", task_name="t", task_digest="d", prompts=PROMPTS, config=GenerationConfig(),
                backend={"device": "cpu", "dtype": "float32"})
    return key_parts(**{**base, **changes})


def test_roundtrip(tmp_path):
    cache = Cache(tmp_path)
    key = make_key(_parts())
    assert cache.get(key) is None
    path = cache.put(key, _run(), _parts())
    assert path.parent.parent.name == "generations" and cache.get(key) == _run()
    stored = json.loads(path.read_text())
    assert stored["parts"]["fingerprint"] == "fp" and stored["parts"]["versions"] == cache_versions()
    assert not list(path.parent.glob(".tmp-*"))  # atomic write leaves no temp file


@pytest.mark.parametrize("change", [
    {"fingerprint": "other"},
    {"task_name": "t2"},
    {"task_digest": "d2"},
    {"prompts": [Prompt("a", "p ", (1, 2), "chat_template")]},  # wording / template / system prompt
    {"prompts": [Prompt("a", "p", (1, 3), "chat_template")]},  # tokenizer
    {"config": GenerationConfig(max_new_tokens=7)},
    {"config": GenerationConfig(batch_size=3)},
    {"config": GenerationConfig(enable_thinking=True)},
    {"backend": {"device": "cuda", "dtype": "float32"}},
])
def test_every_input_changes_the_key(change):
    assert make_key(_parts(**change)) != make_key(_parts())


def test_key_is_stable():
    assert make_key(_parts()) == make_key(_parts())


@pytest.mark.parametrize("content", ["{truncated", '{"format": 2}', '{"format": 2, "key": "K", "seconds": 1, '
                                     '"backend": {}, "generations": [{"item_id": "a"}]}'])
def test_corrupt_entry_is_a_warned_miss_and_gets_overwritten(tmp_path, content):
    cache = Cache(tmp_path)
    key = make_key(_parts())
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text(content.replace('"K"', json.dumps(key)))
    with pytest.warns(UserWarning, match="evalkit cache: ignoring"):
        assert cache.get(key) is None
    cache.put(key, _run(), _parts())
    assert cache.get(key) == _run()


def test_token_ids_round_trip_and_entries_of_the_older_format_are_regenerated(tmp_path):
    """Format 2 keeps each generation's token ids (drift teacher-forces them); a format-1 entry, which has none,
    is a miss, so it is generated again rather than drifted on re-tokenized text."""
    cache = Cache(tmp_path)
    key = make_key(_parts())
    run = GenerationRun((Generation("a", "p", "x", "x", 1, 2, "eos", token_ids=(5, 2)),), 1.0, {})
    cache.put(key, run, _parts())
    assert cache.get(key) == run and cache.get(key).generations[0].token_ids == (5, 2)
    entry = json.loads(cache.path(key).read_text())
    entry["format"] = 1
    for g in entry["generations"]:
        del g["token_ids"]
    cache.path(key).write_text(json.dumps(entry))
    assert cache.get(key) is None


def test_default_location_is_under_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Cache().root == tmp_path / ".evalkit" / "cache"
