"""The gate's helper process (issue 18): a second process that builds zoo variants and generates beside the gate.

What it must never change is the outcome: the same verdicts, from the same generations, as a gate without it.
"""

from __future__ import annotations

import json
import textwrap

import pytest

import tiny_models as et
from evalkit.gate import Gate
from evalkit.gate.manifest import loads

pytest.importorskip("torch")


def _manifest(root, cache):
    return loads(textwrap.dedent(f"""
        [gate]
        max_new_tokens = 8
        cache = "{cache}"
        [tasks.zoo_yes_no]
        limit = 6
        [tasks.zoo_math]
        limit = 6
        [models.parent]
        path = "parent"
        [models.a]
        path = "a"
        parent = "parent"
        [models.b]
        path = "b"
        parent = "parent"
    """), root=root)


def _verdicts(report):
    return [json.dumps({**v.to_dict(), "checks": [c for c in v.to_dict()["checks"] if c["check"] != "speed"]},
                       sort_keys=True) for v in report.verdicts]


def test_a_helped_gate_decides_what_a_lone_one_decides(tmp_path, monkeypatch):
    for name, seed in (("parent", 1), ("a", 2), ("b", 3)):
        et.save_tiny(tmp_path / name, seed=seed)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    alone = Gate(_manifest(tmp_path, tmp_path / "c1"), device="cpu").report()
    helped_gate = Gate(_manifest(tmp_path, tmp_path / "c2"), device="cpu", helper=True)
    helped = helped_gate.report()
    assert _verdicts(helped) == _verdicts(alone)
    # every generation the helper may have written is one the lone gate made too, byte for byte
    lone = {p.name: json.loads(p.read_text())["generations"] for p in (tmp_path / "c1").rglob("*.json")}
    both = {p.name: json.loads(p.read_text())["generations"] for p in (tmp_path / "c2").rglob("*.json")}
    assert both == lone
    assert all(v.get("speed").status != "skip" for v in helped.verdicts if v.model != "parent")  # timed, even tiny


def test_fill_cache_passes_over_what_is_there_and_stops_when_asked(tmp_path):
    for name, seed in (("parent", 1), ("a", 2), ("b", 3)):
        et.save_tiny(tmp_path / name, seed=seed)
    m = _manifest(tmp_path, tmp_path / "c")
    first = Gate(m, device="cpu")
    first.fill_cache(["a"])
    assert len(list((tmp_path / "c").rglob("*.json"))) == 2  # a's two tasks
    second = Gate(m, device="cpu")
    second.fill_cache(["a", "b"])  # a is there already: passed over; b is made
    assert len(list((tmp_path / "c").rglob("*.json"))) == 4
    Gate(m, device="cpu").fill_cache(["parent"], stop=lambda: True)
    assert len(list((tmp_path / "c").rglob("*.json"))) == 4
