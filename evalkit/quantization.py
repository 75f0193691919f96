"""Named post-training quantization recipes, run by llmcompressor, with instruction-aware calibration.

The seed's variants came from a home-grown GPTQ/AWQ/SmoothQuant and scored zero; nobody could say whether the
recipe, the code or the evaluator was at fault. Here every variant is made by the maintained library
(llmcompressor), calibrated on what the model is evaluated on (chat-templated prompts of the task families with
their answers, as the seed's report recommended), and saved as a compressed-tensors folder that plain transformers
loads. The folder records how it was made (provenance.json: recipe, calibration set, seed, library versions).

A recipe is one entry of `RECIPES`; adding one touches only this file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.types import FAMILIES, Item

__all__ = ["RECIPES", "Recipe", "QuantizationError", "calibration_items", "calibration_texts", "prompt_text", "quantize"]

QUANT_THREADS = 1
"""Torch CPU threads while quantizing: a fixed count makes reductions (Hessians, scales) add up in the same order on
every machine, so the same inputs give byte-identical folders."""


class _RightPad:
    """Collate calibration rows of unequal length: pad on the right (causal attention never sees the padding from
    a real token); attention_mask and loss_mask are 0 there, so AWQ's search ignores padded positions."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        out = {}
        for key, fill in (("input_ids", self.pad_id), ("attention_mask", 0), ("loss_mask", 0)):
            out[key] = torch.tensor([list(r[key]) + [fill] * (width - len(r[key])) for r in rows])
        return out


class QuantizationError(Exception):
    """A quantization request that cannot run; the message names the problem and the fix."""


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


RECIPES: dict[str, Recipe] = {r.name: r for r in (
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
)}
"""Every recipe evalkit can run, by name."""


# --------------------------------------------------------------------------------------------- calibration


def calibration_items(n: int, *, seed: int = 0) -> list[Item]:
    """`n` zoo training items, interleaved across the four families (train split: never a test item).

    >>> [item.family for item in calibration_items(5)]
    ['math', 'multiple_choice', 'yes_no', 'span', 'math']
    """
    from evalkit.synthetic import generate

    per_family = {family: generate(family, -(-n // len(FAMILIES)), seed=seed, split="train") for family in FAMILIES}
    return [per_family[FAMILIES[i % len(FAMILIES)]][i // len(FAMILIES)] for i in range(n)]


def calibration_texts(items: Sequence[Item], tokenizer: Any) -> list[str]:
    """Each item exactly as evaluation renders it (chat template with the generation prompt, thinking off, as
    `evalkit.generation.render_prompts` does; `plain_prompt` without a template), followed by the answer the model
    should give (the zoo's reference response, or the boxed gold answer for real datasets) and the eos token."""
    eos = tokenizer.eos_token or ""
    return [prompt_text(item, tokenizer) + _answer(item) + eos for item in items]


def prompt_text(item: Item, tokenizer: Any) -> str:
    """The prompt as evaluation renders it: chat template + generation prompt (thinking off), else plain_prompt."""
    from evalkit.prompts import messages, plain_prompt

    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages(item), tokenize=False, add_generation_prompt=True,
                                             enable_thinking=False)
    return plain_prompt(item)


def _answer(item: Item) -> str:
    from evalkit.synthetic import ZOO_TASKS, reference_response

    if item.task in ZOO_TASKS:
        return reference_response(item)
    return f"\\boxed{{{item.answers[0] if item.answers else ''}}}"


# -------------------------------------------------------------------------------------------------- quantize


def quantize(model_path: str | os.PathLike[str], recipe: str, out_dir: str | os.PathLike[str], *,
             calibration: Sequence[Item] | None = None, n_calibration: int = 64, seed: int = 0,
             device: str = "cpu", max_seq_length: int = 512) -> Path:
    """Quantize the model folder `model_path` with a named recipe into `out_dir` (a compressed-tensors folder).

    calibration: the items to calibrate on (default: `n_calibration` zoo training items, `calibration_items`).
    A LoRA adapter folder is merged into its base first. `out_dir` is replaced atomically when done.

    >>> quantize("unused", "gptq-w3", "unused")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    evalkit.quantization.QuantizationError: unknown recipe 'gptq-w3'; known: ...
    """
    if recipe not in RECIPES:
        raise QuantizationError(f"unknown recipe {recipe!r}; known: {sorted(RECIPES)}")
    _require_llmcompressor()
    from evalkit.loading import load_model

    spec = RECIPES[recipe]
    items = list(calibration) if calibration is not None else calibration_items(n_calibration, seed=seed)
    if not items:
        raise QuantizationError("empty calibration set; pass calibration items or n_calibration > 0")
    loaded = load_model(model_path, device=device)
    if loaded.format not in ("plain", "peft-lora"):
        raise QuantizationError(f"{model_path} is a {loaded.format!r} model; quantize its unquantized parent instead.")
    model = loaded.model.merge_and_unload() if loaded.format == "peft-lora" else loaded.model
    texts = calibration_texts(items, loaded.tokenizer)

    with deterministic(seed), _cpu_pin_memory_guard(device), _quiet():
        from llmcompressor import oneshot

        dataset = _calibration_dataset(texts, loaded.tokenizer, max_seq_length) if spec.calibrated else None
        pad = loaded.tokenizer.pad_token_id
        oneshot(model=model, tokenizer=loaded.tokenizer, recipe=spec.build(), dataset=dataset,
                num_calibration_samples=len(texts), shuffle_calibration_samples=False, batch_size=spec.batch_size,
                data_collator=_RightPad(pad if pad is not None else loaded.tokenizer.eos_token_id),
                use_loss_mask=spec.batch_size > 1, max_seq_length=max_seq_length)
    return _save(model, loaded, Path(out_dir), spec, items, texts, seed=seed, device=device,
                 max_seq_length=max_seq_length)


def _calibration_dataset(texts: Sequence[str], tokenizer: Any, max_seq_length: int) -> Any:
    """Tokenized rows (no special tokens added: the template holds them); loss_mask marks every real token.

    Rows are cut by slicing, not with `truncation=True`, which would switch truncation on inside the fast
    tokenizer and be saved into the variant's tokenizer.json."""
    from datasets import Dataset

    ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_seq_length] for t in texts]
    ones = [[1] * len(row) for row in ids]
    return Dataset.from_dict({"input_ids": ids, "attention_mask": ones, "loss_mask": ones})


def _save(model: Any, loaded: Any, out: Path, spec: Recipe, items: Sequence[Item], texts: Sequence[str], *,
          seed: int, device: str, max_seq_length: int) -> Path:
    """Write the compressed folder next to `out`, then swap it in: a failed run never leaves half a model."""
    with atomic_folder(out) as staging:
        with warnings.catch_warnings():  # llmcompressor's offload hooks remain on the model; saving is unaffected
            warnings.filterwarnings("ignore", message="Attempting to save a model with offloaded modules")
            model.save_pretrained(staging, save_compressed=True)
        _copy_tokenizer(loaded, staging)
        _write_provenance(staging, loaded, spec, items, texts, seed=seed, device=device, max_seq_length=max_seq_length)
    return out


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "tokenizer.model")


def _copy_tokenizer(loaded: Any, folder: Path) -> None:
    """The parent's tokenizer files, byte for byte: re-saving would add loading options (local_files_only, ...) and
    change the fingerprint without changing the model."""
    for source in (loaded.path, loaded.base):
        files = [source / name for name in _TOKENIZER_FILES] if source is not None else []
        if any(f.exists() for f in files):
            for f in files:
                if f.exists():
                    shutil.copyfile(f, folder / f.name)
            return
    loaded.tokenizer.save_pretrained(folder)


def _write_provenance(folder: Path, loaded: Any, spec: Recipe, items: Sequence[Item], texts: Sequence[str], *,
                      seed: int, device: str, max_seq_length: int) -> None:
    """provenance.json (how it was made; not part of the fingerprint) and calibration.jsonl (the exact texts)."""
    calibration: dict[str, Any] | None = None
    if spec.calibrated:
        with open(folder / "calibration.jsonl", "w", encoding="utf-8") as fh:
            for item, text in zip(items, texts, strict=True):
                fh.write(json.dumps({"task": item.task, "id": item.id, "text": text}, ensure_ascii=False) + "\n")
        calibration = {
            "n": len(items),
            "seed": seed,
            "tasks": sorted({item.task for item in items}),
            "sha256": hashlib.sha256("\0".join(texts).encode()).hexdigest(),
            "file": "calibration.jsonl",
            "max_seq_length": max_seq_length,
            "batch_size": spec.batch_size,
            "format": "chat template (prompt + reference answer)" if loaded.has_chat_template else "plain prompt",
        }
    record = {
        "evalkit_recipe": spec.name,
        "description": spec.description,
        "parent": {"name": loaded.path.name, "format": loaded.format, "fingerprint": loaded.fingerprint},
        "calibration": calibration,  # None: the recipe uses no calibration data
        "device": device.split(":")[0],
        "torch_threads": QUANT_THREADS,
        "versions": library_versions(),
    }
    (folder / "provenance.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def library_versions() -> dict[str, str]:
    """Versions of everything that decides a quantized folder's bytes."""
    from importlib.metadata import PackageNotFoundError, version

    import evalkit

    found = {"evalkit": evalkit.__version__}
    for name in ("torch", "transformers", "llmcompressor", "compressed-tensors"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


# --------------------------------------------------------------------------------------------------- helpers


def _require_llmcompressor() -> None:
    import importlib

    for module in ("llmcompressor", "compressed_tensors", "datasets"):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise QuantizationError(f"quantization needs the optional package {module!r}:"
                                    " pip install 'evalkit[quant]'") from err


def _parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


@contextlib.contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a staging folder beside `out`, then swap it in (files world-readable): a failed or interrupted run
    never leaves half a model where a loader or the zoo cache would take it for a whole one."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=_parent(out)))
    staging.chmod(0o755)
    try:
        yield staging
        for file in staging.iterdir():
            if file.is_file():
                file.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Fixed seed and a fixed CPU thread count for the duration; restores the caller's thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(QUANT_THREADS)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _cpu_pin_memory_guard(device: str) -> Iterator[None]:
    """llmcompressor's AWQ pins cached activations unconditionally, which fails without an accelerator; on CPU
    pinning buys nothing, so it becomes a no-op for the duration."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        yield
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, batch_index, input_names=None: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = original  # type: ignore[method-assign]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """llmcompressor logs every module it touches through loguru (its METRIC level sits above WARNING); keep
    errors only."""
    try:
        from loguru import logger
    except ImportError:
        yield
        return
    import sys

    logger.remove()
    handler = logger.add(sys.stderr, level="ERROR")
    try:
        yield
    finally:
        logger.remove(handler)
