"""evalkit.pytest.snapshots: the syrupy plumbing, through pytester.

The gate's tests come in two flavours of one (model, task): ``[cpu-m-t]`` and ``[cuda-m-t]`` (marker ``gpu``). Here a
marker of this file's own (``flavour_b``) stands in for ``gpu``, so that the selection logic runs on a machine
without CUDA: the entries must survive every ``-m``/``-k`` selection, and ``--snapshot-update`` must leave the other
flavour's part byte for byte.
"""

from __future__ import annotations

import json
import re

import pytest

from evalkit.pytest.snapshots import GoldenResponsesExtension, MetricSummaryExtension

pytest_plugins = ["pytester"]

_TEST_FILE = """
import os
import pytest
from evalkit.pytest.snapshots import MetricSummaryExtension, GoldenResponsesExtension, for_session

FLAVOURS = [pytest.param("cpu", id="cpu-m-t"), pytest.param("cuda", id="cuda-m-t", marks=pytest.mark.flavour_b)]


def _env(name, flavour, default):
    return os.environ.get(f"{name}_{flavour.upper()}", default)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_summary(snapshot, flavour):
    platform = _env("PLATFORM", flavour, f"{flavour}-a")
    part = {"n": 64, "model": {"fingerprint": _env("FP", flavour, "ab12")},
            "metrics": {"accuracy": float(_env("ACC", flavour, "0.90625"))},
            "verdict": {"recovery": _env("VERDICT", flavour, "pass")}}
    chaotic = {"n": 64, "compliance": float(_env("CHAOS", flavour, "0.5"))}
    ext = for_session(MetricSummaryExtension, bool(snapshot.update_snapshots))
    assert snapshot.use_extension(ext) == {flavour: {**part, "platforms": {platform: chaotic}}}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_golden(snapshot, flavour):
    text = _env("TEXT", flavour, "so \\\\boxed{4}<|im_end|>")
    ext = for_session(GoldenResponsesExtension, bool(snapshot.update_snapshots))
    assert snapshot.use_extension(ext) == {flavour: {"zoo_math/0": text.split("\\n")}}
"""

_INI = "[pytest]\nmarkers =\n    flavour_b: the second flavour\n"
_ENV = ("ACC", "FP", "VERDICT", "CHAOS", "PLATFORM", "TEXT")


def _run(pytester: pytest.Pytester, *args: str, **env: str) -> pytest.RunResult:
    """pytest in the pytester folder (in process), with `env` set for the test file to read."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            mp.delenv(key, raising=False)  # the inner run is a session of its own under -n
        for name in _ENV:
            for flavour in ("CPU", "CUDA"):
                mp.delenv(f"{name}_{flavour}", raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def _stored(pytester: pytest.Pytester) -> str:
    return (pytester.path / "__snapshots__" / "test_snap.ambr").read_text()


def _entry(stored: str, name: str) -> dict:
    body = stored.split(f"# name: {name}\n", 1)[1].split("# ---", 1)[0]
    return json.loads(body)


def _section(stored: str, name: str, flavour: str) -> str:
    """The stored text of one flavour's part of an entry, from its key to its closing brace."""
    lines = stored.split(f"# name: {name}\n", 1)[1].split("# ---", 1)[0].splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f'"{flavour}": {{')
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(" " * indent + "}"))
    return "\n".join(lines[start : end + 1])


@pytest.fixture
def recorded(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_snap=_TEST_FILE)
    pytester.makeini(_INI)
    _run(pytester, "--snapshot-update").assert_outcomes(passed=4)
    return pytester


def test_a_missing_snapshot_gets_syruys_message_not_a_traceback(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_snap=_TEST_FILE)
    pytester.makeini(_INI)
    result = _run(pytester)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*Snapshot 'test_summary?m-t?' does not exist!*",
                                 "*record it with --snapshot-update, then review the diff*"])
    assert "JSONDecodeError" not in result.stdout.str() and "not the JSON this extension writes" not in \
        result.stdout.str()


def test_one_entry_per_model_and_task_holds_both_flavours(recorded: pytest.Pytester) -> None:
    stored = _stored(recorded)
    assert re.findall(r"# name: (.*)", stored) == ["test_golden[m-t]", "test_summary[m-t]"]
    summary = _entry(stored, "test_summary[m-t]")
    assert set(summary) == {"cpu", "cuda"}
    assert summary["cpu"]["platforms"] == {"cpu-a": {"compliance": 0.5, "n": 64}}
    _run(recorded).assert_outcomes(passed=4)  # byte-identical rerun


@pytest.mark.parametrize("selection", [("-m", "flavour_b"), ("-m", "not flavour_b"), ("-k", "cuda"),
                                       ("-k", "not golden"), ("-k", "cpu and summary")])
def test_selections_leave_every_entry_in_place_and_exit_zero(recorded: pytest.Pytester, selection: tuple) -> None:
    before = _stored(recorded)
    result = _run(recorded, *selection)
    assert result.ret == 0, result.stdout.str()
    assert "unused" not in result.stdout.str()
    update = _run(recorded, *selection, "--snapshot-update")
    assert update.ret == 0 and _stored(recorded) == before


def test_update_of_one_flavour_leaves_the_other_byte_for_byte(recorded: pytest.Pytester) -> None:
    before = _entry(_stored(recorded), "test_summary[m-t]")
    before_text = _section(_stored(recorded), "test_summary[m-t]", "cpu")
    _run(recorded, "-m", "flavour_b", "--snapshot-update", ACC_CUDA="0.5", TEXT_CUDA="other").assert_outcomes(
        passed=2, deselected=2)
    stored = _stored(recorded)
    after = _entry(stored, "test_summary[m-t]")
    assert after["cpu"] == before["cpu"]
    assert after["cuda"]["metrics"]["accuracy"] == 0.5
    assert _section(stored, "test_summary[m-t]", "cpu") == before_text
    _run(recorded).assert_outcomes(passed=2, failed=2)  # the cpu flavour still matches, cuda's old values do not
    _run(recorded, ACC_CUDA="0.5", TEXT_CUDA="other").assert_outcomes(passed=4)


def test_noise_within_tolerance_is_a_match_and_never_rewritten(recorded: pytest.Pytester) -> None:
    before = _stored(recorded)
    _run(recorded, ACC_CPU="0.921875").assert_outcomes(passed=4)  # one item of 64
    _run(recorded, "--snapshot-update", ACC_CPU="0.921875").assert_outcomes(passed=4)
    assert _stored(recorded) == before


@pytest.mark.parametrize(("env", "line"), [
    ({"FP_CPU": "cd34"}, "*cpu: model.fingerprint: stored 'ab12', received 'cd34'*"),  # a swapped checkpoint
    ({"ACC_CPU": "0.875"}, "*cpu: metrics.accuracy: stored 0.90625, received 0.875 (2 item(s) of 64 apart*"),
    ({"VERDICT_CPU": "fail"}, "*cpu: verdict.recovery: stored 'pass', received 'fail'*"),
    ({"CHAOS_CPU": "0.25"}, "*cpu on cpu-a: compliance: stored 0.5, received 0.25*"),
])
def test_a_real_change_fails_the_snapshot(recorded: pytest.Pytester, env: dict, line: str) -> None:
    result = _run(recorded, "-k", "summary and cpu", **env)
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["*1 difference(s) beyond what this snapshot tolerates:*", line])


def test_golden_text_is_byte_for_byte(recorded: pytest.Pytester) -> None:
    result = _run(recorded, "-k", "golden and cpu", TEXT_CPU="so \\boxed{5}<|im_end|>")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["*cpu: zoo_math/0: differs from character 10 (line 1)*"])


def test_an_unrecorded_platform_warns_then_records_beside_the_others(recorded: pytest.Pytester) -> None:
    result = _run(recorded, PLATFORM_CPU="cpu-b", CHAOS_CPU="0.75")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*SnapshotPlatformWarning: cpu: no expectations recorded for platform 'cpu-b' "
                                 "(recorded: cpu-a)*"])
    swapped = _run(recorded, PLATFORM_CPU="cpu-b", FP_CPU="cd34")  # the portable part is still checked
    swapped.assert_outcomes(passed=3, failed=1)
    _run(recorded, "--snapshot-update", PLATFORM_CPU="cpu-b", CHAOS_CPU="0.75").assert_outcomes(passed=4)
    platforms = _entry(_stored(recorded), "test_summary[m-t]")["cpu"]["platforms"]
    assert platforms == {"cpu-a": {"compliance": 0.5, "n": 64}, "cpu-b": {"compliance": 0.75, "n": 64}}
    _run(recorded).assert_outcomes(passed=4)
    _run(recorded, PLATFORM_CPU="cpu-b", CHAOS_CPU="0.75").assert_outcomes(passed=4)


def test_removed_tests_are_reported_unused(recorded: pytest.Pytester) -> None:
    recorded.makepyfile(test_snap=_TEST_FILE.split("@pytest.mark.parametrize(\"flavour\", FLAVOURS)\ndef test_golden")[0])
    result = _run(recorded)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*1 snapshot unused*"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        MetricSummaryExtension().serialize({"cpu": {"x": bad}})


@pytest.mark.parametrize(
    "text",
    ["", "\n", "a  \r\n\\boxed{4}<|im_end|>", "<think>\n\n</think>\n\nx\x00y", "ünïcode\u2028sep\n\n\n"],
)
def test_golden_responses_round_trip_byte_for_byte(text: str) -> None:
    e = GoldenResponsesExtension()
    stored = e.serialize({"cpu": {"t/0": text.split("\n")}})
    assert e.matches(serialized_data=e.serialize({"cpu": {"t/0": text.split("\n")}}), snapshot_data=stored)
    assert not e.matches(serialized_data=e.serialize({"cpu": {"t/0": (text + " ").split("\n")}}),
                         snapshot_data=stored)


def test_summaries_serialize_the_same_bytes_whatever_the_key_order() -> None:
    e = MetricSummaryExtension()
    doc = {"cpu": {"n": 1, "metrics": {"b": 0.5, "a": 0.25}}}
    assert e.serialize({"cpu": dict(reversed(list(doc["cpu"].items())))}) == e.serialize(doc)
