"""The mutation matrix (fixtures/mutations.toml, `evalkit.zoo.mutations`): the gate must fail every deliberately
broken variant of the zoo's base with its named root cause, and pass every exact re-parametrization of it.

One test per (variant, task). A must-fail variant passes the test when its verdict fails, names the expected root
cause among its diagnoses, and no check failed for a tool error (``drift_error``, ``evaluation_error``): a broken
model must be explained, not crash the gate. A must-pass variant passes the test when every check passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.gate.manifest import load
from evalkit.gate.runner import Gate
from evalkit.zoo.mutations import MUTATIONS

MANIFEST = load(Path(__file__).resolve().parents[2] / "fixtures" / "mutations.toml")
CASES = [c for c in MANIFEST.cases() if c.parent is not None]
TOOL_ERRORS = {"drift_error", "evaluation_error", "parent_error"}


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate(MANIFEST, device="cpu")


def test_the_manifest_is_the_matrix() -> None:
    """Every mutation is gated, with the root cause it is registered with; the matrix is as large as promised."""
    gated = {name: spec for name, spec in MANIFEST.models.items() if name.startswith("mut_")}
    assert {m.name: (m.expected,) if m.expected else () for m in MUTATIONS} == \
        {name: tuple(spec.diagnosis) for name, spec in gated.items()}
    must_fail = [m for m in MUTATIONS if m.expected]
    assert len(must_fail) >= 25 and len(MUTATIONS) - len(must_fail) + 1 >= 5  # + base_gptq_w4g64
    faults = {m.fault for m in must_fail}
    assert faults == {"weights", "quantization", "tokenizer", "chat_template", "generation_config", "config", "files"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mutation(gate: Gate, case) -> None:
    v = gate.verdict(case.model, case.task)
    report = "\n".join(c.message for c in v.failed)
    if case.expect == "pass":
        assert v.status == "pass", f"{case.model} must pass (an exact re-parametrization of its parent):\n{report}"
        return
    expected = MANIFEST.models[case.model].diagnosis
    assert v.status == "fail", f"{case.model} ESCAPED: every check passed, but it must fail as {expected}"
    assert not TOOL_ERRORS & set(v.diagnoses), f"{case.model}: a tool error instead of a diagnosis:\n{report}"
    assert set(expected) & set(v.diagnoses), f"{case.model} fails as {v.diagnoses}, must fail as {expected}:\n{report}"
