"""A cache entry that parses but holds the wrong replies is regenerated, and a cache that cannot be written is a
warning: the cache is a speed-up, never a reason to fail a healthy model.

Before issue 13, an entry with one reply fewer or its replies in another order failed the model on every rerun
("N generations for M items"), and a failed cache write (a read-only or full disk) failed the model.
"""

from __future__ import annotations

import json

import pytest

from evalkit.data.tasks import load_task
from evalkit.models.loading import load_model
from evalkit.run.cache import Cache
from evalkit.run.engine import evaluate
from evalkit.run.generation import GenerationConfig
from bad_input_helpers import REPO, tiny_models  # noqa: F401 (fixtures)

CONFIG = GenerationConfig(max_new_tokens=4)


@pytest.fixture(scope="module")
def model(tiny_models):
    return load_model(tiny_models["parent"])


@pytest.mark.parametrize("damage", [
    lambda gens: gens[:-1],  # one reply fewer
    lambda gens: gens[::-1],  # another order
    lambda gens: [{**g, "output_tokens": "many"} for g in gens],  # a field of the wrong type
    lambda gens: [{k: v for k, v in g.items() if k != "finish_reason"} for g in gens],  # a field missing
], ids=["fewer", "reordered", "wrong-type", "missing-field"])
def test_a_valid_but_wrong_entry_is_regenerated(damage, model, tmp_path):
    task = load_task("zoo_yes_no", limit=4)
    cache = Cache(tmp_path)
    first = evaluate(model, task, CONFIG, cache=cache)
    entry = cache.path(first.cache_key)
    doc = json.loads(entry.read_text())
    entry.write_text(json.dumps({**doc, "generations": damage(doc["generations"])}))
    with pytest.warns(UserWarning, match="evalkit cache: ignoring"):
        again = evaluate(model, task, CONFIG, cache=cache)
    assert not again.cache_hit and [r.generation for r in again.records] == [r.generation for r in first.records]
    assert evaluate(model, task, CONFIG, cache=cache).cache_hit  # and the entry is whole again


@pytest.mark.parametrize("root", ["file", "/proc/evalkit-cache"])
def test_a_cache_that_cannot_be_written_is_a_warning(root, model, tmp_path):
    if root == "file":
        (tmp_path / "file").write_text("x")
        root = str(tmp_path / "file")
    task = load_task("zoo_yes_no", limit=4)
    with pytest.warns(UserWarning, match="evalkit cache: could not write"):
        result = evaluate(model, task, CONFIG, cache=Cache(root))
    assert len(result.records) == 4 and not result.cache_hit


def test_the_gate_passes_a_healthy_model_whose_cache_cannot_be_written(tiny_models, tmp_path):
    from evalkit.gate.manifest import loads
    from evalkit.gate.runner import Gate

    (tmp_path / "cache").write_text("not a folder")
    manifest = loads(f'[gate]\ndevice = "cpu"\nmax_new_tokens = 4\ncache = "{tmp_path / "cache"}"\n'
                     f'[tasks.zoo_yes_no]\nlimit = 4\n[models.m]\npath = "{tiny_models["parent"]}"\n')
    with pytest.warns(UserWarning, match="could not write"):
        ev = Gate(manifest, device="cpu").evidence("m", "zoo_yes_no")
    assert ev.error is None and len(ev.result.records) == 4


def test_the_command_line_says_it_regenerated_a_damaged_entry(tiny_models, tmp_path):
    """Through a real `evalkit eval`, whose libraries' output goes to run.log (issue 15) and which a helper process
    may beat to the damaged entry (issue 18): evalkit's own warning about the cache reaches the terminal, one line."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "evalkit.cli", "eval", f"m={tiny_models['parent']}", "--task", "zoo_yes_no",
            "--limit", "3", "--max-new-tokens", "4", "--device", "cpu", "-q", "--cache", str(tmp_path / "cache")]
    first = subprocess.run([*argv, "--out", str(tmp_path / "run1")], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    for entry in (tmp_path / "cache" / "generations").rglob("*.json"):
        entry.write_text(entry.read_text()[:50])  # truncated
    ran = subprocess.run([*argv, "--out", str(tmp_path / "run2")], capture_output=True, text=True, env=env)
    assert ran.returncode == 0, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if "evalkit cache" in line]
    assert lines and lines[0].startswith("warning: evalkit cache: ignoring unreadable entry"), ran.stderr
