"""`BACKENDS`: the registry of generation backends (name -> factory of a `Backend` for a model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evalkit.core.registry import Registry
from evalkit.run.generation import Backend

__all__ = ["BACKENDS", "BackendFactory"]

BackendFactory = Callable[..., Backend]
"""A model -> the backend that generates with it: ``factory(model, **options)``. The ``transformers`` backend takes a
loaded model (``.model``, ``.tokenizer``) and no options; the serving backends take a model folder's
`evalkit.run.backends.served.ServedModel` and their settings (``openai``: ``config=OpenAIConfig(...)``; ``vllm``:
``config=VLLMConfig(...)``, ``replicas``, ``concurrency``, ...)."""

BACKENDS: Registry[BackendFactory] = Registry("backend")
"""Every generation backend, by name; each registers itself in its own folder under `evalkit.run.backends`."""
