"""evalkit.pytest.plugin through pytester: the gate collected at its manifest, one test per option, marker and hook.

Each run loads the plugin explicitly (plugin autoload off, so an installed entry point and `-p` never clash). The
inner projects hold no test file of the gate's: the plugin collects `evalkit.pytest.gate_tests` at the manifest, as
it does in any team's repository. Manifests whose model folders do not exist exercise everything up to loading in a
fraction of a second; the runs that need real responses use the fixture zoo's models and skip when it is absent.
The plugin's inertness without a gate is tests/plugin/test_inert.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

import torch  # noqa: F401  (before any in-process run: pytester drops what an inner run imported, and torch
# cannot be imported twice in one process; an inner gate run imports it to ask for CUDA)

import evalkit.pytest.plugin  # noqa: F401  (imported here, so in-process pytester runs reuse it instead of importing anew)
import evalkit.pytest.session  # noqa: F401

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
PLUGINS = ("-p", "evalkit.pytest.plugin", "-p", "syrupy", "-p", "no:cacheprovider")
N_ITEMS = 5 * 2 * 6 + 3 * 2 * 6 + 2  # 5 models x 2 tasks x 6 tests, 3 variants x 2 tasks x 6 more, 2 broken

GHOSTS = """
[tasks.zoo_yes_no]
limit = 4
[tasks.zoo_math]
limit = 4
[models.p1]
path = "nowhere/p1"
[models.v1]
path = "nowhere/v1"
parent = "p1"
[models.p2]
path = "nowhere/p2"
[models.v2]
path = "nowhere/v2"
parent = "p2"
[models.b2]
path = "nowhere/b2"
parent = "p2"
expect = "fail"
diagnosis = "load_error"
"""


@pytest.fixture
def gate_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)  # the inner runs are sessions of their own, also under -n
    pytester.makefile(".toml", ghosts=GHOSTS)
    return pytester


def _zoo_or_skip() -> None:
    from evalkit import zoo

    if not (zoo.default_zoo_dir() / "base").is_dir():
        pytest.skip(f"fixture zoo parents not found under {zoo.default_zoo_dir()}")


def _outcomes_by_id(result: pytest.RunResult) -> dict[str, str]:
    out = {}
    for line in result.outlines:
        m = re.match(r"(?:\[gw\d+\] )?\S*::(\w+\[[^\]]+\]) (PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR)", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_the_plugin_is_cheap_to_import() -> None:
    """pytest loads the plugin in every run of every project where evalkit is installed (pytest11 entry point): it
    imports pytest and the standard library only (``import evalkit`` itself imports nothing); the library loads with
    the first gate."""
    code = ("import sys, evalkit.plugin; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('evalkit', 'torch', 'numpy', 'transformers', "
            "'syrupy')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['evalkit', 'evalkit.plugin', 'evalkit.pytest', 'evalkit.pytest.plugin']", \
        proc.stdout


def test_options_are_in_the_help(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest(*PLUGINS, "--help")
    result.stdout.fnmatch_lines(["*--zoo=PATH*", "*--gate-limit=N*", "*--gate-device=*", "*gate (string):*"])


def test_zoo_manifest_becomes_parametrized_tests_at_the_manifest(gate_dir: pytest.Pytester) -> None:
    """No test file of the gate's in the project: the tests are collected at the manifest itself."""
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "--gate-device", "cpu", "--collect-only", "-q")
    ids = _ids(result)
    assert "ghosts.toml::test_compliance[cpu-p1-zoo_yes_no]" in ids
    assert "ghosts.toml::test_recovery[cpu-v1-zoo_math]" in ids
    assert not any("test_recovery[cpu-p1" in i for i in ids)  # a parent has nothing to recover
    assert [i for i in ids if "known_broken" in i] == [
        "ghosts.toml::test_known_broken_is_caught[cpu-b2-zoo_yes_no]",
        "ghosts.toml::test_known_broken_is_caught[cpu-b2-zoo_math]",
    ]
    assert len(ids) == N_ITEMS


def test_a_manifest_given_as_a_path_is_collected(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest(*PLUGINS, "ghosts.toml", "--gate-device", "cpu", "--collect-only", "-q")
    assert len(_ids(result)) == N_ITEMS and all(i.startswith("ghosts.toml::") for i in _ids(result))


def test_zoo_reaches_a_manifest_outside_the_paths_given(gate_dir: pytest.Pytester) -> None:
    """--zoo asks for the gate: it is collected beside the paths given, and with none of them under its folder."""
    gate_dir.mkdir("gate")
    (gate_dir.path / "gate" / "mine.toml").write_text(GHOSTS)
    gate_dir.makepyfile(test_own="def test_own():\n    pass\n")
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "gate/mine.toml", "--gate-device", "cpu", "test_own.py",
                                "--collect-only", "-q")
    ids = _ids(result)
    assert "test_own.py::test_own" in ids
    assert sum(i.startswith("gate/mine.toml::") for i in ids) == N_ITEMS


def test_the_ini_gate_key_is_collected_by_a_plain_pytest_only(gate_dir: pytest.Pytester) -> None:
    """``gate = PATH`` in the ini file: a plain ``pytest`` (testpaths or the working directory) and paths that
    contain the manifest collect the gate; a run of other paths is the project's own and gets no gate."""
    gate_dir.mkdir("evals")
    (gate_dir.path / "evals" / "zoo.toml").write_text(GHOSTS)
    gate_dir.mkdir("tests")
    (gate_dir.path / "tests" / "test_own.py").write_text("def test_own():\n    pass\n")
    gate_dir.makeini("[pytest]\ntestpaths = tests\ngate = evals/zoo.toml\n")
    plain = _ids(gate_dir.runpytest(*PLUGINS, "--gate-device", "cpu", "--collect-only", "-q"))
    assert "tests/test_own.py::test_own" in plain and sum(i.startswith("evals/zoo.toml::") for i in plain) == N_ITEMS
    own = _ids(gate_dir.runpytest(*PLUGINS, "tests", "--collect-only", "-q"))
    assert own == ["tests/test_own.py::test_own"]
    folder = _ids(gate_dir.runpytest(*PLUGINS, "evals", "--gate-device", "cpu", "--collect-only", "-q"))
    assert len(folder) == N_ITEMS


def test_without_a_gate_nothing_is_collected_from_a_manifest(gate_dir: pytest.Pytester) -> None:
    """A TOML file in a project is not a gate unless the run asks for one."""
    result = gate_dir.runpytest(*PLUGINS, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED and _ids(result) == []


def test_a_cpu_manifest_collects_no_cuda_flavour(gate_dir: pytest.Pytester) -> None:
    gate_dir.makefile(".toml", cpu="[gate]\ndevice = 'cpu'\n" + GHOSTS)
    ids = _ids(gate_dir.runpytest(*PLUGINS, "--zoo", "cpu.toml", "--collect-only", "-q"))
    assert len(ids) == N_ITEMS and not any("[cuda-" in i for i in ids)
    both = _ids(gate_dir.runpytest(*PLUGINS, "--zoo", "cpu.toml", "--gate-device", "both", "--collect-only", "-q"))
    assert len(both) == 2 * N_ITEMS


def test_a_manifest_without_broken_models_gets_no_empty_catch_test(gate_dir: pytest.Pytester) -> None:
    gate_dir.makefile(".toml", healthy="[tasks.zoo_math]\n[models.p]\npath = 'p'\n[models.v]\npath = 'v'\n"
                                       "parent = 'p'\n")
    ids = _ids(gate_dir.runpytest(*PLUGINS, "--zoo", "healthy.toml", "--gate-device", "cpu", "--collect-only", "-q"))
    assert len(ids) == 2 * 6 + 6 and not any("known_broken" in i or "NOTSET" in i for i in ids), ids  # 6 per model, 6 more for v


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "*manifest file not found; pass --zoo*gate.md)*(asked for by --zoo)*"),
     ("[models.x]\npath='x'\n", "*no [[]tasks.<name>] table*")],
)
def test_a_bad_manifest_is_a_usage_error(gate_dir: pytest.Pytester, content: str | None, message: str) -> None:
    if content is not None:
        gate_dir.makefile(".toml", bad=content)
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "bad.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    if content is None:  # the guide it names exists for this installation
        guide = re.search(r"format: (\S+gate\.md)\)", result.stderr.str())
        assert guide and Path(guide.group(1)).is_file()


def test_gpu_flavour_skips_cleanly_without_cuda(gate_dir: pytest.Pytester) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the gpu flavour runs instead of skipping")
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "-m", "gpu", "-rs")
    result.assert_outcomes(skipped=N_ITEMS, deselected=N_ITEMS)
    result.stdout.fnmatch_lines([f"*SKIPPED [[]{N_ITEMS}[]] *: needs a CUDA GPU (the gate's cuda flavour)*"])


def test_a_projects_own_gpu_tests_beside_a_gate_are_not_skipped(gate_dir: pytest.Pytester) -> None:
    """The skip is the gate's, for its own CUDA items: a project's test marked ``gpu`` runs as the project says."""
    gate_dir.makeconftest("def pytest_configure(config):\n"
                          "    config.addinivalue_line('markers', 'gpu: this project\\'s own')\n")
    gate_dir.makepyfile(test_own="import pytest\n@pytest.mark.gpu\ndef test_on_my_gpu():\n    pass\n")
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the gate's gpu flavour runs instead of skipping")
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "-m", "gpu", "-v")
    result.assert_outcomes(passed=1, skipped=N_ITEMS, deselected=N_ITEMS)
    result.stdout.fnmatch_lines(["*test_own.py::test_on_my_gpu PASSED*"])


def test_a_broken_model_fails_only_its_own_tests_and_expected_failures_xfail(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "--gate-device", "cpu", "-v", "-p", "no:randomly")
    by_id = _outcomes_by_id(result)
    broken = {i: o for i, o in by_id.items() if "-b2-" in i}
    assert set(broken.values()) == {"XFAIL", "PASSED"}  # checks xfail as caught; the catch itself passes
    assert broken["test_known_broken_is_caught[cpu-b2-zoo_math]"] == "PASSED"
    assert all(o == "FAILED" for i, o in by_id.items() if "-b2-" not in i)  # ghosts without expect: plain fails
    result.stdout.fnmatch_lines([
        "*p1 on zoo_yes_no: compliance FAIL - load_error: the model folder could not be loaded*",
        "*error: *nowhere/p1: model folder does not exist*",
    ])


def test_wrong_expected_diagnosis_is_reported(gate_dir: pytest.Pytester) -> None:
    gate_dir.makefile(".toml", wrong=GHOSTS.replace('diagnosis = "load_error"', 'diagnosis = "empty"'))
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "wrong.toml", "--gate-device", "cpu", "-k", "known_broken")
    result.assert_outcomes(failed=2, deselected=N_ITEMS - 2)
    result.stdout.fnmatch_lines(["*b2 on zoo_math: known-broken model caught for the wrong reason: it fails as "
                                 "load_error, expected empty*"])


def test_a_known_broken_models_checks_fail_for_a_diagnosis_it_does_not_expect(gate_dir: pytest.Pytester) -> None:
    """Issue 12: before, every failing check of a known-broken model was an xfail ("caught"), a load error too."""
    gate_dir.makefile(".toml", wrong=GHOSTS.replace('diagnosis = "load_error"', 'diagnosis = "empty"'))
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "wrong.toml", "--gate-device", "cpu", "-k", "b2 and compliance")
    result.assert_outcomes(failed=2, deselected=N_ITEMS - 2)
    result.stdout.fnmatch_lines(["*known-broken model failed for an unexpected reason (load_error; expected empty)*"])


def test_a_symptom_is_an_xfail_but_never_a_catch(gate_dir: pytest.Pytester) -> None:
    """`symptoms` lets a known-broken model's checks fail with them (xfail), but only a root cause (`diagnosis`)
    counts as caught: a model failing for a listed symptom alone is still "caught for the wrong reason"."""
    manifest = GHOSTS.replace('diagnosis = "load_error"', 'diagnosis = "empty"\nsymptoms = ["load_error"]')
    gate_dir.makefile(".toml", symptom=manifest)
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "symptom.toml", "--gate-device", "cpu", "-k", "b2", "-rx")
    result.assert_outcomes(failed=2, xfailed=2 * 12, deselected=72)  # every check and snapshot test of b2 on 2 tasks
    result.stdout.fnmatch_lines(["*b2 on zoo_math: known-broken model caught for the wrong reason: it fails as "
                                 "load_error, expected empty*"])


def test_terminal_summary_reports_every_case(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "--gate-device", "cpu", "-k", "compliance")
    result.stdout.fnmatch_lines([
        "*= evalkit gate (cpu) =*",
        "model*task*compliance*metric*recovery*verdict*diagnosis",
        "b2*zoo_math*CAUGHT*load_error",
        "FAIL 8, CAUGHT 2 of 10 (model, task) on cpu; NOT OK",
        "models: FAIL 4, CAUGHT 1; run alpha 0.05 over 5 models (0.01 each)",
    ])


def test_junit_xml_carries_model_task_check_diagnosis_and_metric(gate_dir: pytest.Pytester) -> None:
    gate_dir.makeini("[pytest]\njunit_family = xunit2\n")  # properties are written whatever the family
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "--gate-device", "cpu", "-k",
                                "compliance or known_broken", "--junitxml", "junit.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
             for c in ET.parse(gate_dir.path / "junit.xml").getroot().iter("testcase")}
    assert cases["test_compliance[cpu-v1-zoo_math]"] == {
        "model": "v1", "task": "zoo_math", "device": "cpu", "check": "compliance", "status": "fail",
        "diagnosis": "load_error", "outcome": "FAIL", "metric": "accuracy"}
    assert cases["test_known_broken_is_caught[cpu-b2-zoo_yes_no]"] == {
        "model": "b2", "task": "zoo_yes_no", "device": "cpu", "check": "caught", "status": "fail",
        "diagnosis": "load_error", "outcome": "CAUGHT", "metric": "accuracy"}


def test_unrelated_tests_beside_a_gate_keep_their_properties_clean(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_own="def test_own(record_property):\n    record_property('mine', 1)\n")
    gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "--gate-device", "cpu", "-k", "own or cpu-p1-zoo_math",
                       "--junitxml", "junit.xml", "-o", "junit_family=legacy")
    cases = {c.get("name"): [(p.get("name"), p.get("value")) for p in c.iter("property")]
             for c in ET.parse(gate_dir.path / "junit.xml").getroot().iter("testcase")}
    assert cases["test_own"] == [("mine", "1")]
    assert ("model", "p1") in cases["test_compliance[cpu-p1-zoo_math]"]


def test_the_report_header_says_which_tasks_ask_for_too_few_items(gate_dir: pytest.Pytester) -> None:
    """Before any model runs: the plan of each collected flavour, so inconclusive verdicts are no surprise."""
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "--gate-device", "cpu", "--collect-only",
                                "--gate-limit", "32")
    result.stdout.fnmatch_lines(["evalkit gate plan (cpu): zoo_yes_no: 32 items asked, ~* needed for a 5-point drop "
                                 "at 90% power (disagreement 10%); the compliance floor ~*"])
    assert not any(line.startswith("evalkit gate plan (cuda)") for line in result.outlines)
    plenty = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "--gate-limit", "100000", "--collect-only")
    assert not any("evalkit gate plan" in line for line in plenty.outlines)


def test_unrelated_suites_keep_xdists_own_distribution(gate_dir: pytest.Pytester) -> None:
    """The plugin is auto-loaded in every project with evalkit installed: without --zoo it leaves --dist alone."""
    gate_dir.makeconftest("def pytest_configure(config):\n    print('DIST', config.option.dist)\n")
    gate_dir.makepyfile(test_plain="def test_one():\n    pass\n")
    gated = gate_dir.runpytest_subprocess(*PLUGINS, "-p", "xdist.plugin", "-n", "2", "-s", "--zoo", "ghosts.toml",
                                          "test_plain.py", "-k", "test_one")
    gated.stdout.fnmatch_lines(["DIST loadgroup"])
    asked = gate_dir.runpytest_subprocess(*PLUGINS, "-p", "xdist.plugin", "-n", "2", "-s", "--dist", "load",
                                          "--zoo", "ghosts.toml", "test_plain.py", "-k", "test_one")
    asked.stdout.fnmatch_lines(["DIST load"])  # the user's own --dist wins


def test_xdist_keeps_each_models_tests_on_one_worker(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest_subprocess(*PLUGINS, "-p", "xdist.plugin", "-n", "2", "--zoo", "ghosts.toml",
                                           "--gate-device", "cpu", "-v")
    workers: dict[str, set[str]] = defaultdict(set)
    for line in result.outlines:
        m = re.match(r"\[(gw\d+)\] .*\[cpu-([a-z]+\d)-", line)
        if m:
            workers[m.group(2)].add(m.group(1))
    assert set(workers) == {"p1", "v1", "p2", "v2", "b2"}, result.outlines[-20:]
    assert all(len(ws) == 1 for ws in workers.values()), dict(workers)  # --dist loadgroup chosen by the plugin
    assert set().union(*workers.values()) == {"gw0", "gw1"}  # and the models spread over both workers
    result.stdout.fnmatch_lines([  # one table, merged from both workers, in manifest order
        "*= evalkit gate (cpu) =*", "model*task*", "-----*", "p1*zoo_yes_no*FAIL*load_error", "p1*zoo_math*",
        "p2*zoo_yes_no*", "*", "v1*", "*", "v2*", "*", "b2*zoo_yes_no*CAUGHT*load_error", "*",
        "", "FAIL 8, CAUGHT 2 of 10 (model, task) on cpu; NOT OK",
    ])


def test_each_xdist_worker_of_a_gate_run_pins_one_gpu(gate_dir: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gate_dir.makepyfile(test_pin="""
        import os, pathlib, pytest
        @pytest.mark.parametrize("i", range(8))
        def test_pinned(i, worker_id):
            pathlib.Path(f"pin-{worker_id}").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    """)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    result = gate_dir.runpytest_subprocess(*PLUGINS, "-p", "xdist.plugin", "-n", "2", "--zoo", "ghosts.toml",
                                           "test_pin.py", "-k", "pinned")
    result.assert_outcomes(passed=8)  # the gate is deselected (xdist reports no count of it)
    pins = {p.name: p.read_text() for p in gate_dir.path.glob("pin-*")}
    assert pins == {"pin-gw0": "3", "pin-gw1": "5"}


# --- with real models (the fixture zoo) ------------------------------------------------------------------------------

REAL = """
[gate]
device = "cpu"
max_new_tokens = 48
golden = 2
[tasks.zoo_yes_no]
limit = 6
[models.base]
path = "zoo:base"
[models.ghost]
path = "nowhere/ghost"
parent = "base"
"""


@pytest.mark.slow
def test_gate_limit_snapshots_beside_the_manifest_and_byte_identical_reruns(gate_dir: pytest.Pytester) -> None:
    """--gate-limit applies; --snapshot-update writes both snapshot kinds beside the manifest (syrupy's own
    location for a test file there: __snapshots__/<manifest stem>.ambr); a rerun matches them byte for byte; a
    ghost model beside the real one fails alone and leaves the real one's outcomes unchanged."""
    _zoo_or_skip()
    gate_dir.mkdir("evals")
    (gate_dir.path / "evals" / "real.toml").write_text(REAL)
    common = (*PLUGINS, "--zoo", "evals/real.toml", "--gate-limit", "3", "-v")
    first = gate_dir.runpytest_subprocess(*common, "--snapshot-update", "-k", "not golden or base")
    snapshot = gate_dir.path / "evals" / "__snapshots__" / "real.ambr"
    stored = snapshot.read_text()
    assert '"n": 3' in stored and "test_golden_responses[base-zoo_yes_no]" in stored  # one entry, all flavours
    assert stored.count('"zoo_yes_no/') == 2  # golden = 2 responses
    with_ghost = _outcomes_by_id(first)
    assert with_ghost["test_compliance[cpu-ghost-zoo_yes_no]"] == "FAILED"

    rerun = gate_dir.runpytest_subprocess(*common, "-k", "base")
    alone = _outcomes_by_id(rerun)
    assert alone["test_metric_summary[cpu-base-zoo_yes_no]"] == "PASSED"  # byte-identical greedy run
    assert alone["test_golden_responses[cpu-base-zoo_yes_no]"] == "PASSED"
    assert snapshot.read_text() == stored
    for test in ("test_compliance", "test_metric_floor", "test_beats_trivial_baseline"):
        key = f"{test}[cpu-base-zoo_yes_no]"
        assert alone[key] == with_ghost[key], key


@pytest.mark.slow
def test_the_ini_gate_snapshots_folder_holds_the_gates_snapshots(gate_dir: pytest.Pytester) -> None:
    """``gate_snapshots = FOLDER``: the gate's snapshot file (its manifest's stem) goes there instead; an update writes
    it, a rerun matches it and reports nothing unused, and nothing is written beside the manifest."""
    _zoo_or_skip()
    gate_dir.mkdir("evals")
    (gate_dir.path / "evals" / "real.toml").write_text(REAL)
    gate_dir.makeini("[pytest]\ngate = evals/real.toml\ngate_snapshots = review/snapshots\n")
    common = (*PLUGINS, "--gate-limit", "2", "-k", "metric_summary and base", "-v")
    first = gate_dir.runpytest_subprocess(*common, "--snapshot-update")
    assert _outcomes_by_id(first) == {"test_metric_summary[cpu-base-zoo_yes_no]": "PASSED"}
    stored = gate_dir.path / "review" / "snapshots" / "real.ambr"
    assert "test_metric_summary[base-zoo_yes_no]" in stored.read_text()
    assert not (gate_dir.path / "evals" / "__snapshots__").exists()
    again = gate_dir.runpytest_subprocess(*common, "--snapshot-warn-unused")
    assert _outcomes_by_id(again) == {"test_metric_summary[cpu-base-zoo_yes_no]": "PASSED"}
    again.stdout.fnmatch_lines(["1 snapshot passed."])
    assert "unused" not in again.stdout.str() and "Can not relate" not in again.stdout.str()


@pytest.mark.slow
def test_doc_recipe_manifest_for_other_checkpoints(gate_dir: pytest.Pytester) -> None:
    """docs/gate.md's recipe: a manifest of folders (not zoo names), relative to the manifest's own folder; the
    zoo's base parent answers every one of its two yes/no items in the format, so compliance passes."""
    _zoo_or_skip()
    from evalkit import zoo

    gate_dir.mkdir("models")
    (gate_dir.path / "models" / "mine").symlink_to(zoo.default_zoo_dir() / "base")
    gate_dir.makefile(".toml", my_models='[tasks.zoo_yes_no]\nlimit = 2\n[models.mine]\npath = "models/mine"\n')
    result = gate_dir.runpytest_subprocess(*PLUGINS, "--zoo", "my_models.toml", "--gate-device", "cpu",
                                           "-k", "compliance", "-v")
    assert _outcomes_by_id(result) == {"test_compliance[cpu-mine-zoo_yes_no]": "PASSED"}
    result.stdout.fnmatch_lines(["mine*zoo_yes_no*1.00*accuracy 1.00*"])


@pytest.mark.slow
def test_a_swapped_checkpoint_fails_the_committed_snapshot(gate_dir: pytest.Pytester) -> None:
    """The zoo's own snapshot entry for base_gptq_w4g64 on yes/no, checked against a manifest whose entry of that name
    points at another checkpoint (the AWQ build): every count and metric stays within tolerance (both variants answer
    like their parent), and the snapshot still fails, on the model's identity."""
    _zoo_or_skip()
    manifest = textwrap.dedent("""
        [gate]
        max_new_tokens = 96
        drift_limit = 16
        [tasks.zoo_yes_no]
        limit = 48
        [tasks.zoo_yes_no.thresholds]
        min_metric = 0.70
        [models.base]
        path = "zoo:base"
        [models.base_gptq_w4g64]
        path = "zoo:base_awq_w4g128"
        parent = "base"
    """)
    gate_dir.makefile(".toml", swapped=manifest)
    snapshots = gate_dir.path / "__snapshots__"
    snapshots.mkdir()
    committed = (REPO / "tests" / "gate" / "__snapshots__" / "test_zoo_gate.ambr").read_text()
    (snapshots / "swapped.ambr").write_text(committed)
    result = gate_dir.runpytest_subprocess(*PLUGINS, "--zoo", "swapped.toml", "--gate-device", "cpu", "-v",
                                           "-k", "metric_summary and base_gptq_w4g64", "--snapshot-warn-unused")
    outcomes = _outcomes_by_id(result)
    assert outcomes == {"test_metric_summary[cpu-base_gptq_w4g64-zoo_yes_no]": "FAILED"}, outcomes
    result.stdout.fnmatch_lines(["*1 difference(s) beyond what this snapshot tolerates:*",
                                 "*cpu: model.zoo_build: stored '*', received '*'*"])
