"""Manifest values meet their registries before any model runs: each bad one is one line and exit status 2.

Before issue 13 a misspelt task failed every model on it (exit 1), ``metric = "bogus"`` crashed the whole run with a
traceback, a misspelt diagnosis made a known-broken model MISDIAGNOSED forever, ``zoo:nope`` failed late, a bad
device failed each model with torch's message, and ``max_mean_kl = nan`` switched the drift check off silently.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from evalkit.errors import ManifestError
from evalkit.gate.manifest import Thresholds, loads
from bad_input_helpers import run_cli, tiny_models  # noqa: F401 (fixtures)

BASE = ("[gate]\n{gate}cache = \"{cache}\"\n[tasks.zoo_yes_no]\nlimit = 2\n{task}[models.base]\npath = \"{model}\"\n"
        "{model_extra}")


def _manifest(tmp_path, model, *, task: str = "", model_extra: str = "", gate: str = "") -> str:
    gate = gate if "device" in gate else gate + "device = \"cpu\"\n"
    file = tmp_path / "m.toml"
    file.write_text(BASE.format(gate=gate, cache=tmp_path / "cache", model=model, task=task, model_extra=model_extra))
    return str(file)


CASES = [  # (what, edit of the manifest, words the one line must hold)
    ("a misspelt task", {"task": "[tasks.zoo_yesno]\n"}, ["[tasks.zoo_yesno]", "unknown task 'zoo_yesno'"]),
    ("an unknown metric", {"task": "metric = \"bogus\"\n"}, ["[tasks.zoo_yes_no]", "unknown metric 'bogus'"]),
    ("a metric of another family", {"task": "metric = \"f1\"\n"}, ["metric 'f1' does not apply", "use accuracy"]),
    ("a misspelt diagnosis", {"model_extra": "expect = \"fail\"\ndiagnosis = \"special_token_only\"\n"},
     ["[models.base]", "unknown diagnosis 'special_token_only'"]),
    ("an unknown device", {"gate": "device = \"gpu\"\n"}, ["'gpu'", "cpu, cuda, cuda:N or auto"]),
    ("an unknown dtype", {"gate": "dtype = \"float33\"\n"}, ["[gate]", "float33"]),
    ("a model dtype that is not a float dtype", {"model_extra": "dtype = \"int4\"\n"}, ["[models.base]", "int4"]),
    ("a NaN threshold", {"model_extra": "[models.base.thresholds]\nmax_mean_kl = nan\n"},
     ["max_mean_kl must be a finite number"]),
    ("an infinite threshold", {"model_extra": "[models.base.thresholds]\nmax_ppl_ratio = inf\n"},
     ["max_ppl_ratio must be a finite number"]),
]


@pytest.mark.parametrize(("what", "edit", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_manifest_value_is_one_line_before_any_model_runs(what, edit, words, tiny_models, tmp_path, run_cli):
    manifest = _manifest(tmp_path, tiny_models["parent"], **edit)
    ran = run_cli("gate", "--zoo", manifest, "--out", tmp_path / "run", "-q")
    assert ran.rc == 2, (what, ran.out, ran.err)
    assert ran.line.startswith("evalkit gate: error: ") and all(w in ran.line for w in words), ran.line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()  # nothing evaluated, nothing written


def test_a_zoo_name_is_checked_against_the_zoo(tmp_path, run_cli):
    manifest = _manifest(tmp_path, "zoo:nope")
    ran = run_cli("gate", "--zoo", manifest, "--out", "")
    assert ran.rc == 2 and "unknown zoo model 'nope'; known zoo models: base" in ran.line


def test_cuda_without_a_gpu_is_one_line_up_front(tiny_models, tmp_path, run_cli):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    ran = run_cli("eval", tiny_models["parent"], "--task", "zoo_yes_no", "--limit", "2", "--device", "cuda",
                  "--cache", tmp_path / "cache", "--out", tmp_path / "run")
    assert ran.rc == 2 and "no CUDA GPU is visible here" in ran.line and "use --device cpu" in ran.line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Thresholds) if f.type in ("float",
                                                                                              "float | None")])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_float_threshold_refuses_nan_and_infinity(field, value):
    """Generic over the dataclass's fields, so a threshold added later (issue 14) is covered without a new test."""
    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        Thresholds(**{field: value})
    text = f"[thresholds]\n{field} = {value}\n[tasks.zoo_math]\n[models.a]\npath = 'a'\n"  # TOML's nan, inf, -inf
    with pytest.raises(ManifestError, match=f"{field} must be a finite number"):
        loads(text)


def test_the_pytest_plugin_refuses_a_bad_manifest_at_configure_time(pytester, monkeypatch):
    """A bad manifest is a usage error of the pytest run (exit 4, one message), not N failing tests."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makefile(".toml", bad="[tasks.zoo_yesno]\n[models.a]\npath = 'a'\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "evalkit.pytest.plugin", "--zoo", "bad.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bad.toml: [[]tasks.zoo_yesno[]]: unknown task 'zoo_yesno'; known tasks:*"])


def test_check_manifest_accepts_the_fixture_zoo():
    from evalkit.gate.manifest import DEFAULT_MANIFEST, load
    from evalkit.gate.preflight import check_manifest

    check_manifest(load(DEFAULT_MANIFEST))


pytest_plugins = ["pytester"]
