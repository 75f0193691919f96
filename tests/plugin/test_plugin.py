"""evalkit.pytest.plugin through pytester: one test per option, marker and hook.

Each run loads the plugin explicitly (plugin autoload off, so an installed entry point and `-p` never clash) and
runs a copy of the repository's gate tests (tests/gate/test_zoo_gate.py) against small manifests. Manifests whose
model folders do not exist exercise everything up to loading in a fraction of a second; the runs that need real
responses use the fixture zoo's models and skip when it is absent.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

import evalkit.pytest.plugin  # noqa: F401  (imported here, so in-process pytester runs reuse it instead of importing anew)

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
GATE_TESTS = (REPO / "tests" / "gate" / "test_zoo_gate.py").read_text()
PLUGINS = ("-p", "evalkit.pytest.plugin", "-p", "syrupy", "-p", "no:cacheprovider")

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
    pytester.makepyfile(test_gate_copy=GATE_TESTS)  # another module name than the outer tests/gate module
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


def test_the_plugin_is_cheap_to_import() -> None:
    """pytest loads the plugin in every run of every project where evalkit is installed (pytest11 entry point)."""
    code = "import sys, evalkit.plugin; print(sorted({'torch', 'numpy', 'transformers'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout


def test_options_are_in_the_help(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest(*PLUGINS, "--help")
    result.stdout.fnmatch_lines(["*--zoo=PATH*", "*--gate-limit=N*", "*--gate-device=*"])


def test_zoo_manifest_becomes_parametrized_tests(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "--gate-device", "cpu", "--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    assert "test_gate_copy.py::test_compliance[cpu-p1-zoo_yes_no]" in ids
    assert "test_gate_copy.py::test_recovery[cpu-v1-zoo_math]" in ids
    assert not any("test_recovery[cpu-p1" in i for i in ids)  # a parent has nothing to recover
    assert [i for i in ids if "known_broken" in i] == [
        "test_gate_copy.py::test_known_broken_is_caught[cpu-b2-zoo_yes_no]",
        "test_gate_copy.py::test_known_broken_is_caught[cpu-b2-zoo_math]",
    ]
    assert len(ids) == 5 * 2 * 5 + 3 * 2 * 5 + 2  # 5 models x 2 tasks x 5 tests, 3 variants x 3, 2 broken


def test_default_manifest_is_the_fixture_zoo(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest(*PLUGINS, "--gate-device", "cpu", "--collect-only", "-q")
    assert any("test_compliance[cpu-base_gptq_w4g64_eos_flood-zoo_span]" in line for line in result.outlines)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "*manifest file not found; pass --zoo*"), ("[models.x]\npath='x'\n", "*no [[]tasks.<name>] table*")],
)
def test_a_bad_manifest_is_a_usage_error(gate_dir: pytest.Pytester, content: str | None, message: str) -> None:
    if content is not None:
        gate_dir.makefile(".toml", bad=content)
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "bad.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_gpu_flavour_skips_cleanly_without_cuda(gate_dir: pytest.Pytester) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the gpu flavour runs instead of skipping")
    result = gate_dir.runpytest(*PLUGINS, "--zoo", "ghosts.toml", "-m", "gpu", "-rs")
    result.assert_outcomes(skipped=5 * 2 * 5 + 3 * 2 * 5 + 2, deselected=5 * 2 * 5 + 3 * 2 * 5 + 2)
    result.stdout.fnmatch_lines(["*SKIPPED [[]82[]] test_gate_copy.py: needs a CUDA GPU (marker gpu)*"])


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
    result.assert_outcomes(failed=2, deselected=5 * 2 * 5 + 3 * 2 * 5)
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
    plain = gate_dir.runpytest_subprocess(*PLUGINS, "-p", "xdist.plugin", "-n", "2", "-s", "test_plain.py")
    plain.stdout.fnmatch_lines(["DIST load"])
    gated = gate_dir.runpytest_subprocess(*PLUGINS, "-p", "xdist.plugin", "-n", "2", "-s", "--zoo", "ghosts.toml",
                                          "test_plain.py")
    gated.stdout.fnmatch_lines(["DIST loadgroup"])


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


def test_each_xdist_worker_pins_one_gpu(gate_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    gate_dir.makepyfile(test_pin="""
        import os, pathlib, pytest
        @pytest.mark.parametrize("i", range(8))
        def test_pinned(i, worker_id):
            pathlib.Path(f"pin-{worker_id}").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    """)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    result = gate_dir.runpytest_subprocess(*PLUGINS, "-p", "xdist.plugin", "-n", "2", "test_pin.py")
    result.assert_outcomes(passed=8)
    pins = {p.name: p.read_text() for p in gate_dir.path.glob("pin-*")}
    assert pins == {"pin-gw0": "3", "pin-gw1": "5"}


# --- with real models (the fixture zoo) ------------------------------------------------------------------------------

REAL = """
[gate]
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
def test_gate_limit_snapshots_and_byte_identical_reruns(gate_dir: pytest.Pytester) -> None:
    """--gate-limit applies; --snapshot-update writes both snapshot kinds; a rerun matches them byte for byte;
    a ghost model beside the real one fails alone and leaves the real one's outcomes unchanged."""
    _zoo_or_skip()
    gate_dir.makefile(".toml", real=REAL)
    common = (*PLUGINS, "--zoo", "real.toml", "--gate-device", "cpu", "--gate-limit", "3", "-v")
    first = gate_dir.runpytest_subprocess(*common, "--snapshot-update", "-k", "not golden or base")
    stored = (gate_dir.path / "__snapshots__" / "test_gate_copy.ambr").read_text()
    assert '"n": 3' in stored and "test_golden_responses[base-zoo_yes_no]" in stored  # one entry, all flavours
    assert stored.count('"zoo_yes_no/') == 2  # golden = 2 responses
    with_ghost = _outcomes_by_id(first)
    assert with_ghost["test_compliance[cpu-ghost-zoo_yes_no]"] == "FAILED"

    rerun = gate_dir.runpytest_subprocess(*common, "-k", "base")
    alone = _outcomes_by_id(rerun)
    assert alone["test_metric_summary[cpu-base-zoo_yes_no]"] == "PASSED"  # byte-identical greedy run
    assert alone["test_golden_responses[cpu-base-zoo_yes_no]"] == "PASSED"
    assert (gate_dir.path / "__snapshots__" / "test_gate_copy.ambr").read_text() == stored
    for test in ("test_compliance", "test_metric_floor", "test_beats_trivial_baseline"):
        key = f"{test}[cpu-base-zoo_yes_no]"
        assert alone[key] == with_ghost[key], key


@pytest.mark.slow
def test_doc_recipe_manifest_for_other_checkpoints(gate_dir: pytest.Pytester, tmp_path: Path) -> None:
    """docs/gate.md's recipe: a manifest of folders (not zoo names), relative to the manifest's own folder."""
    _zoo_or_skip()
    from evalkit import zoo

    recipe = textwrap.dedent(f"""
        [tasks.zoo_yes_no]
        limit = 2
        [models.mine]
        path = "{zoo.default_zoo_dir() / 'base'}"
    """)
    gate_dir.makefile(".toml", my_models=recipe)
    result = gate_dir.runpytest_subprocess(*PLUGINS, "--zoo", "my_models.toml", "--gate-device", "cpu",
                                           "-k", "compliance", "-v")
    assert _outcomes_by_id(result).get("test_compliance[cpu-mine-zoo_yes_no]") in ("PASSED", "FAILED")
    result.stdout.fnmatch_lines(["*mine*zoo_yes_no*"])


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
    (snapshots / "test_gate_copy.ambr").write_text(committed)
    result = gate_dir.runpytest_subprocess(*PLUGINS, "--zoo", "swapped.toml", "--gate-device", "cpu", "-v",
                                           "-k", "metric_summary and base_gptq_w4g64", "--snapshot-warn-unused")
    outcomes = _outcomes_by_id(result)
    assert outcomes == {"test_metric_summary[cpu-base_gptq_w4g64-zoo_yes_no]": "FAILED"}, outcomes
    result.stdout.fnmatch_lines(["*1 difference(s) beyond what this snapshot tolerates:*",
                                 "*cpu: model.zoo_build: stored '*', received '*'*"])
