"""evalkit: a pytest-based regression gate for quantized LLMs.

Importing evalkit has no side effects: torch, transformers and the quantization backends load lazily, when a
function that needs them is called. The names below are the library's face; each lives in the module named for
its concept (docs/ARCHITECTURE.md). Functions named like their module (``evalkit.extract.extract``,
``evalkit.drift.drift``, ``evalkit.fingerprint.fingerprint``) are left out: the submodule would shadow them.

>>> import evalkit
>>> sorted(evalkit.__all__)[:4]
['Cache', 'FAMILIES', 'Family', 'GenerationConfig']
"""

from __future__ import annotations

import importlib
from typing import Any

from evalkit.types import FAMILIES, Family, Item

__version__ = "0.1.0"

_LAZY = {
    "load_task": "evalkit.tasks",
    "GenerationConfig": "evalkit.generation",
    "evaluate": "evalkit.engine",
    "Cache": "evalkit.cache",
    "load_model": "evalkit.loading",
    "quantize": "evalkit.quantization",
    "run_gate": "evalkit.gate",
    "score": "evalkit.metrics",
}

__all__ = ["FAMILIES", "Family", "Item", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Resolve the public names on first use, so `import evalkit` stays cheap and free of torch."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
