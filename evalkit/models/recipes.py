"""Named post-training quantization recipes: `RECIPES`, one `Recipe` each (llmcompressor modifiers built on demand).

Adding a recipe is one registration here (docs/ARCHITECTURE.md); `evalkit.models.quantization.quantize` runs any of
them, and a folder's provenance names the recipe it was made with, so reports read its bit widths from here.

>>> RECIPES.get("gptq-w4g64").weight_bits, RECIPES.get("smoothquant-w8a8").activation_bits
(4, 8)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evalkit.core.registry import Registry
from evalkit.errors import QuantizationError

__all__ = ["RECIPES", "Recipe"]


@dataclass(frozen=True)
class Recipe:
    """A named, fixed quantization recipe (llmcompressor modifiers built on demand)."""

    name: str
    description: str  # one line for reports and docs
    build: Callable[[], list[Any]] = field(repr=False)  # -> llmcompressor modifiers, in order
    weight_bits: int
    activation_bits: int | None = None  # None: weights only (activations stay in the model dtype)
    batch_size: int = 1  # calibration rows per forward; >1 pads (length-sorted batches) and masks the padding
    calibrated: bool = True  # False: weights are rounded from their own statistics, no calibration pass


# ------------------------------------------------------------------------------------------------- recipes
# lm_head stays unquantized in every recipe, as in llmcompressor's own examples: the output projection decides the
# next token directly, and quantizing it is what most often breaks stop tokens.

_IGNORE = ["lm_head"]


Granularity = int | str  # a group size, or "channel" / "tensor": how many weights share one scale


def _int_weights(bits: int, granularity: Granularity, *, symmetric: bool = True) -> Any:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationStrategy

    if isinstance(granularity, int):
        return QuantizationArgs(num_bits=bits, type="int", symmetric=symmetric, strategy=QuantizationStrategy.GROUP,
                                group_size=granularity, dynamic=False)
    return QuantizationArgs(num_bits=bits, type="int", symmetric=symmetric, strategy=QuantizationStrategy(granularity),
                            dynamic=False)


def _weights_only(bits: int, granularity: Granularity, *, symmetric: bool = True) -> dict[str, Any]:
    from compressed_tensors.quantization import QuantizationScheme

    scheme = QuantizationScheme(targets=["Linear"], weights=_int_weights(bits, granularity, symmetric=symmetric))
    return {"group_0": scheme}


def _gptq(bits: int, granularity: Granularity) -> Callable[[], list[Any]]:
    def build() -> list[Any]:
        from llmcompressor.modifiers.gptq import GPTQModifier

        return [GPTQModifier(config_groups=_weights_only(bits, granularity), ignore=_IGNORE)]

    return build


def _rtn(bits: int, granularity: Granularity) -> Callable[[], list[Any]]:
    def build() -> list[Any]:
        from llmcompressor.modifiers.quantization import QuantizationModifier

        return [QuantizationModifier(config_groups=_weights_only(bits, granularity), ignore=_IGNORE)]

    return build


def _awq(bits: int, group_size: int) -> Callable[[], list[Any]]:
    def build() -> list[Any]:
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform.awq import AWQModifier

        # AWQ's reference configuration: asymmetric int weights (zero point), scales searched on activations.
        groups = _weights_only(bits, group_size, symmetric=False)
        return [AWQModifier(), QuantizationModifier(config_groups=groups, ignore=_IGNORE)]

    return build


def _smoothquant_w8a8() -> list[Any]:
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    # Migrate activation outliers into the weights (strength 0.8, llmcompressor's default for W8A8), then int8
    # per-channel weights by GPTQ and dynamic per-token int8 input activations (preset scheme "W8A8").
    return [SmoothQuantModifier(smoothing_strength=0.8), GPTQModifier(targets=["Linear"], scheme="W8A8",
                                                                      ignore=_IGNORE)]


RECIPES: Registry[Recipe] = Registry("recipe", error=QuantizationError)
"""Every recipe evalkit can run, by name."""

for _recipe in (
    Recipe("gptq-w4g64", "GPTQ, int4 symmetric weights, group size 64; activations unquantized", _gptq(4, 64), 4),
    Recipe("awq-w4g128", "AWQ scaling + int4 asymmetric weights, group size 128; activations unquantized",
           _awq(4, 128), 4, batch_size=8),
    Recipe("smoothquant-w8a8", "SmoothQuant (0.8) + GPTQ int8 per-channel weights; int8 dynamic per-token input"
           " activations", _smoothquant_w8a8, 8, 8),
    Recipe("gptq-w8", "GPTQ, int8 symmetric per-channel weights; activations unquantized", _gptq(8, "channel"), 8),
    Recipe("rtn-w4g128", "round-to-nearest int4 symmetric weights, group size 128 (no calibration)",
           _rtn(4, 128), 4, calibrated=False),
    Recipe("gptq-w2g64", "GPTQ, int2 weights, group size 64: a stress recipe (GPTQ's error compensation keeps the"
           " zoo working at 2 bits)", _gptq(2, 64), 2),
    Recipe("rtn-w2", "round-to-nearest int2 weights, one scale per weight matrix (no calibration): known-broken",
           _rtn(2, "tensor"), 2, calibrated=False),
):
    RECIPES.register(_recipe.name, _recipe)
