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
    # the decision core: gate per-item results of any evaluator (e.g. lm-eval's --log_samples) without torch
    "decide": "evalkit.core.decision",
    "run_decision": "evalkit.core.decision",
    "plan": "evalkit.core.decision",
    "PairedTask": "evalkit.core.decision",
    "Criteria": "evalkit.core.decision",
    "Weights": "evalkit.core.decision",
    "TaskShape": "evalkit.core.decision",
}

__all__ = ["Cache", "Criteria", "FAMILIES", "Family", "GenerationConfig", "Item", "PairedTask", "TaskShape", "Weights",
           "__version__", "decide", "evaluate", "load_model", "load_task", "plan", "quantize", "run_decision",
           "run_gate", "score"]


def __getattr__(name: str) -> Any:
    """Resolve the public names on first use, so `import evalkit` stays cheap and free of torch."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
