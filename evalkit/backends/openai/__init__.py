"""The ``openai`` backend: any OpenAI-compatible completions server, one request per item (see `backend`)."""

from evalkit.backends.openai.backend import OpenAIBackend
from evalkit.backends.openai.client import Client, OpenAIConfig

__all__ = ["Client", "OpenAIBackend", "OpenAIConfig"]
