"""evalkit.gate.serving: a manifest's backend per model and its [backends.*] tables, the command line's overrides,
and one clear error per bad setting (no server is started here; tests/vllm gates through real vLLM servers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evalkit import cli
from evalkit.gate import serving
from evalkit.gate.manifest import ManifestError, load, loads

REPO = Path(__file__).resolve().parents[3]

BASE = """
[tasks.zoo_math]
limit = 4
[models.p]
path = "p"
[models.v]
path = "v"
parent = "p"
"""


def test_backend_per_model_and_backend_tables_are_read() -> None:
    m = loads(BASE.replace('[models.p]\npath = "p"', '[models.p]\npath = "p"\nbackend = "vllm"')
              + '[models.w]\npath = "w"\nparent = "p"\nbackend = "openai"\nbase_urls = ["http://h:8000/"]\n'
              + 'served_name = "w-int4"\n[gate]\nbackend = "transformers"\ndrift_k = 8\n'
              + '[backends.vllm]\npython = "venv/bin/python"\nslots = [{env = {CUDA_VISIBLE_DEVICES = "0"}}, {}]\n'
              + 'extra_args = ["--quantization", "gptq"]\n[backends.openai]\nretries = 0\ndialect = "openai"\n',
              root="/r", source="m.toml")
    assert [serving.backend_of(m, n) for n in ("p", "v", "w")] == ["vllm", "transformers", "openai"]
    assert m.models["w"].base_urls == ("http://h:8000",) and m.models["w"].served_name == "w-int4"
    v = m.backends.vllm
    assert v.python == "/r/venv/bin/python" and v.servers == 2 and v.slot_env(0) == (("CUDA_VISIBLE_DEVICES", "0"),)
    assert v.slot_env(1) == () and v.slot_env(5) == () and v.extra_args == ("--quantization", "gptq")
    assert m.backends.openai.retries == 0 and m.backends.openai.dialect == "openai" and m.gate.drift_k == 8


def test_the_zoo_vllm_manifest_gates_every_model_through_vllm() -> None:
    m = load(REPO / "fixtures" / "zoo_vllm.toml")
    assert {serving.backend_of(m, n) for n in m.models} == {"vllm"}
    assert m.models["base_rtn_w2"].diagnosis == ("logit_drift", "engine_refused")  # either engine catches it
    assert set(m.models) <= set(load(REPO / "fixtures" / "zoo.toml").models)  # the zoo's own models


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + "[gate]\nbackend = 'sglang'\n", "backend must be one of transformers, vllm, openai, got 'sglang'"),
        (BASE.replace('parent = "p"', 'parent = "p"\nbackend = "tgi"'), r"\[models.v\]: backend must be"),
        (BASE + "[gate]\ndrift_k = 0\n", "drift_k must be >= 1 \\(or -1"),
        (BASE + "[backends.vllm]\nservers = 0\n", r"\[backends.vllm\]: servers must be >= 1, got 0"),
        (BASE + "[backends.vllm]\nserver = 2\n", r"\[backends.vllm\]: unknown key\(s\) 'server'"),
        (BASE + "[backends.sglang]\n", r"\[backends\]: unknown key\(s\) 'sglang'"),
        (BASE + "[backends.vllm]\nservers = 3\nslots = [{}, {}]\n", "servers = 3 but 2 slots are listed"),
        (BASE + "[backends.vllm]\nslots = [{env = {A = 1}}]\n", "env must be a table of strings"),
        (BASE + "[backends.vllm]\ntimeout_s = 0\n", "timeout_s must be a number > 0"),
        (BASE + "[backends.openai]\nbase_urls = ['h:8000']\n", "base_urls must list server base URLs"),
        (BASE + "[backends.openai]\ndialect = 'tgi'\n", "dialect must be 'vllm' or 'openai'"),
        (BASE.replace('parent = "p"', 'parent = "p"\nbackend = "openai"'),
         r"\[models.v\]: backend \"openai\" needs the servers that run the model"),
        (BASE.replace('parent = "p"', 'parent = "p"\nbase_urls = ["http://h:1"]'),
         r"\[models.v\]: base_urls and served_name name the running servers of a model gated with backend = "
         r"\"openai\"; this model's backend is 'transformers'"),
        (BASE + "[gate]\nbackend = 'vllm'\ndrift_k = 50\n", "drift_k = 50 asks the vLLM servers for more logprobs"),
    ],
)
def test_bad_serving_settings_get_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        loads(text, source="m.toml")


def test_the_command_line_overrides_the_manifest() -> None:
    m = loads(BASE + '[models.w]\npath = "w"\nparent = "p"\nbackend = "openai"\nbase_urls = ["http://h:1"]\n',
              source="m.toml")
    everything = serving.override(m, backend="vllm", servers=2, vllm_python="relative/python")
    assert {serving.backend_of(everything, n) for n in m.models} == {"vllm"}
    assert everything.models["w"].base_urls == () and everything.backends.vllm.servers == 2
    assert Path(everything.backends.vllm.python or "").is_absolute()
    back = serving.override(m, base_urls=["http://a:1/", "http://b:2"])
    assert back.backends.openai.base_urls == ("http://a:1", "http://b:2") and back.models["w"].base_urls == ("http://h:1",)
    with pytest.raises(ManifestError, match="--base-url must list server base URLs"):
        serving.override(m, base_urls=["a:1"])
    with pytest.raises(ManifestError, match="needs the servers"):  # every model through openai, none has servers
        serving.override(loads(BASE, source="m.toml"), backend="openai")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend", "vllm", "--vllm-python", "/nonexistent/python"],
         "backend vllm: no vLLM interpreter at /nonexistent/python"),
        (["--backend", "openai", "--base-url", "localhost:8000"], "--base-url must list server base URLs"),
        (["--backend", "openai"], "needs the servers that run the model"),
    ],
)
def test_gate_serving_flags_fail_in_one_line_with_exit_2(argv, message, capsys) -> None:
    rc = cli.main(["gate", "--zoo", str(REPO / "fixtures" / "zoo_vllm.toml"), "--model", "base", "-q", *argv])
    out, err = capsys.readouterr()
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, (rc, out, err)
    assert err.startswith("evalkit gate: error: ") and message in err, err


def test_gate_serving_flag_values_are_checked_by_the_parser() -> None:
    for bad in (["--servers", "0"], ["--backend", "sglang"]):
        proc = subprocess.run([sys.executable, "-m", "evalkit.cli", "gate", *bad], capture_output=True, text=True,
                              cwd=REPO, timeout=120)
        assert proc.returncode == 2 and "usage:" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
