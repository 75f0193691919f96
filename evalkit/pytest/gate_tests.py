"""The gate's tests, shipped with evalkit: the plugin collects them at the gate manifest itself, so a repository
writes a manifest and runs ``pytest --zoo my.toml`` (or names it in its ini file, ``gate = my.toml``) without
copying anything. Node ids read ``my.toml::test_compliance[cpu-base-zoo_math]``; their snapshots are syrupy's own,
beside the manifest (``__snapshots__/my.ambr``). This repository's gate is the same mechanism: pytest.ini names
``tests/gate/test_zoo_gate.toml``, the fixture zoo's manifest.

Each test is one check of one (model, task) of the manifest; a failure prints the diagnosis, the counts per failure
class, two example responses and the numbers compared. Known-broken models (``expect = "fail"`` in the manifest)
xfail where the gate catches them, and `test_known_broken_is_caught` asserts they are caught for the right reason.
The CUDA flavour of every test carries the ``gpu`` marker (``-m gpu``; ``-n N`` pins one GPU per xdist worker).

This module is never imported as a test file of its own (its name does not match ``test_*.py``): the plugin's
`evalkit.pytest.session.GateModule` collects it.
"""

from evalkit.pytest.assertions import GateCase

CHECK_OF_TEST = {
    "test_artifacts": "artifacts", "test_finite": "finite", "test_prompt": "prompt", "test_compliance": "compliance", "test_stopping": "stopping",
    "test_metric_floor": "metric_floor", "test_beats_trivial_baseline": "baseline", "test_recovery": "recovery",
    "test_drift": "drift", "test_speed": "speed", "test_known_broken_is_caught": "caught",
    "test_metric_summary": "metric_summary", "test_golden_responses": "golden_responses",
}
"""What each test checks, as its JUnit ``check`` property names it (a check of `evalkit.gate.checks.CHECKS`, the
catch of a known-broken model, or one of the two snapshots)."""


def test_artifacts(variant_case: GateCase) -> None:
    variant_case.require("artifacts")


def test_finite(gate_case: GateCase) -> None:
    gate_case.require("finite")


def test_prompt(variant_case: GateCase) -> None:
    variant_case.require("prompt")


def test_compliance(gate_case: GateCase) -> None:
    gate_case.require("compliance")


def test_stopping(variant_case: GateCase) -> None:
    variant_case.require("stopping")


def test_metric_floor(gate_case: GateCase) -> None:
    gate_case.require("metric_floor")


def test_beats_trivial_baseline(gate_case: GateCase) -> None:
    gate_case.require("baseline")


def test_recovery(variant_case: GateCase) -> None:
    variant_case.require("recovery")


def test_drift(variant_case: GateCase) -> None:
    variant_case.require("drift")


def test_speed(variant_case: GateCase) -> None:
    variant_case.require("speed")


def test_known_broken_is_caught(broken_case: GateCase) -> None:
    broken_case.require_caught()


def test_metric_summary(gate_case: GateCase, metric_snapshot) -> None:
    assert gate_case.summary() == metric_snapshot


def test_golden_responses(gate_case: GateCase, golden_snapshot) -> None:
    assert gate_case.golden() == golden_snapshot
