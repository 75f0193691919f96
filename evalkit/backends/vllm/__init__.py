"""The ``vllm`` backend: evalkit starts `vllm serve` from its own venv, gates through the ``openai`` backend, stops it."""

from evalkit.backends.vllm.backend import VLLMBackend
from evalkit.backends.vllm.pool import place, run_placed
from evalkit.backends.vllm.server import VLLMConfig, VLLMServer, unavailable

__all__ = ["VLLMBackend", "VLLMConfig", "VLLMServer", "place", "run_placed", "unavailable"]
