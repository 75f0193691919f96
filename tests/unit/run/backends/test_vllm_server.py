"""`VLLMServer` without vLLM: the command it runs, and the errors of a server that cannot start."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from evalkit.errors import ServerStartError
from evalkit.run.backends.vllm import VLLMConfig, VLLMServer, unavailable
from evalkit.run.backends.vllm.server import model_max_len

BASE = Path(__file__).resolve().parents[4] / "fixtures" / "zoo" / "base"


def test_command_serves_the_local_folder_greedily_and_never_trusts_remote_code():
    server = VLLMServer(BASE, VLLMConfig(python="/venv/bin/python"))
    cmd = server.command(8123)
    assert cmd[0] == "/venv/bin/python" and cmd[cmd.index("--model") + 1] == str(BASE.resolve())
    for flag, value in (("--dtype", "bfloat16"), ("--max-model-len", "512"), ("--port", "8123"),
                        ("--host", "127.0.0.1"), ("--generation-config", "vllm"), ("--served-model-name", "base")):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--enforce-eager" in cmd and "--trust-remote-code" not in cmd
    env = server.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["HF_HUB_OFFLINE"] == "1" and "PYTHONPATH" not in env


def test_max_model_len_defaults_to_the_models_trained_context():
    assert model_max_len(BASE) == 512
    assert VLLMServer(BASE, VLLMConfig(max_model_len=384)).max_model_len == 384


def test_a_missing_interpreter_is_one_clear_line():
    reason = unavailable(VLLMConfig(python="/nonexistent/bin/python"))
    assert reason is not None and "scripts/setup_vllm_venv.sh" in reason and "\n" not in reason
    with pytest.raises(ServerStartError, match="no vLLM interpreter"):
        VLLMServer(BASE, VLLMConfig(python="/nonexistent/bin/python")).start()


def test_a_server_that_exits_while_starting_quotes_its_log(tmp_path):
    server = VLLMServer(BASE, VLLMConfig(python=sys.executable, log_dir=str(tmp_path), startup_timeout_s=60))
    with pytest.raises(ServerStartError) as err:  # this interpreter has no vllm: the launcher fails at once
        server.start()
    assert "exited with code" in str(err.value) and "vllm" in str(err.value) and str(tmp_path) in str(err.value)
    assert server.proc is None


def test_only_local_model_folders_are_served(tmp_path):
    with pytest.raises(ServerStartError, match="not a model folder"):
        VLLMServer(tmp_path)
