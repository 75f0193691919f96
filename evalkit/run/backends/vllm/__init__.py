"""The ``vllm`` backend: evalkit starts `vllm serve` from its own venv, gates through the ``openai`` backend, stops it;
placement of models over several server slots (`pool`)."""

from typing import Any

from evalkit.run.backends.registry import BACKENDS
from evalkit.run.backends.vllm.backend import VLLMBackend
from evalkit.run.backends.vllm.pool import place, run_placed
from evalkit.run.backends.vllm.server import VLLMConfig, VLLMServer, unavailable

__all__ = ["VLLMBackend", "VLLMConfig", "VLLMServer", "place", "run_placed", "unavailable"]


@BACKENDS.register("vllm")
def _vllm(model: Any, **options: Any) -> VLLMBackend:
    """Servers for `model` (a folder, `ServedModel` or loaded model), started on first use: `VLLMBackend`'s options."""
    return VLLMBackend(model, **options)
