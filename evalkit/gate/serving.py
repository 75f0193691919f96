"""Which engine gates each model, and how: ``[gate] backend``, ``[backends.vllm]``, ``[backends.openai]`` and the
per-model ``backend``, ``base_urls`` and ``served_name`` of a manifest, validated like the rest of it, and the command
line's overrides (``evalkit gate --backend``, ``--vllm-python``, ``--servers``, ``--base-url``).

Why a module of its own: the serving backends add a dozen settings that only they read; `evalkit.gate.manifest` calls
`parse_backends`, `model_fields` and `check` and stays the one reader of the file. Every error names the manifest,
the table and the fix, as the rest of the manifest's do.

>>> b = parse_backends({"vllm": {"servers": 2, "slots": [{"env": {"CUDA_VISIBLE_DEVICES": "0"}}, {}]}}, "m.toml")
>>> b.vllm.servers, b.vllm.slots
(2, ((('CUDA_VISIBLE_DEVICES', '0'),), ()))
>>> parse_backends({"vllm": {"servers": 0}}, "m.toml")
Traceback (most recent call last):
evalkit.errors.ManifestError: m.toml: [backends.vllm]: servers must be >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from evalkit.errors import ManifestError
from evalkit.models.description import ModelSpec

__all__ = ["BACKEND_NAMES", "Backends", "OpenAISettings", "SERVED", "VLLMSettings", "backend_of", "check",
           "engine_note", "model_fields", "override", "parse_backends"]

BACKEND_NAMES = ("transformers", "vllm", "openai")
"""The backends a manifest can name (the names of `evalkit.run.backends.BACKENDS`; a unit test keeps them equal)."""
SERVED = ("vllm", "openai")
"""Backends whose model runs in a server: described by `served_model(path)`, evaluated through the backend."""
DIALECTS = ("vllm", "openai")


@dataclass(frozen=True, slots=True)
class VLLMSettings:
    """``[backends.vllm]``: how evalkit starts `vllm serve` (`evalkit.run.backends.vllm.VLLMConfig`) and how many."""

    python: str | None = None  # interpreter with vLLM; None: $EVALKIT_VLLM_PYTHON, else <repo>/.evalkit/vllm-venv
    servers: int = 1  # server slots at once: models are spread over them (parents first, then the variants)
    replicas: int = 1  # servers per model inside its slot (data parallelism for one model)
    threads: int | None = None  # OMP threads per server (CPU); None: vLLM's choice
    kv_cache_gib: int = 1  # VLLM_CPU_KVCACHE_SPACE (CPU); a GPU takes --gpu-memory-utilization in extra_args
    max_logprobs: int = 20  # the server's --max-logprobs: the largest top-k drift may ask for (-1: the vocabulary)
    max_model_len: int | None = None  # None: the model's max_position_embeddings
    concurrency: int = 8  # requests in flight per server (1 makes a chaotic broken model's replies reproducible)
    timeout_s: float = 600.0  # per request
    startup_timeout_s: float = 300.0  # until /health answers
    extra_args: tuple[str, ...] = ()  # more `vllm serve` arguments, as given
    slots: tuple[tuple[tuple[str, str], ...], ...] = ()  # per slot: its environment (e.g. CUDA_VISIBLE_DEVICES)

    def slot_env(self, slot: int) -> tuple[tuple[str, str], ...]:
        return self.slots[slot] if slot < len(self.slots) else ()


@dataclass(frozen=True, slots=True)
class OpenAISettings:
    """``[backends.openai]``: servers that already run (`evalkit.run.backends.openai.OpenAIConfig`)."""

    base_urls: tuple[str, ...] = ()  # replicas of one model (or a router serving every model by its served_name)
    concurrency: int = 8
    timeout_s: float = 600.0
    retries: int = 3
    backoff_s: float = 1.0
    dialect: str = "vllm"  # "vllm": token ids and prompt logprobs (drift); "openai": the plain API (no drift)
    api_key_env: str | None = None  # the name of the variable holding the key, never the key


@dataclass(frozen=True, slots=True)
class Backends:
    """The ``[backends.*]`` tables of a manifest."""

    vllm: VLLMSettings = field(default_factory=VLLMSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)


# ------------------------------------------------------------------------------------------------------ parsing


class _Table:
    """Typed reads of one table, each error naming the file, the table and the fix."""

    def __init__(self, body: Any, source: str, table: str, allowed: set[str]) -> None:
        self.source, self.table = source, table
        if not isinstance(body, dict):
            raise self.fail(f"expected a table, got {type(body).__name__}")
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise self.fail(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}")
        self.body = body

    def fail(self, problem: str) -> ManifestError:
        return ManifestError(f"{self.source}: {self.table}: {problem}")

    def integer(self, key: str, low: int = 1, *, also: int | None = None) -> int:
        value = self.body[key]
        if isinstance(value, bool) or not isinstance(value, int) or (value < low and value != also):
            extra = f" (or {also})" if also is not None else ""
            raise self.fail(f"{key} must be >= {low}{extra}, got {value!r}")
        return value

    def number(self, key: str, *, positive: bool = True) -> float:
        value = self.body[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
            raise self.fail(f"{key} must be a number {'> 0' if positive else '>= 0'}, got {value!r}")
        return float(value)

    def text(self, key: str, choices: Sequence[str] = ()) -> str:
        value = self.body[key]
        if not isinstance(value, str) or not value or (choices and value not in choices):
            raise self.fail(f"{key} must be {' or '.join(map(repr, choices)) if choices else 'a non-empty string'}, "
                            f"got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.body[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(f"{key} must be a list of strings, got {value!r}")
        return tuple(value)

    def urls(self, key: str) -> tuple[str, ...]:
        return _urls(self.strings(key), lambda problem: self.fail(f"{key} {problem}"))


def _urls(urls: Sequence[str], fail: Any) -> tuple[str, ...]:
    """Base URLs without their trailing slash; `fail(problem)` builds the error for anything else."""
    if not urls or any(not u.startswith(("http://", "https://")) for u in urls):
        raise fail(f"must list server base URLs such as \"http://127.0.0.1:8000\", got {list(urls)!r}")
    return tuple(u.rstrip("/") for u in urls)


def parse_backends(body: Any, source: str, root: str | os.PathLike[str] = ".") -> Backends:
    """The ``[backends]`` table: ``[backends.vllm]`` and ``[backends.openai]`` (relative paths: to `root`)."""
    top = _Table(body, source, "[backends]", {"vllm", "openai"})
    return Backends(_vllm(top.body.get("vllm", {}), source, Path(root)), _openai(top.body.get("openai", {}), source))


_VLLM_INTS = {"servers": 1, "replicas": 1, "threads": 1, "kv_cache_gib": 1, "max_model_len": 16, "concurrency": 1}


def _vllm(body: Any, source: str, root: Path) -> VLLMSettings:
    t = _Table(body, source, "[backends.vllm]", {f.name for f in dataclasses.fields(VLLMSettings)})
    kw: dict[str, Any] = {k: t.integer(k, low) for k, low in _VLLM_INTS.items() if k in t.body}
    if "max_logprobs" in t.body:
        kw["max_logprobs"] = t.integer("max_logprobs", 1, also=-1)
    kw |= {k: t.number(k) for k in ("timeout_s", "startup_timeout_s") if k in t.body}
    if "python" in t.body:
        python = Path(os.path.expanduser(t.text("python")))
        kw["python"] = str(python if python.is_absolute() else root / python)
    if "extra_args" in t.body:
        kw["extra_args"] = t.strings("extra_args")
    if "slots" in t.body:
        kw["slots"] = _slots(t)
        if "servers" in t.body and kw["servers"] != len(kw["slots"]):
            raise t.fail(f"servers = {kw['servers']} but {len(kw['slots'])} slots are listed; give one slot table per "
                         "server (or drop servers: the slots' count sets it)")
        kw["servers"] = len(kw["slots"])
    return VLLMSettings(**kw)


def _slots(t: _Table) -> tuple[tuple[tuple[str, str], ...], ...]:
    slots = t.body["slots"]
    if not isinstance(slots, list) or not slots:
        raise t.fail("slots must be a list of tables, one per server, e.g. slots = [{env = {CUDA_VISIBLE_DEVICES = "
                     "\"0\"}}, {env = {CUDA_VISIBLE_DEVICES = \"1\"}}]")
    out = []
    for i, slot in enumerate(slots):
        s = _Table(slot, t.source, f"{t.table} slots[{i}]", {"env"})
        env = s.body.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise s.fail(f"env must be a table of strings (NAME = \"value\"), got {env!r}")
        out.append(tuple(sorted(env.items())))
    return tuple(out)


def _openai(body: Any, source: str) -> OpenAISettings:
    t = _Table(body, source, "[backends.openai]", {f.name for f in dataclasses.fields(OpenAISettings)})
    kw: dict[str, Any] = {k: t.integer(k, low) for k, low in (("concurrency", 1), ("retries", 0)) if k in t.body}
    kw |= {k: t.number(k, positive=k != "backoff_s") for k in ("timeout_s", "backoff_s") if k in t.body}
    if "base_urls" in t.body:
        kw["base_urls"] = t.urls("base_urls")
    if "dialect" in t.body:
        kw["dialect"] = t.text("dialect", DIALECTS)
    if "api_key_env" in t.body:
        kw["api_key_env"] = t.text("api_key_env")
    return OpenAISettings(**kw)


MODEL_KEYS = frozenset({"backend", "base_urls", "served_name"})
"""The keys a ``[models.<name>]`` table may hold for its backend."""


def model_fields(body: Mapping[str, Any], source: str, table: str) -> dict[str, Any]:
    """The backend fields of one ``[models.<name>]`` table, as `ModelSpec` keyword arguments."""
    t = _Table({k: v for k, v in body.items() if k in MODEL_KEYS}, source, table, set(MODEL_KEYS))
    kw: dict[str, Any] = {}
    if "backend" in t.body:
        kw["backend"] = t.text("backend", BACKEND_NAMES)
    if "base_urls" in t.body:
        kw["base_urls"] = t.urls("base_urls")
    if "served_name" in t.body:
        kw["served_name"] = t.text("served_name")
    return kw


def check(backend: str, drift_k: int, models: Mapping[str, ModelSpec], backends: Backends, source: str) -> None:
    """What no single table can say: every openai model knows its servers, server fields sit on models that use
    servers, and drift's top-k fits the vLLM servers' --max-logprobs."""
    for name, spec in models.items():
        mine, table = spec.backend or backend, f"[models.{name}]"
        if mine != "openai" and (spec.base_urls or spec.served_name):
            raise ManifestError(f"{source}: {table}: base_urls and served_name name the running servers of a model "
                                f"gated with backend = \"openai\"; this model's backend is {mine!r}")
        if mine == "openai" and not (spec.base_urls or backends.openai.base_urls):
            raise ManifestError(f"{source}: {table}: backend \"openai\" needs the servers that run the model: set "
                                "base_urls = [\"http://host:port\"] here or in [backends.openai] (evalkit gate "
                                "--base-url URL)")
    cap = backends.vllm.max_logprobs
    uses_vllm = any((s.backend or backend) == "vllm" for s in models.values())
    if uses_vllm and cap != -1 and (drift_k == -1 or drift_k > cap):
        raise ManifestError(f"{source}: [gate]: drift_k = {drift_k} asks the vLLM servers for more logprobs than "
                            f"[backends.vllm] max_logprobs = {cap} allows; raise max_logprobs (-1: the vocabulary) "
                            "or lower drift_k")


# ----------------------------------------------------------------------------------------------------- the run


def engine_note(info: Mapping[str, Any]) -> str:
    """For a run through a server (a `TaskResult.throughput()`), the speed check's note on whose figures these are
    and what the engine did with the checkpoint (its quantization method and the kernels it chose, from the
    server's log), so that a slow kernel is named; "" for the transformers backend.

    >>> print(engine_note({"backend": "vllm", "engine": "vllm", "engine_version": "vllm-cpu 0.32.0",
    ...                    "quantization": "compressed-tensors", "kernels": "CPUWNA16LinearKernel for WNA16"}))
     (engine-side: vllm-cpu 0.32.0's prefill s/prompt token and inter-token latency; quantization compressed-tensors, kernels CPUWNA16LinearKernel for WNA16)
    """
    if info.get("backend") not in SERVED:
        return ""
    engine = str(info.get("engine_version") or info.get("engine") or "the engine").split(",")[0]  # vLLM, not torch
    did = "".join(f", {k} {info[k]}" for k in ("quantization", "kernels") if info.get(k))
    return f" (engine-side: {engine}'s prefill s/prompt token and inter-token latency{did.replace(', ', '; ', 1)})"


M = TypeVar("M")


def backend_of(manifest: Any, model: str) -> str:
    """The backend that gates `model`: its own ``backend``, else ``[gate] backend``."""
    return str(manifest.models[model].backend or manifest.gate.backend)


def override(manifest: M, *, backend: str | None = None, vllm_python: str | None = None,
             servers: int | None = None, base_urls: Sequence[str] = ()) -> M:
    """The manifest with the command line's choices (`evalkit gate --backend/--vllm-python/--servers/--base-url`,
    the plugin's --gate-backend), checked again as a whole.

    backend: every model's, replacing ``[gate] backend`` and each model's own (the point is to run this manifest
    through another engine). servers: vLLM slots at once (slot environments beyond it are dropped).
    base_urls: ``[backends.openai] base_urls``; models with base_urls of their own keep them.
    """
    m: Any = manifest
    if backend is not None and backend not in BACKEND_NAMES:
        raise ManifestError(f"backend {backend!r} is not one of {', '.join(BACKEND_NAMES)}")
    vllm, openai = m.backends.vllm, m.backends.openai
    if vllm_python is not None:
        vllm = dataclasses.replace(vllm, python=str(Path(vllm_python).expanduser().absolute()))
    if servers is not None:
        if servers < 1:
            raise ManifestError(f"--servers must be >= 1, got {servers}")
        vllm = dataclasses.replace(vllm, servers=servers, slots=vllm.slots[:servers])
    if base_urls:
        openai = dataclasses.replace(openai, base_urls=_urls(base_urls, lambda p: ManifestError(f"--base-url {p}")))
    gate, models = m.gate, m.models
    if backend is not None:
        gate = dataclasses.replace(gate, backend=backend)
        models = {name: dataclasses.replace(spec, backend=None, **({} if backend == "openai" else
                                                                   {"base_urls": (), "served_name": None}))
                  for name, spec in models.items()}
    backends = Backends(vllm, openai)
    check(gate.backend, gate.drift_k, models, backends, m.source)
    out: M = dataclasses.replace(m, gate=gate, models=models, backends=backends)
    return out
