"""Post-training quantization with the named recipes of `evalkit.models.recipes`, run by llmcompressor, with
instruction-aware calibration.

The seed's variants came from a home-grown GPTQ/AWQ/SmoothQuant and scored zero; nobody could say whether the
recipe, the code or the evaluator was at fault. Here every variant is made by the maintained library
(llmcompressor), calibrated on what the model is evaluated on (chat-templated prompts of the task families with
their answers, as the seed's report recommended), and saved as a compressed-tensors folder that plain transformers
loads. The folder records how it was made (provenance.json: recipe, calibration set, seed, library versions).

The recipes themselves are `evalkit.models.recipes.RECIPES`; adding one touches only that file. What quantizing
changes in the process (torch's seed and thread count, llmcompressor's loguru handlers) is restored afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.core import prompts
from evalkit.core.types import FAMILIES, Item
from evalkit.core.versions import EVALKIT_VERSION, library_versions
from evalkit.data.tasks import Task
from evalkit.errors import QuantizationError
from evalkit.models.calibration import ChatExamples
from evalkit.models.recipes import RECIPES, Recipe

__all__ = ["QuantizationError", "atomic_folder", "calibration_items", "calibration_texts", "deterministic",
           "provenance_versions", "quantize", "quiet_loguru"]

PROVENANCE_PACKAGES = ("torch", "transformers", "llmcompressor", "compressed-tensors")
"""The libraries whose versions decide a quantized folder's bytes (recorded in provenance.json, part of zoo keys)."""

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


# --------------------------------------------------------------------------------------------- calibration


def calibration_items(n: int, *, seed: int = 0) -> list[Item]:
    """`n` zoo training items, interleaved across the four families (train split: never a test item).

    >>> [item.family for item in calibration_items(5)]
    ['math', 'multiple_choice', 'yes_no', 'span', 'math']
    """
    from evalkit.data.synthetic import generate

    per_family = {family: generate(family, -(-n // len(FAMILIES)), seed=seed, split="train") for family in FAMILIES}
    return [per_family[FAMILIES[i % len(FAMILIES)]][i // len(FAMILIES)] for i in range(n)]


def calibration_texts(items: Sequence[Item], tokenizer: Any, *, enable_thinking: bool = False) -> list[str]:
    """Each item exactly as evaluation renders it (`evalkit.core.prompts.render`: the chat template with the
    generation prompt, `enable_thinking` as the evaluation will pass it; `plain_prompt` without a template),
    followed by the answer the model should give (the zoo's reference response, or the boxed gold answer for real
    datasets) and the eos token."""
    eos = tokenizer.eos_token or ""
    return [prompts.render(tokenizer, item, enable_thinking=enable_thinking)[0] + _answer(item) + eos for item in items]


def _answer(item: Item) -> str:
    from evalkit.data.synthetic import ZOO_TASKS, reference_response

    if item.task in ZOO_TASKS:
        return reference_response(item)
    return f"\\boxed{{{item.answers[0] if item.answers else ''}}}"


# -------------------------------------------------------------------------------------------------- quantize


def quantize(model_path: str | os.PathLike[str], recipe: str, out_dir: str | os.PathLike[str], *,
             calibration: Sequence[Item] | Task | ChatExamples | None = None, n_calibration: int = 64, seed: int = 0,
             device: str = "cpu", max_seq_length: int = 512) -> Path:
    """Quantize the model folder `model_path` with a named recipe into `out_dir` (a compressed-tensors folder).

    calibration: what to calibrate on (`evalkit.models.calibration`): items or a task's rows (rendered as evaluation
    renders them, with their answers), chat examples (through the model's chat template), or by default
    `n_calibration` zoo training items (`calibration_items`); provenance.json records which.
    A LoRA adapter folder is merged into its base first. `out_dir` is replaced atomically when done.

    >>> quantize("unused", "gptq-w3", "unused")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    evalkit.errors.QuantizationError: unknown recipe 'gptq-w3'; known recipes: ...
    """
    spec = RECIPES.get(recipe)
    _require_llmcompressor()
    from evalkit.models.loading import load_model

    chats, task, items = None, None, []
    if isinstance(calibration, ChatExamples):
        chats = calibration
    elif isinstance(calibration, Task):
        task, items = calibration, list(calibration.items)
    else:
        items = list(calibration) if calibration is not None else calibration_items(n_calibration, seed=seed)
    if not items and chats is None:
        raise QuantizationError("empty calibration set; pass calibration items or n_calibration > 0")
    loaded = load_model(model_path, device=device)
    if loaded.format not in ("plain", "peft-lora"):
        raise QuantizationError(f"{model_path} is a {loaded.format!r} model; quantize its unquantized parent instead.")
    model = loaded.model.merge_and_unload() if loaded.format == "peft-lora" else loaded.model
    texts = chats.texts(loaded.tokenizer) if chats is not None else calibration_texts(items, loaded.tokenizer)
    records = chats.records if chats is not None else tuple((item.task, item.id) for item in items)
    kind = "chat examples" if chats is not None else "task rows" if task is not None or calibration is not None \
        else "zoo training items"
    source = chats.source if chats is not None else task.source if task is not None else \
        "synthetic:train" if calibration is None else "items"

    with deterministic(seed), _cpu_pin_memory_guard(device), quiet_loguru():
        from llmcompressor import oneshot

        dataset = _calibration_dataset(texts, loaded.tokenizer, max_seq_length) if spec.calibrated else None
        pad = loaded.tokenizer.pad_token_id
        oneshot(model=model, tokenizer=loaded.tokenizer, recipe=spec.build(), dataset=dataset,
                num_calibration_samples=len(texts), shuffle_calibration_samples=False, batch_size=spec.batch_size,
                data_collator=_RightPad(pad if pad is not None else loaded.tokenizer.eos_token_id),
                use_loss_mask=spec.batch_size > 1, max_seq_length=max_seq_length)
    return _save(model, loaded, Path(out_dir), spec, _Run(records, texts, seed, device, max_seq_length, kind, source))


def _calibration_dataset(texts: Sequence[str], tokenizer: Any, max_seq_length: int) -> Any:
    """Tokenized rows (no special tokens added: the template holds them); loss_mask marks every real token.

    Rows are cut by slicing, not with `truncation=True`, which would switch truncation on inside the fast
    tokenizer and be saved into the variant's tokenizer.json."""
    from datasets import Dataset

    ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_seq_length] for t in texts]
    ones = [[1] * len(row) for row in ids]
    return Dataset.from_dict({"input_ids": ids, "attention_mask": ones, "loss_mask": ones})


@dataclass(frozen=True, slots=True)
class _Run:
    """How one quantization ran: its calibration records ((task, id) per text) and texts, seed, device, row length,
    and what the calibration set was (`kind`: zoo training items, task rows or chat examples; `source`: where)."""

    records: Sequence[tuple[str, str]]
    texts: Sequence[str]
    seed: int
    device: str
    max_seq_length: int
    kind: str = "zoo training items"
    source: str = "synthetic:train"


def _save(model: Any, loaded: Any, out: Path, spec: Recipe, run: _Run) -> Path:
    """Write the compressed folder next to `out`, then swap it in: a failed run never leaves half a model."""
    with atomic_folder(out) as staging:
        with warnings.catch_warnings():  # llmcompressor's offload hooks remain on the model; saving is unaffected
            warnings.filterwarnings("ignore", message="Attempting to save a model with offloaded modules")
            model.save_pretrained(staging, save_compressed=True)
        _copy_tokenizer(loaded, staging)
        _write_provenance(staging, loaded, spec, run)
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


def _write_provenance(folder: Path, loaded: Any, spec: Recipe, run: _Run) -> None:
    """provenance.json (how it was made; not part of the fingerprint) and calibration.jsonl (the exact texts)."""
    records, texts, seed, device, max_seq_length = run.records, run.texts, run.seed, run.device, run.max_seq_length
    calibration: dict[str, Any] | None = None
    if spec.calibrated:
        with open(folder / "calibration.jsonl", "w", encoding="utf-8") as fh:
            for (task, ident), text in zip(records, texts, strict=True):
                fh.write(json.dumps({"task": task, "id": ident, "text": text}, ensure_ascii=False) + "\n")
        chat = run.kind == "chat examples"
        calibration = {
            "n": len(records),
            "seed": seed,
            "kind": run.kind,
            "source": run.source,
            "tasks": sorted({task for task, _ in records}),
            "sha256": hashlib.sha256("\0".join(texts).encode()).hexdigest(),
            "file": "calibration.jsonl",
            "max_seq_length": max_seq_length,
            "batch_size": spec.batch_size,
            "format": "chat template (the examples' own turns)" if chat else
                      "chat template (prompt + reference answer)" if loaded.has_chat_template else "plain prompt",
        }
    record = {
        "evalkit_recipe": spec.name,
        "description": spec.description,
        "parent": {"name": loaded.path.name, "format": loaded.format, "fingerprint": loaded.fingerprint},
        "calibration": calibration,  # None: the recipe uses no calibration data
        "device": device.split(":")[0],
        "torch_threads": QUANT_THREADS,
        "versions": provenance_versions(),
    }
    (folder / "provenance.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def provenance_versions() -> dict[str, str]:
    """Versions of everything that decides a quantized folder's bytes: evalkit's, then `PROVENANCE_PACKAGES`."""
    return {"evalkit": EVALKIT_VERSION, **library_versions(PROVENANCE_PACKAGES)}


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
    """Fixed seed and a fixed CPU thread count for the duration; restores the caller's thread count and random
    state afterwards (torch's CPU generator, and the CUDA generators when CUDA was already initialized)."""
    import torch

    threads = torch.get_num_threads()
    cpu_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    torch.set_num_threads(QUANT_THREADS)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.random.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


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
    IntermediatesCache.pin_memory = lambda self, batch_index, input_names=None: None
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = original


@contextlib.contextmanager
def quiet_loguru(level: str = "ERROR") -> Iterator[None]:
    """llmcompressor logs every module it touches through loguru (its METRIC level sits above WARNING): for the
    duration, only messages at `level` or above reach stderr. The process's own loguru handlers are set aside, not
    removed, and come back afterwards (loguru has no public call for that: its handler table is swapped, as
    llmcompressor's own logger setup reads loguru's core too)."""
    try:
        from loguru import logger
    except ImportError:
        yield
        return
    import sys

    core = logger._core  # type: ignore[attr-defined]
    with core.lock:
        saved, saved_min = core.handlers, core.min_level
        core.handlers, core.min_level = {}, float("inf")
    handler = logger.add(sys.stderr, level=level)
    try:
        yield
    finally:
        logger.remove(handler)
        with core.lock:
            core.handlers = {**core.handlers, **saved}
            core.min_level = min(saved_min, core.min_level)
