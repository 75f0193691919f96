"""evalkit: a pytest-based regression gate for quantized LLMs.

Importing evalkit has no side effects: torch, transformers and the quantization backends load lazily, when a
function that needs them is called. The names below are the library's face; each lives in the subpackage of its
layer (docs/ARCHITECTURE.md): `evalkit.core`, `evalkit.data`, `evalkit.models`, `evalkit.run`, `evalkit.zoo`,
`evalkit.gate`, `evalkit.report`, `evalkit.pytest` and `evalkit.cli`. The decision names (`decide`, `run_decision`,
`plan`, `PairedTask`, `Criteria`, `Weights`, `TaskShape`) are `evalkit.core.decision`'s and need numpy only.

>>> import evalkit
>>> sorted(evalkit.__all__)[:4]
['Cache', 'Criteria', 'FAMILIES', 'Family']

Gating another evaluator's per-item results (no model, no torch): one model's tasks, paired with its parent's.

>>> d = evalkit.decide({"arc": evalkit.PairedTask([1] * 250 + [0] * 250, parent=[1] * 300 + [0] * 200)},
...                    evalkit.Criteria(min_compliance=None), run_size=12)
>>> d.status, d.check("arc", "recovery").status
('fail', 'fail')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers; at run time every name resolves on first use (`__getattr__`)
    from evalkit.core.types import FAMILIES, Family, Item
    from evalkit.core.versions import EVALKIT_VERSION as __version__

# name -> (module, attribute). Nothing is imported by `import evalkit` itself: the pytest plugin is loaded in every
# run of every project where evalkit is installed, and must cost that run nothing it did not ask for.
_LAZY = {
    "FAMILIES": ("evalkit.core.types", "FAMILIES"),
    "Family": ("evalkit.core.types", "Family"),
    "Item": ("evalkit.core.types", "Item"),
    "__version__": ("evalkit.core.versions", "EVALKIT_VERSION"),
    "load_task": ("evalkit.data.tasks", "load_task"),
    "GenerationConfig": ("evalkit.run.generation", "GenerationConfig"),
    "evaluate": ("evalkit.run.engine", "evaluate"),
    "Cache": ("evalkit.run.cache", "Cache"),
    "load_model": ("evalkit.models.loading", "load_model"),
    "quantize": ("evalkit.models.quantization", "quantize"),
    "run_gate": ("evalkit.gate.runner", "run_gate"),
    "score": ("evalkit.core.scoring", "score"),
    # the decision core: gate per-item results of any evaluator (e.g. lm-eval's --log_samples) without torch
    "decide": ("evalkit.core.decision", "decide"),
    "run_decision": ("evalkit.core.decision", "run_decision"),
    "plan": ("evalkit.core.decision", "plan"),
    "PairedTask": ("evalkit.core.decision", "PairedTask"),
    "Criteria": ("evalkit.core.decision", "Criteria"),
    "Weights": ("evalkit.core.decision", "Weights"),
    "TaskShape": ("evalkit.core.decision", "TaskShape"),
}

__all__ = ["Cache", "Criteria", "FAMILIES", "Family", "GenerationConfig", "Item", "PairedTask", "TaskShape", "Weights",
           "__version__", "decide", "evaluate", "load_model", "load_task", "plan", "quantize", "run_decision",
           "run_gate", "score"]


def __getattr__(name: str) -> Any:
    """Resolve the public names on first use, so `import evalkit` stays cheap and free of torch."""
    if name not in _LAZY:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value
