"""Models: the one description type (`ModelSpec`), the loader registry (one `LoadedModel` for every checkpoint
format), fingerprints, and the named quantization recipes. torch and transformers load lazily."""

from evalkit.errors import ModelLoadError, QuantizationError
from evalkit.models.description import ModelSpec, describe, describe_model
from evalkit.models.loading import FORMATS, LOADERS, LoadedModel, detect_format, load_model
from evalkit.models.recipes import RECIPES, Recipe

__all__ = ["FORMATS", "LOADERS", "LoadedModel", "ModelLoadError", "ModelSpec", "QuantizationError", "RECIPES",
           "Recipe", "describe", "describe_model", "detect_format", "load_model"]
