"""evalkit: a pytest-based regression gate for quantized LLMs.

Importing evalkit has no side effects: torch, transformers and the quantization backends load lazily, when a
function that needs them is called. The names below are the library's face; each lives in the subpackage of its
layer (docs/ARCHITECTURE.md): `evalkit.core`, `evalkit.data`, `evalkit.models`, `evalkit.run`, `evalkit.zoo`,
`evalkit.gate`, `evalkit.report`, `evalkit.pytest` and `evalkit.cli`.

>>> import evalkit
>>> sorted(evalkit.__all__)[:4]
['Cache', 'FAMILIES', 'Family', 'GenerationConfig']
"""

from __future__ import annotations

import importlib
from typing import Any

from evalkit.core.types import FAMILIES, Family, Item
from evalkit.core.versions import EVALKIT_VERSION as __version__

_LAZY = {
    "load_task": "evalkit.data.tasks",
    "GenerationConfig": "evalkit.run.generation",
    "evaluate": "evalkit.run.engine",
    "Cache": "evalkit.run.cache",
    "load_model": "evalkit.models.loading",
    "quantize": "evalkit.models.quantization",
    "run_gate": "evalkit.gate.runner",
    "score": "evalkit.core.scoring",
}

__all__ = ["Cache", "FAMILIES", "Family", "GenerationConfig", "Item", "__version__", "evaluate", "load_model",
           "load_task", "quantize", "run_gate", "score"]


def __getattr__(name: str) -> Any:
    """Resolve the public names on first use, so `import evalkit` stays cheap and free of torch."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
