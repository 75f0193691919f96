"""`evalkit gate` through real vLLM CPU servers that evalkit starts (fixtures/zoo_vllm.toml): the zoo's parent, a
quantized variant and two known-broken ones, gated with one server at a time, with two servers at once (the models
spread over both), and with the transformers backend on the same items: the same verdicts from all three.

Opt-in (tests/vllm/conftest.py): `scripts/setup_vllm_venv.sh && pytest -m vllm tests/vllm`; `.ci/run` runs it in a
step of its own. A subset of the manifest's models keeps it to a few minutes on 2 cores (each server start costs
~20 s idle, a minute or more under load); `evalkit gate --zoo fixtures/zoo_vllm.toml` runs all seven.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from evalkit.gate import serving
from evalkit.gate.manifest import load
from evalkit.gate.runner import Gate, select_cases
from evalkit.gate.served import placement_table
from evalkit.run.backends.compare import compare, table
from evalkit.run.engine import TaskResult

pytestmark = pytest.mark.vllm

REPO = Path(__file__).resolve().parents[2]
MODELS = ("base", "base_gptq_w4g64", "base_gptq_w4g64_eos_flood", "base_rtn_w2")
HEALTHY = ("base", "base_gptq_w4g64")
REFUSED = "base_rtn_w2"  # vLLM has no kernel for 2-bit weights with one scale per matrix


def _gate(tmp_path_factory: pytest.TempPathFactory, name: str, **override):
    m = serving.override(load(REPO / "fixtures" / "zoo_vllm.toml"), **override)
    m = dataclasses.replace(m, gate=dataclasses.replace(m.gate, cache=tmp_path_factory.mktemp(name)))  # no reuse
    gate = Gate(m)
    started = time.perf_counter()
    report = gate.report(select_cases(m, list(MODELS)))
    print(f"\n{name}: {time.perf_counter() - started:.0f} s wall\n{report.summary()}")
    return gate, report


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    return _gate(tmp_path_factory, "one-server")


@pytest.fixture(scope="module")
def two(tmp_path_factory, one):  # after `one`: never more than two servers at once on this machine
    return _gate(tmp_path_factory, "two-servers", servers=2)


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    return _gate(tmp_path_factory, "transformers", backend="transformers")


def _outcomes(report) -> dict[tuple[str, str], str]:
    return {(v.model, v.task): v.outcome for v in report.verdicts}


def test_served_gate_gives_the_transformers_backends_verdicts(one, hf):
    (gate, report), (hf_gate, hf_report) = one, hf
    assert _outcomes(report) == _outcomes(hf_report)
    assert {v.outcome for v in report.verdicts if v.model in HEALTHY} <= {"PASS", "INCONCLUSIVE"}  # never FAIL
    assert {v.outcome for v in report.verdicts if v.model not in HEALTHY} == {"CAUGHT"}
    rows = [compare(m, hf_gate._results[(m, t)], gate._results[(m, t)]) for m in HEALTHY
            for t in gate._tasks_of(m)]
    print("\n" + table(rows))
    for r in rows:  # measured: every reply of a healthy zoo model is byte-identical under both engines
        assert r.agreement == 1.0, f"{r.model}/{r.task}: {r.agreement:.0%} identical replies"
    flood = [v for v in report.verdicts if v.model == "base_gptq_w4g64_eos_flood"]
    assert all(v.get("drift").status == "fail" and "top-20" in v.get("drift").numbers for v in flood)


def test_a_checkpoint_vllm_refuses_fails_alone_naming_the_engines_root_cause(one):
    gate, report = one
    refused = [v for v in report.verdicts if v.model == REFUSED]
    assert refused and all(v.diagnosis == "engine_refused" for v in refused)
    assert "No compressed-tensors compatible scheme" in refused[0].failed[0].numbers
    assert all(v.status != "fail" for v in report.verdicts if v.model in HEALTHY)
    runs = {m: gate._results[(m, "zoo_math")] for m in HEALTHY}
    assert all(isinstance(r, TaskResult) and r.run.backend["backend"] == "vllm" for r in runs.values())
    assert "WNA16" in runs["base_gptq_w4g64"].run.backend.get("kernels", "")  # what the engine did with it


def test_two_servers_spread_the_models_and_give_the_same_verdicts(one, two):
    (gate1, report1), (gate2, report2) = one, two
    slots = placement_table(gate2.served.placement)
    assert set(slots) == {0, 1}, slots
    parent = next(s for s, models in slots.items() if "base" in models)
    assert any(m != "base" for m in slots[1 - parent])  # a variant ran on the other server
    assert {v.model: v.diagnoses for v in report2.verdicts} == {v.model: v.diagnoses for v in report1.verdicts}
    assert _outcomes(report2) == _outcomes(report1)
    for m in HEALTHY:  # placement never changes a healthy model's replies
        for t in gate1._tasks_of(m):
            assert [r.generation for r in gate2._results[(m, t)].records] == \
                [r.generation for r in gate1._results[(m, t)].records], (m, t)
