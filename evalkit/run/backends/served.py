"""`ServedModel`: what `evalkit.run.engine.evaluate` needs of a model that a server runs: its tokenizer, generation
config and fingerprint, without loading its weights into evalkit's process.

Why: under a serving backend the weights live in the server; evalkit still renders prompts with the model's own
tokenizer and chat template, stops on its end tokens and keys the cache by the folder's fingerprint, all of which
come from small files. `model` is None, so nothing can fall back to the transformers engine by accident. `config`
(config.json) and `generation_config` are what the gate's artifacts check compares with the parent's
(`evalkit.models.artifacts.describe` reads a model's `.config` and `.generation_config`: a ServedModel has both).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import BackendError
from evalkit.models.fingerprint import fingerprint

ADAPTER_FORMATS = ("peft-lora", "bnb-nf4")


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A model folder as a server sees it (the `evalkit.run.engine.ModelLike` fields, `model` None)."""

    tokenizer: Any
    generation_config: Any  # transformers.GenerationConfig, or None when the folder has none
    path: Path
    format: str
    fingerprint: str
    notes: tuple[str, ...] = ()
    config: Any = None  # transformers.PretrainedConfig from config.json (the architecture the artifacts check reads)
    model: Any = None

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


def served_model(path: str | os.PathLike[str]) -> ServedModel:
    """Read a model folder's tokenizer and generation config (no weights); refuse what a server cannot serve as is.

    >>> served_model("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    evalkit.errors.ModelLoadError: /nonexistent: model folder does not exist...
    """
    from evalkit.models import loading

    root = loading._folder(path)
    fmt = loading.detect_format(root)
    if fmt in ADAPTER_FORMATS:
        raise BackendError(f"{root}: a {fmt} adapter; serving backends take merged checkpoints only (merge the adapter "
                           "into its base and save the folder, or gate it with the transformers backend)")
    tokenizer = loading._tokenizer(root)
    notes = loading._template_notes(tokenizer)
    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(root, local_files_only=True, trust_remote_code=False)
    gen = None
    if (root / "generation_config.json").is_file():
        gen = GenerationConfig.from_pretrained(root, local_files_only=True)
    if gen is None or getattr(gen, "eos_token_id", None) is None:
        notes += ("generation config has no eos_token_id: only the tokenizer's eos token ends a reply",)
    return ServedModel(tokenizer, gen, root, fmt, fingerprint(root), notes, config)
