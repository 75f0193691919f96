"""The fixture zoo: its models (`VARIANTS`), known breakages, and building the variants into a cache.

    python -m evalkit.zoo [--only NAME ...] [--zoo fixtures/zoo] [--cache .evalkit/zoo]
"""

from evalkit.errors import ZooError
from evalkit.zoo.breakages import BREAKAGES, Breakage
from evalkit.zoo.build import build
from evalkit.zoo.variants import (PARENTS, QLORA, RECIPE_SUFFIXES, VARIANTS, Variant, default_cache_dir,
                                  default_zoo_dir, parent_of, spec, variant, variant_path)

__all__ = ["BREAKAGES", "Breakage", "PARENTS", "QLORA", "RECIPE_SUFFIXES", "VARIANTS", "Variant", "ZooError", "build",
           "default_cache_dir", "default_zoo_dir", "parent_of", "spec", "variant", "variant_path"]
