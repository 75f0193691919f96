"""Known breakages: each takes a copy of a healthy folder and breaks it in place, the way it happens in practice.

A breakage is one registration in `BREAKAGES` (its function and the parameters that enter the build key); a
variant of `evalkit.zoo.variants` names the one it applies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.core.registry import Registry
from evalkit.errors import ZooError

__all__ = ["BREAKAGES", "Breakage"]


@dataclass(frozen=True, slots=True)
class Breakage:
    """One way to break a healthy folder: the function (folder -> a detail line) and its fixed parameters."""

    name: str
    apply: Callable[[Path], str]
    params: Mapping[str, Any] = field(default_factory=dict)


BREAKAGES: Registry[Breakage] = Registry("breakage", error=ZooError)
"""Every known breakage, by name."""


def _params(name: str) -> Mapping[str, Any]:
    return BREAKAGES.get(name).params


def _corrupt_scales(folder: Path) -> str:
    """Multiply one Linear's weight scales by 64 (six binary orders, as a mis-packed exponent would): that layer's
    output explodes while every other layer stays healthy."""
    from safetensors.torch import load_file, save_file

    params = _params("scales_corrupted")
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

    fallback = _params("lost_eos")["fallback"]
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

    from evalkit.core import prompts
    from evalkit.core.types import FAMILIES
    from evalkit.data.synthetic import generate
    from evalkit.models.loading import load_model

    params = _params("eos_flood")
    loaded = load_model(folder, dtype="float32")
    tokenizer, model = loaded.tokenizer, loaded.model
    if model.config.tie_word_embeddings:
        raise ZooError(f"{folder}: tied embeddings: editing an embedding row would edit lm_head too")
    eos = tokenizer.convert_tokens_to_ids(params["eos"])
    held_out = [item for f in FAMILIES for item in generate(f, params["n_check"], seed=0, split="validation")]
    texts = [prompts.render(tokenizer, item, enable_thinking=False)[0] for item in held_out]
    starts = {tokenizer(p, add_special_tokens=False)["input_ids"][-1] for p in texts}
    if len(starts) != 1:
        raise ZooError(f"{folder}: prompts end in different tokens {sorted(starts)}; no single reply-start token")
    start = starts.pop()
    embed = model.get_input_embeddings().weight
    head_row = model.get_output_embeddings().weight[eos]
    with torch.no_grad():
        row = head_row / head_row.norm() * embed.norm(dim=-1).mean() * params["factor"]
        embed[start] = row
        tokenizer.padding_side = "left"
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
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
            f" lm_head.weight[{eos}] ({params['eos']}); eos leads by >= {lead.min():.1f} on {len(texts)} held-out"
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


for _breakage in (
    Breakage("scales_corrupted", _corrupt_scales, {"module": "mlp.down_proj", "factor": 64.0}),
    Breakage("lost_eos", _lose_eos, {"fallback": "<|endoftext|>"}),
    Breakage("eos_flood", _flood_eos, {"eos": "<|im_end|>", "factor": 300.0, "min_margin": 2.0, "n_check": 16}),
    Breakage("no_chat_template", _lose_chat_template, {}),
):
    BREAKAGES.register(_breakage.name, _breakage)
