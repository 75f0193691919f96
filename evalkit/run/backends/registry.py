"""`BACKENDS`: the registry of generation backends (name -> factory of a `Backend` for a loaded model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evalkit.core.registry import Registry
from evalkit.run.generation import Backend

__all__ = ["BACKENDS", "BackendFactory"]

BackendFactory = Callable[[Any], Backend]
"""A loaded model (``.model``, ``.tokenizer``) -> the backend that generates with it."""

BACKENDS: Registry[BackendFactory] = Registry("backend")
"""Every generation backend, by name; each registers itself in its own folder under `evalkit.run.backends`."""
