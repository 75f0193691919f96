"""An unrelated project behaves identically with and without evalkit's plugin, when no gate is asked for.

The project (pytester) has its own ``gpu`` marker, a test carrying it, plain and parametrized tests, and a conftest
that records, at the end of each process's session, the environment, whether torch was imported, the distribution
mode and the registered markers. A fake ``nvidia-smi`` first on PATH logs every call. The project runs with and
without ``-p evalkit.pytest.plugin`` (autoload off in both, syrupy loaded in both as installing evalkit installs it),
in one process and under ``-n 2``; every record, outcome and the fake's log must match. A gate run of the same
project is the positive control: it does call nvidia-smi and pin the workers, so the probes can see a difference.
(tests/test_wheel.py repeats the comparison with evalkit really installed and not installed, in a fresh venv.)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from unrelated_project import CONFTEST, FAKE_SMI, TESTS, differences

pytest_plugins = ["pytester"]

WITHOUT = ("-p", "syrupy", "-p", "no:cacheprovider")
WITH = ("-p", "evalkit.pytest.plugin", *WITHOUT)
XDIST = ("-p", "xdist.plugin", "-n", "2")
VOLATILE = ("PYTEST_XDIST_TESTRUNUID",)  # differs from run to run of anything

@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")  # a user's own setting, which only a gate run may change
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_project=TESTS)
    pytester.makefile(".toml", ghosts="[gate]\ndevice = 'cpu'\n[tasks.zoo_yes_no]\nlimit = 2\n"
                                      "[models.p]\npath = 'nowhere/p'\n")
    return pytester


def _run(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str, *args: str) -> dict:
    """One run of the project in a subprocess: its outcome lines, the records of each process, nvidia-smi calls."""
    records = project.path / f"records-{name}"
    records.mkdir()
    smi_log = project.path / f"smi-{name}.log"
    monkeypatch.setenv("RECORDS", str(records))
    monkeypatch.setenv("SMI_LOG", str(smi_log))
    result = project.runpytest_subprocess(*args, "-rA", "-p", "no:randomly")
    outcomes = sorted(re.sub(r"^\[gw\d\] ", "", line) for line in result.outlines
                      if re.match(r"(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) ", line))
    procs = {}
    for file in sorted(records.glob("*.json")):
        record = json.loads(file.read_text())
        record["env"] = {k: v for k, v in record["env"].items() if k not in VOLATILE and k not in ("RECORDS", "SMI_LOG")}
        procs[file.stem] = record
    return {"ret": int(result.ret), "outcomes": outcomes, "processes": procs,
            "nvidia_smi_calls": smi_log.read_text().count("called") if smi_log.exists() else 0}


@pytest.mark.parametrize("xdist", [(), XDIST], ids=["one-process", "xdist-2"])
def test_an_unrelated_project_is_unchanged_by_the_plugin(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                         xdist: tuple[str, ...]) -> None:
    without = _run(project, monkeypatch, "without", *WITHOUT, *xdist)
    with_plugin = _run(project, monkeypatch, "with", *WITH, *xdist)
    assert without["ret"] == 0 and len(without["outcomes"]) == 6, without
    assert "PASSED test_project.py::test_own_gpu_marker_runs_as_the_project_says" in without["outcomes"]
    assert differences(with_plugin, without) == []  # outcomes, environment, torch, dist, markers, nvidia-smi
    for record in with_plugin["processes"].values():
        assert not record["torch"] and record["evalkit_loaded"] == [] and record["env"]["CUDA_VISIBLE_DEVICES"] == "7"
    assert with_plugin["nvidia_smi_calls"] == 0
    assert sorted(with_plugin["processes"]) == (["gw0", "gw1", "main"] if xdist else ["main"])


def test_a_gate_run_of_the_same_project_does_differ(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: asked for a gate (--zoo), the plugin groups by model, calls nvidia-smi once and pins each worker;
    the project's own tests still pass, its ``gpu`` test included."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    gated = _run(project, monkeypatch, "gated", *WITH, *XDIST, "--zoo", "ghosts.toml", "test_project.py",
                 "-k", "project or compliance")
    assert gated["nvidia_smi_calls"] == 1
    assert {w: r["env"].get("CUDA_VISIBLE_DEVICES") for w, r in gated["processes"].items()} == \
        {"gw0": "0", "gw1": "1", "main": None}  # the fake's two GPUs, one per worker
    assert gated["processes"]["main"]["dist"] == "loadgroup"
    assert "PASSED test_project.py::test_own_gpu_marker_runs_as_the_project_says" in gated["outcomes"]
    assert any(line.startswith("FAILED ghosts.toml::test_compliance[cpu-p-zoo_yes_no]") for line in gated["outcomes"]), \
        gated["outcomes"]
