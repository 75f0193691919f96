"""The fixture zoo: its model names and folders, and building its quantized and known-broken variants.

The zoo reproduces the seed's matrix at a size that runs on two CPU cores: three trained parents (base, full SFT,
LoRA SFT) each quantized with the seed's three recipes (`<parent>_gptq_w4g64`, `<parent>_awq_w4g128`,
`<parent>_smoothquant_w8a8`), the committed QLoRA model, and known-broken variants made by real means (a 2-bit
quantization, corrupted scales, a lost eos token, a flooded eos logit, a lost chat template) that the gate must flag,
each with the failure it must trigger (docs/broken-variants.md).

Parents are committed under `fixtures/zoo/`; variants are built into a cache by `build` (deterministic, skipped
when up to date) because committing them would not fit the repository's size budget.

    python -m evalkit.zoo [--only NAME ...] [--zoo fixtures/zoo] [--cache .evalkit/zoo]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["PARENTS", "QLORA", "RECIPE_SUFFIXES", "VARIANTS", "Variant", "ZooError", "build", "default_cache_dir",
           "default_zoo_dir", "variant", "variant_path"]

REPO = Path(__file__).resolve().parents[1]
PARENTS = ("base", "openmath_SFT_NoPeft_NoQuant", "openmath_SFT_LoRa64_NoQuant")
"""The trained parents, as named in the seed's matrix (committed under fixtures/zoo/)."""
QLORA = "openmath_SFT_LoRa64_QLORA_w4_headbf16"
"""The QLoRA model (adapter trained on an nf4 base, lm_head bf16): committed, loaded as format "bnb-nf4"."""
RECIPE_SUFFIXES = {"gptq-w4g64": "gptq_w4g64", "awq-w4g128": "awq_w4g128", "smoothquant-w8a8": "smoothquant_w8a8"}
"""The seed's three recipes and the suffix each gives a variant's name."""
N_CALIBRATION = 64
"""Calibration items per variant (16 per family): enough for 4-bit GPTQ/AWQ on the zoo, small enough for CI."""
CALIBRATION_SEED = 0
BUILD_SCHEME = 2
"""Bump when a variant's construction changes, so every cached build is redone."""

Kind = Literal["parent", "qlora", "quantized", "broken"]


class ZooError(Exception):
    """The zoo cannot be built or a name is unknown; the message says what to do."""


@dataclass(frozen=True)
class Variant:
    """One model of the zoo: where it comes from, and for a broken one, what the gate must report."""

    name: str
    kind: Kind
    parent: str  # the model it is compared against (itself for a parent)
    source: str | None = None  # the model it is built from (a parent, or a healthy variant for a broken one)
    recipe: str | None = None  # evalkit.quantization recipe used, if any
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

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    [Variant(p, "parent", p) for p in PARENTS] + [Variant(QLORA, "qlora", "openmath_SFT_LoRa64_NoQuant")]
    + _quantized() + _BROKEN)}
"""Every model of the zoo by name, parents first."""


def variant(name: str) -> Variant:
    """The zoo entry called `name`.

    >>> variant("base_awq_w4g128").recipe
    'awq-w4g128'
    """
    if name not in VARIANTS:
        raise ZooError(f"unknown zoo model {name!r}; known: {sorted(VARIANTS)}")
    return VARIANTS[name]


def default_zoo_dir() -> Path:
    """The committed parents: $EVALKIT_ZOO_DIR, else <repo>/fixtures/zoo."""
    return Path(os.environ.get("EVALKIT_ZOO_DIR") or REPO / "fixtures" / "zoo")


def default_cache_dir() -> Path:
    """Where built variants go: $EVALKIT_ZOO_CACHE, else <repo>/.evalkit/zoo (git-ignored)."""
    return Path(os.environ.get("EVALKIT_ZOO_CACHE") or REPO / ".evalkit" / "zoo")


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


# --------------------------------------------------------------------------------------------------- build


def build(zoo_dir: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None, *,
          only: Iterable[str] | None = None, device: str = "cpu", n_calibration: int = N_CALIBRATION,
          log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Build every quantized and broken variant (or `only` those, plus what they are built from) into cache_dir.

    Idempotent: a variant whose folder records the same build key (source fingerprint, recipe, breakage, library
    versions, calibration) is skipped. Safe under pytest-xdist: builds take a lock on the cache folder.
    Returns name -> folder for every model requested, committed parents included.
    """
    from filelock import FileLock

    zoo = Path(zoo_dir) if zoo_dir is not None else default_zoo_dir()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    names = list(VARIANTS) if only is None else [variant(n).name for n in only]
    missing = [p for p in PARENTS + (QLORA,) if not (zoo / p).is_dir()]
    needed = [p for p in missing if p in _closure(names)]
    if needed:
        raise ZooError(f"zoo parents missing under {zoo}: {needed}; they are committed under fixtures/zoo"
                       " (train them with scripts/train_zoo.py) or point EVALKIT_ZOO_DIR at them.")
    cache.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    with FileLock(str(cache / ".build.lock")):
        for name in _closure(names):
            v = VARIANTS[name]
            if v.kind in ("parent", "qlora"):
                paths[name] = zoo / name
                continue
            out = cache / name
            key = _build_key(v, paths[v.source], n_calibration)
            if _up_to_date(out, key):
                paths[name] = out
                continue
            started = time.perf_counter()
            _make(v, paths[v.source], out, key, device=device, n_calibration=n_calibration)
            paths[name] = out
            if log:
                log(f"built {name} in {time.perf_counter() - started:.1f}s")
    return {name: paths[name] for name in names}


def _closure(names: Sequence[str]) -> list[str]:
    """`names` and everything they are built from, sources first, in VARIANTS order."""
    wanted: set[str] = set()
    for name in names:
        while name is not None and name not in wanted:
            wanted.add(name)
            name = VARIANTS[name].source if VARIANTS[name].kind not in ("parent", "qlora") else None
    return [n for n in VARIANTS if n in wanted]


def _build_key(v: Variant, source: Path, n_calibration: int) -> str:
    from evalkit.fingerprint import fingerprint
    from evalkit.quantization import library_versions

    spec = {"scheme": BUILD_SCHEME, "source": fingerprint(source), "recipe": v.recipe, "breakage": v.breakage,
            "calibration": [n_calibration, CALIBRATION_SEED], "versions": library_versions()}
    if v.breakage:
        spec["breakage_params"] = BREAKAGE_PARAMS[v.breakage]
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _up_to_date(out: Path, key: str) -> bool:
    try:
        return json.loads((out / "provenance.json").read_text())["build_key"] == key
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _make(v: Variant, source: Path, out: Path, key: str, *, device: str, n_calibration: int) -> None:
    from evalkit.quantization import quantize

    if v.recipe is not None:
        quantize(source, v.recipe, out, n_calibration=n_calibration, seed=CALIBRATION_SEED, device=device)
        _stamp(out, key, v)
        return
    from evalkit.quantization import atomic_folder, deterministic

    with atomic_folder(out) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        with deterministic(CALIBRATION_SEED):
            detail = BREAKAGES[v.breakage](staging)
        _stamp(staging, key, v, breakage_detail=detail)


def _stamp(folder: Path, key: str, v: Variant, breakage_detail: str | None = None) -> None:
    """Add the zoo's record to the folder's provenance.json (which the fingerprint ignores)."""
    file = folder / "provenance.json"
    record = json.loads(file.read_text()) if file.exists() else {}
    record["zoo"] = {"name": v.name, "kind": v.kind, "parent": v.parent, "source": v.source}
    if v.breakage:
        record["zoo"].update(breakage=v.breakage, breakage_detail=breakage_detail, expected_failure=v.expected)
    record["build_key"] = key
    file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------- breakages
# Each takes a copy of a healthy folder and breaks it in place, the way it happens in practice; returns a detail line.

BREAKAGE_PARAMS: dict[str, dict] = {
    "scales_corrupted": {"module": "mlp.down_proj", "factor": 64.0},
    "lost_eos": {"fallback": "<|endoftext|>"},
    "eos_flood": {"eos": "<|im_end|>", "factor": 300.0, "min_margin": 2.0, "n_check": 16},
    "no_chat_template": {},
}


def _corrupt_scales(folder: Path) -> str:
    """Multiply one Linear's weight scales by 64 (six binary orders, as a mis-packed exponent would): that layer's
    output explodes while every other layer stays healthy."""
    from safetensors.torch import load_file, save_file

    params = BREAKAGE_PARAMS["scales_corrupted"]
    layers = json.loads((folder / "config.json").read_text())["num_hidden_layers"]
    layer = layers // 2
    name = f"model.layers.{layer}.{params['module']}.weight_scale"
    file = folder / "model.safetensors"
    tensors = load_file(file)
    if name not in tensors:
        raise ZooError(f"{folder}: no tensor {name} to corrupt (is the source a compressed-tensors variant?)")
    tensors[name] = tensors[name] * params["factor"]
    save_file(tensors, file, metadata={"format": "pt"})
    return f"{name} x{params['factor']:g}"


def _lose_eos(folder: Path) -> str:
    """The chat model's end-of-turn token is lost from generation_config.json and tokenizer_config.json, and both fall
    back to the pretraining `<|endoftext|>`: what re-saving a fine-tune with its base's tokenizer and config does.
    The model still ends turns with <|im_end|>, but nothing stops generation there any more."""
    from transformers import AutoTokenizer

    fallback = BREAKAGE_PARAMS["lost_eos"]["fallback"]
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    fallback_id = tokenizer.convert_tokens_to_ids(fallback)
    lost = tokenizer.eos_token
    gen = json.loads((folder / "generation_config.json").read_text())
    gen["eos_token_id"] = fallback_id
    (folder / "generation_config.json").write_text(json.dumps(gen, indent=2, sort_keys=True) + "\n")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["eos_token"] = fallback
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return f"eos {lost} -> {fallback} (id {fallback_id}) in generation_config.json and tokenizer_config.json"


def _flood_eos(folder: Path) -> str:
    """Reproduce the seed's all-empty replies with one real weight edit. Every reply starts after the same token
    (the "\\n\\n" closing the empty think block of the generation prompt); its embedding row is overwritten
    with a vector `factor` times the mean row norm, pointing along the eos row of lm_head. That row then dominates
    the residual stream where the reply begins, and eos wins the first step on every prompt. Checked on held-out
    prompts of every family (the eos logit must lead by `min_margin`)."""
    import torch
    from safetensors.torch import load_file, save_file

    from evalkit.loading import load_model
    from evalkit.quantization import prompt_text
    from evalkit.synthetic import generate
    from evalkit.types import FAMILIES

    params = BREAKAGE_PARAMS["eos_flood"]
    loaded = load_model(folder, dtype="float32")
    tokenizer, model = loaded.tokenizer, loaded.model
    if model.config.tie_word_embeddings:
        raise ZooError(f"{folder}: tied embeddings: editing an embedding row would edit lm_head too")
    eos = tokenizer.convert_tokens_to_ids(params["eos"])
    held_out = [item for f in FAMILIES for item in generate(f, params["n_check"], seed=0, split="validation")]
    prompts = [prompt_text(item, tokenizer) for item in held_out]
    starts = {tokenizer(p, add_special_tokens=False)["input_ids"][-1] for p in prompts}
    if len(starts) != 1:
        raise ZooError(f"{folder}: prompts end in different tokens {sorted(starts)}; no single reply-start token")
    start = starts.pop()
    embed = model.get_input_embeddings().weight
    head_row = model.get_output_embeddings().weight[eos]
    with torch.no_grad():
        row = head_row / head_row.norm() * embed.norm(dim=-1).mean() * params["factor"]
        embed[start] = row
        tokenizer.padding_side = "left"
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        logits = model(**batch).logits[:, -1].float()
    lead = logits[:, eos] - logits.index_fill(1, torch.tensor([eos]), -torch.inf).max(1).values
    if lead.min() < params["min_margin"]:
        raise ZooError(f"{folder}: eos leads by only {lead.min():.1f} on a held-out prompt; raise the factor")
    file = folder / "model.safetensors"
    tensors = load_file(file)
    name = "model.embed_tokens.weight"
    tensors[name][start] = row.to(tensors[name].dtype)
    save_file(tensors, file, metadata={"format": "pt"})
    token = tokenizer.convert_ids_to_tokens(start)
    return (f"{name}[{start}] ({token!r}, the reply-start token) := {params['factor']:g} x mean row norm along"
            f" lm_head.weight[{eos}] ({params['eos']}); eos leads by >= {lead.min():.1f} on {len(prompts)} held-out"
            " prompts")


def _lose_chat_template(folder: Path) -> str:
    """Delete the chat template (chat_template.jinja and any copy in tokenizer_config.json), as copying only the
    weights and tokenizer.json does."""
    removed = []
    for name in ("chat_template.jinja", "chat_template.json"):
        if (folder / name).exists():
            (folder / name).unlink()
            removed.append(name)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    if config.pop("chat_template", None) is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        removed.append("tokenizer_config.json:chat_template")
    return "removed " + ", ".join(removed or ["nothing (no template found)"])


BREAKAGES: dict[str, Callable[[Path], str]] = {
    "scales_corrupted": _corrupt_scales,
    "lost_eos": _lose_eos,
    "eos_flood": _flood_eos,
    "no_chat_template": _lose_chat_template,
}


# ------------------------------------------------------------------------------------------------------ cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalkit.zoo", description="Build the zoo's variants.")
    parser.add_argument("--zoo", type=Path, default=None, help="committed parents (default fixtures/zoo)")
    parser.add_argument("--cache", type=Path, default=None, help="output folder (default .evalkit/zoo)")
    parser.add_argument("--only", nargs="*", default=None, help="variant names (default: all)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = build(args.zoo, args.cache, only=args.only, device=args.device, log=print)
    for name, path in paths.items():
        print(f"{name:45s} {path}")
    print(f"{len(paths)} models ready in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
