"""What a variant shares with its parent by construction: tokenizer, chat template, generation config, architecture.

A variant that differs from its parent in any of these is broken before it generates a token, whatever its scores
say: another tokenizer maps the same prompt to other ids, another template or generation config asks or stops it
differently, another architecture is another model. `describe` reads the loaded model and tokenizer (the edge);
`compare` is pure and returns one `Difference` per artifact that differs, with the first differing item shown.

Fields that may differ by construction are ignored, explicitly (docs/gate.md lists them): in config.json the
quantization block, the dtype and the library version; in the generation config the library version.

>>> parent = Artifacts(vocab={"a": 0, "b": 1}, architecture={"num_hidden_layers": 6})
>>> variant = Artifacts(vocab={"a": 0, "c": 1}, architecture={"num_hidden_layers": 4})
>>> [(d.diagnosis, d.detail) for d in compare(variant, parent)]  # doctest: +NORMALIZE_WHITESPACE
[('architecture_mismatch', "config.json num_hidden_layers: 4, the parent's 6"),
 ('tokenizer_mismatch', "vocabulary: id 1 is 'c', the parent's 'b' (2 vs 2 tokens, 1 ids differ)")]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ARTIFACT_DIAGNOSES", "IGNORED_CONFIG_FIELDS", "IGNORED_GENERATION_FIELDS", "Artifacts", "Difference",
           "compare", "compare_prompts", "describe", "first_difference"]

IGNORED_CONFIG_FIELDS = frozenset({
    "quantization_config",  # a quantized variant adds it: what it is, not what it must share
    "dtype", "torch_dtype",  # the storage dtype (bf16 parent, fp32 re-save, int4 packed)
    "transformers_version", "_name_or_path", "name_or_path", "_commit_hash", "_attn_implementation_autoset",
    "_experts_implementation", "use_cache", "architectures",  # a loaded LoRA model reports no architectures
})
"""config.json fields that may differ between a variant and its parent by construction."""
IGNORED_GENERATION_FIELDS = frozenset({"transformers_version", "_from_model_config", "_commit_hash"})
"""generation_config.json fields that may differ by construction."""
ARTIFACT_DIAGNOSES = ("architecture_mismatch", "tokenizer_mismatch", "no_chat_template", "chat_template_mismatch",
                      "generation_config_mismatch", "prompt_mismatch")
"""The root causes an artifact difference is named by, root causes first (a prompt differs because of the rest)."""


@dataclass(frozen=True, slots=True)
class Artifacts:
    """A model's artifacts, as plain data: what `compare` reads."""

    vocab: Mapping[str, int] = field(default_factory=dict)  # token -> id, added tokens included
    merges: tuple[str, ...] = ()  # BPE merges, in order
    special: Mapping[str, str] = field(default_factory=dict)  # role (eos_token, pad_token, ...) -> token
    added: Mapping[int, str] = field(default_factory=dict)  # id -> "token (special)" for every added token
    pipeline: Mapping[str, str] = field(default_factory=dict)  # normalizer, pre_tokenizer, ... as canonical JSON
    chat_template: str | None = None
    generation: Mapping[str, Any] = field(default_factory=dict)  # generation config, ignored fields removed
    architecture: Mapping[str, Any] = field(default_factory=dict)  # config.json, ignored fields removed


@dataclass(frozen=True, slots=True)
class Difference:
    """One artifact that differs from the parent's: the root cause's name, and the first differing item."""

    diagnosis: str  # one of ARTIFACT_DIAGNOSES
    detail: str

    def __str__(self) -> str:
        return f"{self.diagnosis}: {self.detail}"


# ------------------------------------------------------------------------------------------------------ the edge


def describe(model: Any, tokenizer: Any) -> Artifacts:
    """The artifacts of a loaded model (a transformers or peft model) and its tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = json.loads(backend.to_str()) if backend is not None else {}
    merges = state.get("model", {}).get("merges") or []
    pipeline = {k: json.dumps(state.get(k), sort_keys=True) for k in ("normalizer", "pre_tokenizer",
                                                                       "post_processor", "decoder")}
    special = {role: str(value) for role, value in (getattr(tokenizer, "special_tokens_map", None) or {}).items()}
    added = {int(i): f"{t.content}{' (special)' if t.special else ''}"
             for i, t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items()}
    config = getattr(model, "config", None)
    gen = getattr(model, "generation_config", None)
    generation = gen.to_diff_dict() if gen is not None else {}
    return Artifacts(
        vocab=dict(tokenizer.get_vocab()), merges=tuple(" ".join(m) if isinstance(m, list) else str(m) for m in merges),
        special=special, added=added, pipeline=pipeline, chat_template=getattr(tokenizer, "chat_template", None) or None,
        generation={k: _eos_set(k, v) for k, v in generation.items() if k not in IGNORED_GENERATION_FIELDS},
        architecture={k: v for k, v in (config.to_dict() if config is not None else {}).items()
                      if k not in IGNORED_CONFIG_FIELDS})


def _eos_set(key: str, value: Any) -> Any:
    """eos_token_id as a sorted list: [2, 0] and [0, 2] stop generation alike."""
    if key == "eos_token_id" and value is not None:
        return sorted(value) if isinstance(value, list) else [value]
    return value


# ------------------------------------------------------------------------------------------------------ pure


def compare(mine: Artifacts, theirs: Artifacts) -> tuple[Difference, ...]:
    """Every artifact of `mine` that differs from `theirs` (the parent's), root causes first."""
    out = []
    arch = first_difference(mine.architecture, theirs.architecture)
    if arch:
        out.append(Difference("architecture_mismatch", f"config.json {arch}"))
    tok = _tokenizer_difference(mine, theirs)
    if tok:
        out.append(Difference("tokenizer_mismatch", tok))
    if mine.chat_template != theirs.chat_template:
        if mine.chat_template is None:
            out.append(Difference("no_chat_template", "the model has no chat template; the parent has one"))
        else:
            out.append(Difference("chat_template_mismatch", "chat template " + _text_difference(
                mine.chat_template, theirs.chat_template or "")))
    gen = first_difference(mine.generation, theirs.generation)
    if gen:
        out.append(Difference("generation_config_mismatch", f"generation_config {gen}"))
    return tuple(out)


def compare_prompts(mine: Sequence[tuple[str, str, Sequence[int]]], theirs: Sequence[tuple[str, str, Sequence[int]]]
                    ) -> Difference | None:
    """The first item whose rendered prompt (item id, text, token ids) differs from the parent's, or None.

    >>> compare_prompts([("0", "Q: 1", [5, 6])], [("0", "Q: 1", [5, 7])]).detail
    "1 of 1 prompts differ; first item 0: same text, token 1 is 6, the parent's 7 (2 vs 2 tokens)"
    """
    theirs_by_id = {item: (text, list(ids)) for item, text, ids in theirs}
    differ = [(item, text, list(ids)) for item, text, ids in mine if theirs_by_id.get(item) != (text, list(ids))]
    if not differ:
        return None
    item, text, ids = differ[0]
    if item not in theirs_by_id:
        return Difference("prompt_mismatch", f"item {item} has no parent prompt")
    ptext, pids = theirs_by_id[item]
    head = f"{len(differ)} of {len(mine)} prompts differ; first item {item}: "
    if text != ptext:
        return Difference("prompt_mismatch", head + "text " + _text_difference(text, ptext))
    k = next((i for i, (a, b) in enumerate(zip(ids, pids)) if a != b), min(len(ids), len(pids)))
    mine_k, theirs_k = (ids[k] if k < len(ids) else "nothing"), (pids[k] if k < len(pids) else "nothing")
    return Difference("prompt_mismatch", head + f"same text, token {k} is {mine_k}, the parent's {theirs_k} "
                                                f"({len(ids)} vs {len(pids)} tokens)")


def first_difference(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> str:
    """The first key whose value differs (the architecture's and generation's main fields first, then by name), as
    one line ("" when none does).

    >>> first_difference({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4})
    "b: 2, the parent's 3 (2 fields differ: b, c)"
    """
    keys = sorted((k for k in set(mine) | set(theirs) if mine.get(k, _ABSENT) != theirs.get(k, _ABSENT)),
                  key=lambda k: (_PRIORITY.get(k, len(_PRIORITY)), k))
    if not keys:
        return ""
    k = keys[0]
    more = f" ({len(keys)} fields differ: {', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})" if len(keys) > 1 \
        else ""
    return f"{k}: {_show(mine.get(k, _ABSENT))}, the parent's {_show(theirs.get(k, _ABSENT))}{more}"


_PRIORITY = {k: i for i, k in enumerate((
    "model_type", "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
    "head_dim", "vocab_size", "rope_parameters", "rope_theta", "rope_scaling", "tie_word_embeddings",
    "eos_token_id", "pad_token_id", "bos_token_id", "do_sample", "temperature", "top_p", "top_k"))}
"""The fields a difference is shown by first, when several differ (the rest in name order)."""


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _tokenizer_difference(mine: Artifacts, theirs: Artifacts) -> str:
    if mine.vocab != theirs.vocab:
        by_id_m = {i: t for t, i in mine.vocab.items()}
        by_id_t = {i: t for t, i in theirs.vocab.items()}
        ids = sorted(i for i in set(by_id_m) | set(by_id_t) if by_id_m.get(i) != by_id_t.get(i))
        i = ids[0]
        return (f"vocabulary: id {i} is {by_id_m.get(i, 'absent')!r}, the parent's {by_id_t.get(i, 'absent')!r} "
                f"({len(mine.vocab)} vs {len(theirs.vocab)} tokens, {len(ids)} ids differ)")
    if mine.merges != theirs.merges:
        k = next((i for i, (a, b) in enumerate(zip(mine.merges, theirs.merges)) if a != b),
                 min(len(mine.merges), len(theirs.merges)))
        at = lambda m: repr(m[k]) if k < len(m) else "absent"  # noqa: E731
        return (f"merges: merge {k} is {at(mine.merges)}, the parent's {at(theirs.merges)} "
                f"({len(mine.merges)} vs {len(theirs.merges)} merges)")
    for label, a, b in (("special tokens", mine.special, theirs.special),
                        ("added tokens", {str(k): v for k, v in mine.added.items()},
                         {str(k): v for k, v in theirs.added.items()}),
                        ("tokenizer pipeline", mine.pipeline, theirs.pipeline)):
        diff = first_difference(a, b)
        if diff:
            return f"{label}: {diff}"
    return ""


def _text_difference(mine: str, theirs: str) -> str:
    """Where two texts part: the character offset and a few characters of each from there."""
    k = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
    return (f"differs from character {k}: {mine[max(0, k - 10): k + 30]!r}, the parent's "
            f"{theirs[max(0, k - 10): k + 30]!r} ({len(mine)} vs {len(theirs)} characters)")
