"""Generation backends, one folder each (as lighteval keeps them): each registers a factory in `BACKENDS`.

Adding a backend is one new folder here whose module registers it, plus its import below (docs/ARCHITECTURE.md).
"""

from evalkit.run.backends import transformers  # noqa: F401  (registers "transformers")
from evalkit.run.backends.registry import BACKENDS, BackendFactory

__all__ = ["BACKENDS", "BackendFactory"]
