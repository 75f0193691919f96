"""The mutation matrix (fixtures/mutations.toml, `evalkit.zoo.mutations`): the gate must fail every deliberately
broken variant of the zoo's base with its named root cause, and fail no exact re-parametrization of it.

One test per (variant, task). A must-fail variant passes the test when its verdict fails, names the expected root
cause among its diagnoses, and no check failed for a tool error (``drift_error``, ``evaluation_error``): a broken
model must be explained, not crash the gate. A must-pass variant passes the test when no check fails, only a
statistical check is inconclusive (16 items cannot rule out a 5-point drop) and no item is worse than the parent's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.gate.checks import STATISTICAL
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
        assert not v.failed, f"{case.model} must not fail (a re-parametrization of its parent):\n{report}"
        # At 16 items no paired test can rule out a 5-point drop, so a statistical check may stay inconclusive: for
        # the sample size alone. Every deterministic check passes, and no item is answered worse than by the parent.
        short = {c.check for c in v.inconclusive}
        assert short <= set(STATISTICAL), f"{case.model}: deterministic checks inconclusive: {short - set(STATISTICAL)}"
        assert v.get("recovery").values["worse"] == 0, f"{case.model} lost items: {v.get('recovery').message}"
        return
    expected = MANIFEST.models[case.model].diagnosis
    assert v.status == "fail", f"{case.model} ESCAPED: every check passed, but it must fail as {expected}"
    assert not TOOL_ERRORS & set(v.diagnoses), f"{case.model}: a tool error instead of a diagnosis:\n{report}"
    assert set(expected) & set(v.diagnoses), f"{case.model} fails as {v.diagnoses}, must fail as {expected}:\n{report}"
