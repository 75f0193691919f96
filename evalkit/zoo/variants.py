"""The fixture zoo's models: names, the `VARIANTS` registry, and where each one's folder is.

The zoo reproduces the seed's matrix at a size that runs on two CPU cores: three trained parents (base, full SFT,
LoRA SFT) each quantized with the seed's three recipes (`<parent>_gptq_w4g64`, `<parent>_awq_w4g128`,
`<parent>_smoothquant_w8a8`), the committed QLoRA model, and known-broken variants made by real means (a 2-bit
quantization, corrupted scales, a lost eos token, a flooded eos logit, a lost chat template) that the gate must flag,
each with the failure it must trigger (docs/broken-variants.md). A variant is one registration in `VARIANTS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evalkit.core import paths
from evalkit.core.registry import Registry
from evalkit.errors import ZooError
from evalkit.models.description import ZOO_SCHEME, ModelSpec
from evalkit.zoo.mutations import MUTATIONS

__all__ = ["PARENTS", "QLORA", "RECIPE_SUFFIXES", "VARIANTS", "Variant", "default_cache_dir", "default_zoo_dir",
           "parent_of", "source_of", "spec", "variant", "variant_path"]

PARENTS = ("base", "openmath_SFT_NoPeft_NoQuant", "openmath_SFT_LoRa64_NoQuant")
"""The trained parents, as named in the seed's matrix (committed under fixtures/zoo/)."""
QLORA = "openmath_SFT_LoRa64_QLORA_w4_headbf16"
"""The QLoRA model (adapter trained on an nf4 base, lm_head bf16): committed, loaded as format "bnb-nf4"."""
RECIPE_SUFFIXES = {"gptq-w4g64": "gptq_w4g64", "awq-w4g128": "awq_w4g128", "smoothquant-w8a8": "smoothquant_w8a8"}
"""The seed's three recipes and the suffix each gives a variant's name."""

Kind = Literal["parent", "qlora", "quantized", "broken", "mutation"]


@dataclass(frozen=True)
class Variant:
    """One model of the zoo: where it comes from, and for a broken one, what the gate must report."""

    name: str
    kind: Kind
    parent: str  # the model it is compared against (itself for a parent)
    source: str | None = None  # the model it is built from (a parent, or a healthy variant for a broken one)
    recipe: str | None = None  # evalkit.models.quantization recipe used, if any
    breakage: str | None = None  # key of BREAKAGES applied after the recipe, if any
    expected: str = ""  # broken variants: the failure the gate must report


def _quantized() -> list[Variant]:
    return [Variant(f"{parent}_{suffix}", "quantized", parent, parent, recipe)
            for parent in PARENTS for recipe, suffix in RECIPE_SUFFIXES.items()]


_BROKEN = [
    Variant("base_rtn_w2", "broken", "base", "base", recipe="rtn-w2",
            expected="2-bit weights with one scale per matrix: no reply is well-formed (compliance ~0, accuracy"
                     " undefined or ~0 on every family); drift: mean KL of nats, top-1 agreement about one half"),
    Variant("base_gptq_w4g64_scales_corrupted", "broken", "base", "base_gptq_w4g64", breakage="scales_corrupted",
            expected="drift: first diverging layer is the corrupted one (layers.{layer}); accuracy collapses"),
    Variant("base_gptq_w4g64_lost_eos", "broken", "base", "base_gptq_w4g64", breakage="lost_eos",
            expected="replies run to max_new_tokens (finish_reason 'length'; the gate's stopping check: 'runaway')"
                     " although the weights are those of the healthy base_gptq_w4g64"),
    Variant("base_gptq_w4g64_eos_flood", "broken", "base", "base_gptq_w4g64", breakage="eos_flood",
            expected="every reply is empty (diagnosis 'empty'), the seed's symptom; scores equal the trivial"
                     " baseline, never a silent 0/NaN"),
    Variant("base_gptq_w4g64_no_chat_template", "broken", "base", "base_gptq_w4g64", breakage="no_chat_template",
            expected="loader notes 'no chat template'; prompts fall back to plain_prompt and format compliance"
                     " (\\boxed{}) collapses"),
]

VARIANTS: Registry[Variant] = Registry("zoo model", error=ZooError)
"""Every model of the zoo by name, parents first."""

_MUTATIONS = [Variant(m.name, "mutation", "base", m.source, breakage=m.name, expected=m.expected) for m in MUTATIONS]
"""The mutation matrix (`evalkit.zoo.mutations`): broken and equivalent variants of base, gated by
fixtures/mutations.toml."""

for _variant in ([Variant(p, "parent", p) for p in PARENTS] + [Variant(QLORA, "qlora", "openmath_SFT_LoRa64_NoQuant")]
                 + _quantized() + _BROKEN + _MUTATIONS):
    VARIANTS.register(_variant.name, _variant)


def variant(name: str) -> Variant:
    """The zoo entry called `name`.

    >>> variant("base_awq_w4g128").recipe
    'awq-w4g128'
    """
    return VARIANTS.get(name)


def parent_of(name: str) -> str | None:
    """The model `name` is compared against (None for a parent): the link its parent chain follows."""
    v = variant(name)
    return None if v.parent == name else v.parent


def source_of(name: str) -> str | None:
    """The model `name` is built from (None for a committed one): the link its build chain follows."""
    v = variant(name)
    return v.source if v.kind not in ("parent", "qlora") else None


def spec(name: str) -> ModelSpec:
    """The description of zoo model `name` (``zoo:<name>``, with its parent)."""
    return ModelSpec(name, f"{ZOO_SCHEME}{name}", parent_of(name))


def default_zoo_dir() -> Path:
    """The committed parents: $EVALKIT_ZOO_DIR, else the checkout's fixtures/zoo or the copy an installed evalkit
    ships (`evalkit.core.paths.data_dir`)."""
    return Path(os.environ.get("EVALKIT_ZOO_DIR") or paths.data_dir() / "zoo")


def default_cache_dir() -> Path:
    """Where built variants go (`evalkit.core.paths.zoo_cache_dir`): $EVALKIT_ZOO_CACHE, else a checkout's
    .evalkit/zoo (git-ignored), else the user's cache folder; never the installed package's folder."""
    return paths.zoo_cache_dir()


def variant_path(name: str, zoo_dir: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of a zoo model: committed ones under zoo_dir, built ones under cache_dir (existing or not).

    >>> variant_path("base", "z", "c").as_posix(), variant_path("base_gptq_w4g64", "z", "c").as_posix()
    ('z/base', 'c/base_gptq_w4g64')
    """
    v = variant(name)
    if v.kind in ("parent", "qlora"):
        return Path(zoo_dir if zoo_dir is not None else default_zoo_dir()) / name
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / name
