"""evalkit.snapshots: the comparison rules directly, then the syrupy round trip through pytester."""

from __future__ import annotations

import copy

import pytest

from evalkit.pytest.snapshots import GoldenResponsesExtension, MetricSummaryExtension, Tolerance, metric_summary_extension

pytest_plugins = ["pytester"]

SUMMARY = {
    "n": 64,
    "compliance": 0.96875,
    "diagnoses": {"ok": 62, "no_box": 2},
    "metrics": {"accuracy": 0.90625, "avg_abs_diff": 1.25},
    "drift": {"kl_mean": 0.0123456, "first_divergent_layer": None},
}


def _compare(received: dict, stored: dict, ext: type[MetricSummaryExtension] = MetricSummaryExtension) -> list[str]:
    e = ext()
    return e.compare(e.serialize(received), e.serialize(stored))


def _with(path: str, value: object) -> dict:
    """SUMMARY with one nested value replaced (path like "metrics.accuracy")."""
    out = copy.deepcopy(SUMMARY)
    *head, last = path.split(".")
    node = out
    for key in head:
        node = node[key]
    node[last] = value
    return out


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("metrics.accuracy", 0.9062501, None),  # float noise within the default tolerance
        ("drift.kl_mean", 0.0123457, None),
        ("metrics.accuracy", 0.921875, "metrics.accuracy: stored 0.90625, received 0.921875"),
        ("n", 65, "n: stored 64, received 65 (counts must match exactly)"),
        ("diagnoses.no_box", 3, "diagnoses.no_box: stored 2, received 3 (counts must match exactly)"),
        ("drift.first_divergent_layer", 3, "drift.first_divergent_layer: stored None, received 3"),
        ("metrics.avg_abs_diff", None, "metrics.avg_abs_diff: stored 1.25, received None"),
    ],
)
def test_metric_summary_tolerates_float_noise_only(path: str, value: object, problem: str | None) -> None:
    found = _compare(_with(path, value), SUMMARY)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(problem)


def test_metric_summary_names_added_and_removed_keys() -> None:
    received = _with("metrics.exact", 0.5)
    del received["compliance"]
    assert _compare(received, SUMMARY) == [
        "compliance: stored 0.96875, missing from the received summary",
        "metrics.exact: new in the received summary (0.5)",
    ]


def test_a_wider_tolerance_is_one_call() -> None:
    loose = metric_summary_extension(rel=0.05)
    assert _compare(_with("metrics.accuracy", 0.92), SUMMARY, loose) == []
    assert _compare(_with("n", 65), SUMMARY, loose) != []  # counts stay exact
    assert MetricSummaryExtension.tolerance == Tolerance()  # the default is untouched


def test_summaries_serialize_the_same_bytes_whatever_the_key_order() -> None:
    e = MetricSummaryExtension()
    assert e.serialize(dict(reversed(list(SUMMARY.items())))) == e.serialize(SUMMARY)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        MetricSummaryExtension().serialize({"x": bad})


@pytest.mark.parametrize(
    "text",
    ["", "\n", "a  \r\n\\boxed{4}<|im_end|>", "<think>\n\n</think>\n\nx\x00y", "ünïcode\u2028sep\n\n\n"],
)
def test_golden_responses_round_trip_byte_for_byte(text: str) -> None:
    e = GoldenResponsesExtension()
    stored = e.serialize({"t/0": text})
    assert e.matches(serialized_data=e.serialize({"t/0": text}), snapshot_data=stored)
    assert not e.matches(serialized_data=e.serialize({"t/0": text + " "}), snapshot_data=stored)


def test_golden_responses_name_new_and_missing_prompts() -> None:
    e = GoldenResponsesExtension()
    assert e.compare(e.serialize({"a": "x", "c": "z"}), e.serialize({"a": "x", "b": "y"})) == [
        "b: stored, but no longer produced",
        "c: new response, not in the snapshot",
    ]


# --- through syrupy ------------------------------------------------------------------------------------------------

_TEST_FILE = """
import os
from evalkit.pytest.snapshots import MetricSummaryExtension, GoldenResponsesExtension

def test_summary(snapshot):
    acc = float(os.environ.get("ACC", "0.90625"))
    n = int(os.environ.get("N", "64"))
    assert snapshot.use_extension(MetricSummaryExtension) == {"n": n, "metrics": {"accuracy": acc}}

def test_golden(snapshot):
    text = os.environ.get("TEXT", "so \\\\boxed{4}<|im_end|>")
    assert snapshot.use_extension(GoldenResponsesExtension) == {"zoo_math/0": text}
"""


def _run(pytester: pytest.Pytester, *args: str, **env: str) -> pytest.RunResult:
    """pytest in the pytester folder (in process), with `env` set for the test file to read."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ("ACC", "N", "TEXT", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            mp.delenv(key, raising=False)  # (the xdist variables: the inner run is a session of its own under -n)
        for key, value in env.items():
            mp.setenv(key, value)
        return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_syrupy_round_trip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_snap=_TEST_FILE)
    first = _run(pytester)
    first.assert_outcomes(failed=2)  # no snapshot yet: syrupy says so and how to write one
    _run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    stored = (pytester.path / "__snapshots__" / "test_snap.ambr").read_text()
    assert '"accuracy": 0.90625' in stored and "<|im_end|>" in stored

    _run(pytester).assert_outcomes(passed=2)  # byte-identical rerun
    _run(pytester, ACC="0.9062501").assert_outcomes(passed=2)  # float noise: still a match...
    _run(pytester, "--snapshot-update", ACC="0.9062501").assert_outcomes(passed=2)
    assert (pytester.path / "__snapshots__" / "test_snap.ambr").read_text() == stored  # ...and never rewritten

    drifted = _run(pytester, ACC="0.875", N="63", TEXT="so \\boxed{5}<|im_end|>")
    drifted.assert_outcomes(failed=2)
    drifted.stdout.fnmatch_lines([
        "*2 difference(s) beyond what this snapshot tolerates:*",
        "*metrics.accuracy: stored 0.90625, received 0.875*",
        "*n: stored 64, received 63 (counts must match exactly)*",
        "*zoo_math/0: differs from character 10 (line 1)*",
    ])


def test_unused_snapshots_are_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_snap=_TEST_FILE)
    _run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    result = _run(pytester, "-k", "summary")
    result.assert_outcomes(passed=1, deselected=1)
    result = _run(pytester, "-k", "summary", "--snapshot-warn-unused")
    result.stdout.fnmatch_lines(["*1 snapshot passed*"])
    pytester.makepyfile(test_snap=_TEST_FILE.split("def test_golden")[0])
    result = _run(pytester)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*1 snapshot unused*"])
