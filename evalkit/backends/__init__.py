"""Backends that gate a model as it is served: evalkit emits one request per item and reads one record per item,
and the serving engine does the batching, the KV cache and the kernels.

- ``openai`` (`evalkit.backends.openai`): any OpenAI-compatible `/v1/completions` server, one or many base URLs,
  a concurrency limit per server, retries with backoff.
- ``vllm`` (`evalkit.backends.vllm`): evalkit starts `vllm serve` for a model folder from its own interpreter
  (``$EVALKIT_VLLM_PYTHON``), waits for readiness, gates through ``openai`` and stops it; replicas and placement of
  models over several servers.
- `evalkit.backends.drift`: teacher-forced drift from a server's top-k prompt logprobs.
- `evalkit.backends.model.ServedModel`: a model's tokenizer and generation config without its weights.

Both backends implement `evalkit.generation.Backend` and return the same `Generation` records as `HFBackend`
(prompts rendered by evalkit with the model's own chat template and sent as token ids; raw text decoded here from
the returned token ids), so extraction, scoring, the cache and the checks do not change. Nothing here is imported
by evalkit's other modules, and importing it loads neither torch nor vLLM.
"""

from evalkit.backends.errors import BackendError, RequestError, ServerStartError
from evalkit.backends.model import ServedModel, served_model

__all__ = ["BackendError", "RequestError", "ServedModel", "ServerStartError", "served_model"]
