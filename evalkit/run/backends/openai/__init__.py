"""The ``openai`` backend: any OpenAI-compatible completions server, one request per item (see `backend`), and
drift from its prompt logprobs (`drift`, vLLM's ``prompt_logprobs``)."""

from typing import Any

from evalkit.run.backends.openai.backend import OpenAIBackend
from evalkit.run.backends.openai.client import Client, OpenAIConfig
from evalkit.run.backends.registry import BACKENDS

__all__ = ["Client", "OpenAIBackend", "OpenAIConfig"]


@BACKENDS.register("openai")
def _openai(model: Any, *, config: OpenAIConfig) -> OpenAIBackend:
    """Servers that already run `model` (a `ServedModel` or a loaded model: its tokenizer renders the prompts)."""
    return OpenAIBackend.for_model(model, config)
