"""The gate's model tests: every (model, task) of the manifest (``--zoo``; default: the fixture zoo).

Run alone with ``pytest tests/gate`` (``-m gpu`` for the CUDA flavour, ``-n N`` to spread model families over
workers). Each test is one check of one (model, task); a failure prints the diagnosis, the counts per failure
class, two example responses and the numbers compared. Known-broken models (``expect = "fail"`` in the manifest)
xfail where the gate catches them, and `test_known_broken_is_caught` asserts they are caught for the right reason.
"""

from evalkit.pytest.assertions import GateCase


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
