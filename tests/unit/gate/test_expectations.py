"""evalkit.gate.expectations: what a snapshot keeps, each field's tolerance, and how --snapshot-update merges.

The received values in the tables are the ones another CPU kind produced for the zoo (issue 11's 43 failures on an
AMD EPYC with AVX-512 BF16 against snapshots recorded elsewhere): noise the snapshots must tolerate. The changes
that must still fail are the ones a reviewer has to see.
"""

from __future__ import annotations

import copy

import pytest

from evalkit.gate.expectations import (
    FLIP_ITEMS,
    compare,
    compare_golden,
    golden_document,
    merge,
    rule_for,
    summary_document,
)

SUMMARY = {  # evalkit.gate.summary.summarize of a healthy variant, as the gate produces it
    "model": {"zoo_build": "0123456789abcdef"},
    "n": 48,
    "metric": "accuracy",
    "outcome": "PASS",
    "verdict": {"compliance": "pass", "recovery": "pass", "drift": "pass"},
    "diagnosis": "",
    "compliance": 1.0,
    "n_scored": 48,
    "diagnoses": {"ok": 48},
    "metrics": {"accuracy": 0.979167, "avg_abs_diff": 0.0},
    "recovery": {"worse": 0, "better": 0, "drop": 0.0, "p_value": 1.0, "adjusted_p": 1.0, "level": 0.0023,
                 "alpha": 0.0028, "lower": -0.12, "upper": 0.138, "power": 0.0, "needed": 1209, "recovery": 1.0,
                 "n": 48},
    "drift": {"kl_mean": 2.83818e-06, "kl_p99": 1.71844e-05, "top1_agreement": 1.0, "ppl_ratio": 1.00005,
              "first_divergent_layer": None, "kl_median": 1e-7},
    "trivial_baseline": {"accuracy": 0.0},
}


def _doc(summary=SUMMARY, *, reproducible=True, platform="cpu-a"):
    return summary_document(summary, flavour="cpu", platform=platform, reproducible=reproducible)


def _with(path: str, value: object, base: dict = SUMMARY) -> dict:
    out = copy.deepcopy(base)
    *head, last = path.split(".")
    node = out
    for key in head:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()


@pytest.mark.parametrize(("path", "value"), [
    # measured between two CPU kinds on healthy variants (issue 11)
    ("drift.kl_p99", 4.14339e-05),
    ("drift.ppl_ratio", 0.999928),
    ("drift.kl_mean", 1.57039e-05),
    # one reply flipping on a near-tie
    ("compliance", 0.979167),
    ("metrics.accuracy", 1.0),
    ("diagnoses.truncated", 1),
    ("recovery.worse", 1),
    # fields a snapshot does not keep: derived p-values, bounds, powers and item counts (the decisions they lead to
    # are kept, exactly), unbounded metrics
    ("recovery.p_value", 0.03),
    ("recovery.adjusted_p", 0.04),
    ("recovery.upper", 0.15),
    ("recovery.power", 0.01),
    ("recovery.needed", 1300),
    ("metrics.avg_abs_diff", 146.4),
    ("drift.kl_median", 0.2),
])
def test_noise_of_another_platform_is_tolerated(path: str, value: object) -> None:
    assert compare(_doc(_with(path, value)), _doc()).problems == []


@pytest.mark.parametrize(("path", "value", "problem"), [
    ("model.zoo_build", "fedcba9876543210", "cpu: model.zoo_build: stored '0123456789abcdef', received "
                                            "'fedcba9876543210'"),
    ("verdict.recovery", "fail", "cpu: verdict.recovery: stored 'pass', received 'fail'"),
    ("diagnosis", "wrong_answer", "cpu: diagnosis: stored '', received 'wrong_answer'"),
    ("outcome", "FAIL", "cpu: outcome: stored 'PASS', received 'FAIL'"),
    ("n", 64, "cpu: n: stored 48, received 64"),
    ("metrics.accuracy", 0.9375, "cpu: metrics.accuracy: stored 0.979167, received 0.9375 (2 item(s) of 48 apart"),
    ("compliance", 0.958333, "cpu: compliance: stored 1.0, received 0.958333 (2 item(s) of 48 apart"),
    ("diagnoses.no_box", 2, "cpu: diagnoses.no_box: stored 0, received 2 (2 apart"),
    ("recovery.worse", 2, "cpu: recovery.worse: stored 0, received 2 (2 apart"),
    ("drift.kl_mean", 0.01, "cpu: drift.kl_mean: stored 2.83818e-06, received 0.01 (|diff| 0.01 >"),
    ("drift.top1_agreement", 0.97, "cpu: drift.top1_agreement: stored 1.0, received 0.97"),
    ("drift.first_divergent_layer", 3, "cpu: drift.first_divergent_layer: stored None, received 3"),
    ("metrics.accuracy", None, "cpu: metrics.accuracy: stored 0.979167, received None"),
])
def test_a_real_change_fails(path: str, value: object, problem: str) -> None:
    found = compare(_doc(_with(path, value)), _doc()).problems
    assert len(found) == 1 and found[0].startswith(problem), found


def test_a_broken_models_drift_moves_within_the_relative_band() -> None:
    """A known-broken model's large drift figures moved by up to 3.2% between CPU kinds (ppl ratio 78.3 -> 80.8)."""
    stored = _doc(_with("drift.ppl_ratio", 78.3387))
    assert compare(_doc(_with("drift.ppl_ratio", 80.837)), stored).problems == []
    assert compare(_doc(_with("drift.ppl_ratio", 86.0)), stored).problems != []


def test_counts_absent_on_one_side_count_as_zero() -> None:
    two = _with("diagnoses", {"ok": 46, "no_box": 2})
    assert compare(_doc(_with("diagnoses", {"ok": 47, "truncated": 1})), _doc(_with("diagnoses", {"ok": 48}))
                   ).problems == []
    assert [p.split(":")[1].strip() for p in compare(_doc(two), _doc()).problems] == ["diagnoses.no_box",
                                                                                    "diagnoses.ok"]


def test_flip_budget_is_one_item() -> None:
    assert FLIP_ITEMS == 1
    assert rule_for("compliance").k == rule_for("diagnoses.ok").k == FLIP_ITEMS


def test_new_and_lost_fields_are_named() -> None:
    received = _doc(_with("model", _DELETE))
    received["cpu"]["newfield"] = 1
    assert compare(received, _doc()).problems == [
        "cpu: model: stored {'zoo_build': '0123456789abcdef'}, missing from the received summary",
        "cpu: newfield: new in the received summary (1)",
    ]


# --- platforms ---------------------------------------------------------------------------------------------------

def test_known_broken_behaviour_is_kept_per_platform() -> None:
    doc = _doc(reproducible=False)
    part = doc["cpu"]
    assert set(part) == {"model", "n", "metric", "trivial_baseline", "outcome", "drift", "platforms"}
    assert set(part["platforms"]["cpu-a"]) == {"n", "verdict", "diagnosis", "compliance", "n_scored", "diagnoses",
                                               "metrics", "recovery"}


def test_another_platform_checks_the_portable_part_and_says_what_is_unrecorded() -> None:
    stored = _doc(reproducible=False, platform="cpu-a")
    chaotic = _with("compliance", 0.5)  # a broken model's replies on another kernel
    result = compare(_doc(chaotic, reproducible=False, platform="cpu-b"), stored)
    assert result.problems == []
    assert result.unrecorded == ["cpu: no expectations recorded for platform 'cpu-b' (recorded: cpu-a); its portable "
                                 "part was checked. Record this platform with --snapshot-update and review the diff"]
    swapped = _with("model.zoo_build", "ffffffffffffffff", chaotic)  # the portable part still catches a swap
    assert compare(_doc(swapped, reproducible=False, platform="cpu-b"), stored).problems != []
    # on the platform that recorded it, the chaotic part is compared like any other
    assert compare(_doc(chaotic, reproducible=False, platform="cpu-a"), stored).problems != []


def test_a_flavour_never_recorded_is_a_failure() -> None:
    stored = {"cuda": _doc()["cpu"]}
    assert compare(_doc(), stored).problems == ["cpu: nothing recorded for the cpu flavour yet; record it with "
                                                "--snapshot-update and review the diff"]


# --- merging (what --snapshot-update writes) ---------------------------------------------------------------------

def test_update_keeps_other_flavours_and_platforms_byte_for_byte() -> None:
    cuda = {"n": 48, "compliance": 0.5, "platforms": {"cuda-h100": {"n": 48, "verdict": {"x": "fail"}}}}
    stored = {**_doc(reproducible=False, platform="cpu-a"), "cuda": cuda}
    merged = merge(stored, _doc(_with("compliance", 0.25), reproducible=False, platform="cpu-b"))
    assert merged["cuda"] == cuda
    assert merged["cpu"]["platforms"]["cpu-a"] == stored["cpu"]["platforms"]["cpu-a"]
    assert merged["cpu"]["platforms"]["cpu-b"]["compliance"] == 0.25


def test_update_keeps_stored_values_within_tolerance_and_adds_new_fields() -> None:
    stored = _doc(_with("model", _DELETE))
    noisy = _with("drift.kl_p99", 4.14339e-05)
    merged = merge(stored, _doc(noisy))
    assert merged["cpu"]["drift"]["kl_p99"] == 1.71844e-05  # the recorded value, not this machine's rounding
    assert merged["cpu"]["model"] == {"zoo_build": "0123456789abcdef"}  # the new field is added


def test_update_replaces_only_the_field_groups_that_differ_beyond_tolerance() -> None:
    changed = _with("metrics.accuracy", 0.5, _with("drift.kl_p99", 4.14339e-05))
    merged = merge(_doc(), _doc(changed))["cpu"]
    assert merged["metrics"] == _doc(changed)["cpu"]["metrics"]  # the group that changed, whole
    assert merged["drift"] == _doc()["cpu"]["drift"]  # within tolerance: the recorded figures stay
    assert {k: v for k, v in merged.items() if k != "metrics"} == {k: v for k, v in _doc()["cpu"].items()
                                                                   if k != "metrics"}


def test_a_new_decision_rule_rewrites_the_verdicts_and_keeps_the_recorded_numbers() -> None:
    """E.g. a recovery verdict that is now "inconclusive" under new statistics: the update rewrites the verdicts
    and the outcome, and every count, metric and drift figure keeps the value another machine recorded."""
    recorded = _doc()
    noisy = _with("verdict.recovery", "inconclusive", _with("drift.kl_mean", 1.57039e-05))
    merged = merge(recorded, _doc(noisy))["cpu"]
    assert merged["verdict"]["recovery"] == "inconclusive"
    assert merged["drift"] == recorded["cpu"]["drift"] and merged["metrics"] == recorded["cpu"]["metrics"]


# --- golden responses --------------------------------------------------------------------------------------------

def test_golden_responses_are_exact_and_per_platform_for_broken_models() -> None:
    doc = golden_document({"t/0": "a\nb"}, flavour="cpu", platform="cpu-a", reproducible=False)
    assert doc == {"cpu": {"platforms": {"cpu-a": {"t/0": ["a", "b"]}}}}
    other = golden_document({"t/0": "a\nc"}, flavour="cpu", platform="cpu-b", reproducible=False)
    result = compare_golden(other, doc)
    assert result.problems == [] and len(result.unrecorded) == 1
    same = golden_document({"t/0": "a\nc"}, flavour="cpu", platform="cpu-a", reproducible=False)
    assert compare_golden(same, doc).problems == [
        "cpu on cpu-a: t/0: differs from character 2 (line 2): stored 'b', received 'c'"]


def test_golden_responses_name_new_and_missing_prompts() -> None:
    got = golden_document({"a": "x", "c": "z"}, flavour="cpu", platform="p", reproducible=True)
    want = golden_document({"a": "x", "b": "y"}, flavour="cpu", platform="p", reproducible=True)
    assert compare_golden(got, want).problems == ["cpu: b: stored, but no longer produced",
                                                  "cpu: c: new response, not in the snapshot"]
