"""The one-way import rule, in one place: evalkit's layers from the bottom up.

A module may import its own unit (subpackage) and any lower layer, never a higher one, and never another unit of
its own layer. ``tests/test_architecture.py`` reads `LAYERS` and checks every import of every module (lazy imports
inside functions and ``TYPE_CHECKING`` imports included); docs/ARCHITECTURE.md explains the order.
"""

LAYERS: tuple[tuple[str, ...], ...] = (
    ("evalkit.errors", "evalkit._layers"),  # the floor: every error evalkit raises, and this rule
    ("evalkit.core",),  # 0: pure: types, prompts, extraction, scoring, the metric registry, baselines, stats
    ("evalkit.data",),  # 1: tasks and the synthetic families
    ("evalkit.models",),  # 2: loading, the model description, fingerprints, recipes, quantization
    ("evalkit.run",),  # 3: generation, backends, engine, cache, drift
    ("evalkit.zoo",),  # 4: needs models and data; never run or gate
    ("evalkit.gate",),  # 5: manifest, checks, runner (which builds zoo: models), summary
    ("evalkit.report",),  # 6: run folders and reports; reads the gate's records
    ("evalkit.pytest", "evalkit.cli", "evalkit"),  # 7: the faces: the pytest plugin, the CLI, the public API
)
"""Each layer's units, bottom first; a unit is a subpackage or a top-level module (``evalkit`` is the package's own
face, `evalkit/__init__.py`)."""

ALIASES: dict[str, str] = {"evalkit.plugin": "evalkit.pytest"}
"""Modules that belong to another unit: the installed pytest11 entry point's old name re-exports the plugin."""

PYTEST_UNIT = "evalkit.pytest"
"""The only unit that may import pytest, _pytest, syrupy or xdist."""

MAX_MODULE_LINES = 500
MAX_PARAMETERS = 8  # positional and keyword-only, not self/cls/*args/**kwargs
