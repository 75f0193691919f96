"""evalkit: a pytest-based regression gate for quantized LLMs.

Importing evalkit has no side effects: torch, transformers and the quantization backends load lazily,
when a function that needs them is called.
"""

from evalkit.types import FAMILIES, Family, Item

__all__ = ["FAMILIES", "Family", "Item", "__version__"]
__version__ = "0.1.0"
