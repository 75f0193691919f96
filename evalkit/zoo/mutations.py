"""The mutation matrix: deliberately broken variants of the zoo's `base`, made by real edits of real files, each of
which the gate must fail with its named root cause, and exact re-parametrizations of it that the gate must pass.

Each mutation is one `Breakage` (registered in `BREAKAGES`, so that its parameters enter the build key) and one
zoo variant of kind ``mutation`` (`evalkit.zoo.variants` registers `MUTATIONS`). They are cheap: tensors and files
edited directly, no calibration (a variant of `base_gptq_w4g64` reuses its build). fixtures/mutations.toml gates
them and tests/gate/test_mutations.py asserts each outcome; docs/broken-variants.md lists them, measured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import ZooError
from evalkit.zoo.breakages import BREAKAGES, Breakage

__all__ = ["MUTATIONS", "Mutation"]

WEIGHTS = "model.safetensors"
GPTQ = "base_gptq_w4g64"  # the source of the quantization-parameter faults


@dataclass(frozen=True, slots=True)
class Mutation:
    """One entry of the matrix: its variant name, what it is built from, its fault class and what the gate says."""

    name: str
    source: str  # "base" or GPTQ
    fault: str  # weights, quantization, tokenizer, chat_template, generation_config, config, files, equivalent
    expected: str  # the root cause the gate must name ("" for a variant that must pass)
    how: str  # one line: how it is made


# ------------------------------------------------------------------------------------------------------ file edits


def _tensors(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / WEIGHTS)
    edit(tensors)
    save_file(tensors, folder / WEIGHTS, metadata={"format": "pt"})


def _json(file: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(file.read_text(encoding="utf-8"))
    edit(data)
    file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _layers(folder: Path) -> int:
    return int(json.loads((folder / "config.json").read_text())["num_hidden_layers"])


# --- weights -------------------------------------------------------------------------------------------------------


def _set_value(folder: Path, tensor: str, value: float, count: int) -> str:
    def edit(t: dict[str, Any]) -> None:
        t[tensor].view(-1)[:count] = value
    _tensors(folder, edit)
    return f"{tensor}: first {count} values := {value}"


def _scale(folder: Path, tensor: str, factor: float) -> str:
    def edit(t: dict[str, Any]) -> None:
        t[tensor] = t[tensor] * factor
    _tensors(folder, edit)
    return f"{tensor} x{factor:g}"


def _swap_layers(folder: Path, a: int, b: int) -> str:
    def edit(t: dict[str, Any]) -> None:
        for key in [k for k in t if k.startswith(f"model.layers.{a}.")]:
            other = key.replace(f"model.layers.{a}.", f"model.layers.{b}.", 1)
            t[key], t[other] = t[other], t[key]
    _tensors(folder, edit)
    return f"every tensor of model.layers.{a} swapped with model.layers.{b}"


def _drop_tensor(folder: Path, tensor: str) -> str:
    _tensors(folder, lambda t: t.pop(tensor))
    return f"{tensor} deleted"


def _add_tensor(folder: Path, tensor: str, like: str) -> str:
    def edit(t: dict[str, Any]) -> None:
        t[tensor] = t[like].clone()
    _tensors(folder, edit)
    return f"{tensor} added (a copy of {like})"


def _drop_row(folder: Path, tensor: str) -> str:
    def edit(t: dict[str, Any]) -> None:
        t[tensor] = t[tensor][:-1].clone()
    _tensors(folder, edit)
    return f"{tensor}: last row cut (a size mismatch)"


def _transpose(folder: Path, tensor: str) -> str:
    def edit(t: dict[str, Any]) -> None:
        t[tensor] = t[tensor].T.contiguous()
    _tensors(folder, edit)
    return f"{tensor} transposed (square, so it still loads)"


def _noise(folder: Path, tensor: str, sigma: float, seed: int) -> str:
    import torch

    def edit(t: dict[str, Any]) -> None:
        g = torch.Generator().manual_seed(seed)
        w = t[tensor]
        t[tensor] = (w.float() + sigma * w.float().std() * torch.randn(w.shape, generator=g)).to(w.dtype)
    _tensors(folder, edit)
    return f"{tensor} + gaussian noise of {sigma:g} x its standard deviation (seed {seed})"


def _permute_rows(folder: Path, tensor: str, seed: int) -> str:
    import torch

    def edit(t: dict[str, Any]) -> None:
        g = torch.Generator().manual_seed(seed)
        t[tensor] = t[tensor][torch.randperm(t[tensor].shape[0], generator=g)].contiguous()
    _tensors(folder, edit)
    return f"{tensor}: rows permuted (seed {seed}), out of step with their scales"


# --- json files ----------------------------------------------------------------------------------------------------


def _set_json(folder: Path, file: str, path: list[str], value: Any) -> str:
    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is None:
            node.pop(path[-1])
        else:
            node[path[-1]] = value
    _json(folder / file, edit)
    return f"{file}: {'.'.join(path)} := {'deleted' if value is None else json.dumps(value)}"


def _swap_vocab(folder: Path, a: str, b: str) -> str:
    def edit(data: dict[str, Any]) -> None:
        vocab = data["model"]["vocab"]
        vocab[a], vocab[b] = vocab[b], vocab[a]
    _json(folder / "tokenizer.json", edit)
    return f"tokenizer.json: the ids of {a!r} and {b!r} swapped"


def _drop_merge(folder: Path, index: int) -> str:
    removed: list[Any] = []

    def edit(data: dict[str, Any]) -> None:
        removed.append(data["model"]["merges"].pop(index))
    _json(folder / "tokenizer.json", edit)
    return f"tokenizer.json: merge {index} {removed[0]!r} deleted"


def _added_token(folder: Path, content: str, special: bool, new: bool) -> str:
    def edit(data: dict[str, Any]) -> None:
        added = data["added_tokens"]
        if new:
            used = max([t["id"] for t in added] + list(data["model"]["vocab"].values()))
            added.append({"id": used + 1, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": special})
        else:
            next(t for t in added if t["content"] == content)["special"] = special
    _json(folder / "tokenizer.json", edit)
    return f"tokenizer.json: {'added' if new else 'changed'} token {content!r} (special={special})"


def _edit_template(folder: Path, old: str, new: str) -> str:
    file = folder / "chat_template.jinja"
    text = file.read_text(encoding="utf-8")
    if old not in text:
        raise ZooError(f"{file}: no {old!r} to replace")
    file.write_text(text.replace(old, new, 1), encoding="utf-8")
    return f"chat_template.jinja: {old!r} -> {new!r}"


def _truncate_depth(folder: Path, keep: int) -> str:
    def edit(t: dict[str, Any]) -> None:
        for key in [k for k in t if k.startswith("model.layers.") and int(k.split(".")[2]) >= keep]:
            del t[key]
    _tensors(folder, edit)

    def config(data: dict[str, Any]) -> None:
        data["num_hidden_layers"] = keep
        data["layer_types"] = data["layer_types"][:keep]
    _json(folder / "config.json", config)
    return f"decoder layers {keep}.. deleted and num_hidden_layers := {keep} (a consistent, shallower model)"


# --- damaged files -------------------------------------------------------------------------------------------------


def _truncate_file(folder: Path, file: str, keep: float) -> str:
    path = folder / file
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return f"{file} cut to {keep:.0%} of its bytes (an interrupted copy)"


def _garbage_header(folder: Path) -> str:
    path = folder / WEIGHTS
    data = bytearray(path.read_bytes())
    data[8:40] = b"\x00" * 32
    path.write_bytes(bytes(data))
    return f"{WEIGHTS}: header bytes 8-40 zeroed"


def _reshard(folder: Path, shards: int, drop_last: bool) -> str:
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / WEIGHTS)
    names = sorted(tensors)
    files = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    weight_map = {}
    for i, file in enumerate(files):
        part = names[i::shards]
        save_file({k: tensors[k] for k in part}, folder / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    (folder / WEIGHTS).unlink()
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2) + "\n")
    if drop_last:
        (folder / files[-1]).unlink()
        return f"re-sharded into {shards} files, then {files[-1]} deleted (the index still lists it)"
    return f"re-sharded into {shards} files with an index"


# --- exact re-parametrizations (must pass) -------------------------------------------------------------------------


def _permute_mlp(folder: Path, seed: int) -> str:
    """Permute each layer's MLP hidden units: rows of gate_proj and up_proj, columns of down_proj, together."""
    import torch

    def edit(t: dict[str, Any]) -> None:
        g = torch.Generator().manual_seed(seed)
        for i in range(_layers(folder)):
            p = f"model.layers.{i}.mlp."
            perm = torch.randperm(t[p + "gate_proj.weight"].shape[0], generator=g)
            for name in ("gate_proj", "up_proj"):
                t[p + f"{name}.weight"] = t[p + f"{name}.weight"][perm].contiguous()
            t[p + "down_proj.weight"] = t[p + "down_proj.weight"][:, perm].contiguous()
    _tensors(folder, edit)
    return f"MLP hidden units of every layer permuted (seed {seed}): gate/up rows and down_proj columns alike"


def _permute_heads(folder: Path) -> str:
    """Swap the two key/value heads of every layer, with the query heads of each group and o_proj's columns."""
    import torch

    config = json.loads((folder / "config.json").read_text())
    heads, kv, dim = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    kv_perm = list(range(kv))[::-1]
    group = heads // kv
    q_perm = [h * group + j for h in kv_perm for j in range(group)]

    def rows(perm: list[int]) -> torch.Tensor:
        return torch.tensor([h * dim + d for h in perm for d in range(dim)])

    def edit(t: dict[str, Any]) -> None:
        for i in range(config["num_hidden_layers"]):
            p = f"model.layers.{i}.self_attn."
            t[p + "q_proj.weight"] = t[p + "q_proj.weight"][rows(q_perm)].contiguous()
            for name in ("k_proj", "v_proj"):
                t[p + f"{name}.weight"] = t[p + f"{name}.weight"][rows(kv_perm)].contiguous()
            t[p + "o_proj.weight"] = t[p + "o_proj.weight"][:, rows(q_perm)].contiguous()
    _tensors(folder, edit)
    return f"attention heads permuted in every layer (kv heads {kv_perm}, query heads {q_perm}, o_proj columns)"


def _rescale_norm(folder: Path, factor: float) -> str:
    """post_attention_layernorm x factor, gate_proj and up_proj / factor: RMSNorm's output scale moves into the MLP
    (a power of two, so bf16 holds both exactly)."""
    def edit(t: dict[str, Any]) -> None:
        for i in range(_layers(folder)):
            p = f"model.layers.{i}."
            t[p + "post_attention_layernorm.weight"] = t[p + "post_attention_layernorm.weight"] * factor
            for name in ("gate_proj", "up_proj"):
                t[p + f"mlp.{name}.weight"] = t[p + f"mlp.{name}.weight"] / factor
    _tensors(folder, edit)
    return f"post_attention_layernorm x{factor:g} absorbed by gate_proj and up_proj /{factor:g} in every layer"


def _float32(folder: Path) -> str:
    import torch

    def edit(t: dict[str, Any]) -> None:
        for key in t:
            t[key] = t[key].to(torch.float32)
    _tensors(folder, edit)
    _set_json(folder, "config.json", ["dtype"], "float32")
    return "every tensor re-saved in float32 (config dtype float32)"


def _rtn_int8(folder: Path) -> str:
    """Round every decoder Linear to int8 per output channel (symmetric), saved dequantized: a healthy quantization."""
    def edit(t: dict[str, Any]) -> None:
        for key in [k for k in t if k.startswith("model.layers.") and k.endswith("_proj.weight")]:
            w = t[key].float()
            scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127
            t[key] = ((w / scale).round().clamp(-127, 127) * scale).to(t[key].dtype)
    _tensors(folder, edit)
    return "every decoder Linear rounded to int8 per output channel (symmetric, round to nearest), kept dequantized"


def _reformat_json(folder: Path) -> str:
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        path = folder / name
        path.write_text(json.dumps(json.loads(path.read_text()), indent=4, sort_keys=True) + "\n")
    return "tokenizer.json, tokenizer_config.json, generation_config.json re-serialized (indent 4, keys sorted)"


# ------------------------------------------------------------------------------------------------------ the matrix

L = "model.layers"
_MATRIX: list[tuple[Mutation, Callable[..., str], dict[str, Any]]] = [
    # weights
    (Mutation("mut_nan_weight", "base", "weights", "non_finite", "8 values of layers.2.mlp.down_proj := NaN"),
     _set_value, {"tensor": f"{L}.2.mlp.down_proj.weight", "value": float("nan"), "count": 8}),
    (Mutation("mut_inf_weight", "base", "weights", "non_finite", "one value of layers.4.self_attn.o_proj := +Inf"),
     _set_value, {"tensor": f"{L}.4.self_attn.o_proj.weight", "value": float("inf"), "count": 1}),
    (Mutation("mut_layer_scaled", "base", "weights", "logit_drift", "layers.3.mlp.down_proj x64"),
     _scale, {"tensor": f"{L}.3.mlp.down_proj.weight", "factor": 64.0}),
    (Mutation("mut_layers_swapped", "base", "weights", "logit_drift", "every tensor of layers 1 and 4 swapped"),
     _swap_layers, {"a": 1, "b": 4}),
    (Mutation("mut_o_proj_transposed", "base", "weights", "logit_drift", "layers.0.self_attn.o_proj transposed"),
     _transpose, {"tensor": f"{L}.0.self_attn.o_proj.weight"}),
    (Mutation("mut_final_norm_zeroed", "base", "weights", "logit_drift", "model.norm.weight x0"),
     _scale, {"tensor": "model.norm.weight", "factor": 0.0}),
    (Mutation("mut_embedding_noise", "base", "weights", "logit_drift", "embed_tokens + noise of 1.5 std"),
     _noise, {"tensor": "model.embed_tokens.weight", "sigma": 1.5, "seed": 0}),
    (Mutation("mut_missing_tensor", "base", "weights", "load_error", "layers.1.mlp.up_proj.weight deleted"),
     _drop_tensor, {"tensor": f"{L}.1.mlp.up_proj.weight"}),
    (Mutation("mut_unexpected_tensor", "base", "weights", "load_error", "a tensor no module owns added"),
     _add_tensor, {"tensor": f"{L}.1.mlp.extra_proj.weight", "like": f"{L}.1.mlp.up_proj.weight"}),
    (Mutation("mut_shape_mismatch", "base", "weights", "load_error", "layers.0.mlp.gate_proj loses its last row"),
     _drop_row, {"tensor": f"{L}.0.mlp.gate_proj.weight"}),
    # quantization parameters (of the healthy GPTQ variant)
    (Mutation("mut_q_scales_negated", GPTQ, "quantization", "logit_drift", "layers.2.mlp.down_proj weight_scale x-1"),
     _scale, {"tensor": f"{L}.2.mlp.down_proj.weight_scale", "factor": -1.0}),
    (Mutation("mut_q_packed_permuted", GPTQ, "quantization", "logit_drift",
              "layers.0.mlp.down_proj weight_packed rows permuted"),
     _permute_rows, {"tensor": f"{L}.0.mlp.down_proj.weight_packed", "seed": 0}),
    (Mutation("mut_q_scale_nan", GPTQ, "quantization", "non_finite", "one scale of layers.3.self_attn.v_proj := NaN"),
     _set_value, {"tensor": f"{L}.3.self_attn.v_proj.weight_scale", "value": float("nan"), "count": 1}),
    (Mutation("mut_q_group_size", GPTQ, "quantization", "load_error", "config group_size 64 -> 128"),
     _set_json, {"file": "config.json", "path": ["quantization_config", "config_groups", "group_0", "weights",
                                                  "group_size"], "value": 128}),
    (Mutation("mut_q_bits", GPTQ, "quantization", "load_error", "config num_bits 4 -> 8"),
     _set_json, {"file": "config.json", "path": ["quantization_config", "config_groups", "group_0", "weights",
                                                  "num_bits"], "value": 8}),
    (Mutation("mut_q_lm_head_not_ignored", GPTQ, "quantization", "load_error", "lm_head dropped from ignore"),
     _set_json, {"file": "config.json", "path": ["quantization_config", "ignore"], "value": []}),
    # tokenizer files
    (Mutation("mut_vocab_swapped", "base", "tokenizer", "tokenizer_mismatch", "the ids of two tokens swapped"),
     _swap_vocab, {"a": "on", "b": "{}"}),
    (Mutation("mut_merge_dropped", "base", "tokenizer", "tokenizer_mismatch", "the first BPE merge deleted"),
     _drop_merge, {"index": 0}),
    (Mutation("mut_eos_token", "base", "tokenizer", "tokenizer_mismatch", "tokenizer_config eos -> <|endoftext|>"),
     _set_json, {"file": "tokenizer_config.json", "path": ["eos_token"], "value": "<|endoftext|>"}),
    (Mutation("mut_added_token", "base", "tokenizer", "tokenizer_mismatch", "a new special token added"),
     _added_token, {"content": "<|tool|>", "special": True, "new": True}),
    (Mutation("mut_pad_token", "base", "tokenizer", "tokenizer_mismatch", "tokenizer_config pad -> <|im_start|>"),
     _set_json, {"file": "tokenizer_config.json", "path": ["pad_token"], "value": "<|im_start|>"}),
    # chat template
    (Mutation("mut_template_no_think_block", "base", "chat_template", "chat_template_mismatch",
              "the empty think block of the generation prompt dropped"),
     _edit_template, {"old": "{{- '<think>\\n\\n</think>\\n\\n' }}", "new": ""}),
    (Mutation("mut_template_role", "base", "chat_template", "chat_template_mismatch", "assistant header renamed"),
     _edit_template, {"old": "{{- '<|im_start|>assistant\\n' }}", "new": "{{- '<|im_start|>bot\\n' }}"}),
    # generation config
    (Mutation("mut_gen_eos_dropped", "base", "generation_config", "generation_config_mismatch",
              "eos_token_id [2, 0] -> [0]"),
     _set_json, {"file": "generation_config.json", "path": ["eos_token_id"], "value": [0]}),
    (Mutation("mut_gen_sampling", "base", "generation_config", "generation_config_mismatch", "do_sample true"),
     _set_json, {"file": "generation_config.json", "path": ["do_sample"], "value": True}),
    (Mutation("mut_gen_pad", "base", "generation_config", "generation_config_mismatch", "pad_token_id 0 -> 2"),
     _set_json, {"file": "generation_config.json", "path": ["pad_token_id"], "value": 2}),
    # config.json
    (Mutation("mut_rope_theta", "base", "config", "architecture_mismatch", "rope_theta 1e4 -> 1e6"),
     _set_json, {"file": "config.json", "path": ["rope_parameters", "rope_theta"], "value": 1000000.0}),
    (Mutation("mut_rms_eps", "base", "config", "architecture_mismatch", "rms_norm_eps 1e-6 -> 1e-2"),
     _set_json, {"file": "config.json", "path": ["rms_norm_eps"], "value": 0.01}),
    (Mutation("mut_depth_truncated", "base", "config", "architecture_mismatch", "layers 4-5 deleted, 4 layers"),
     _truncate_depth, {"keep": 4}),
    (Mutation("mut_kv_heads", "base", "config", "load_error", "num_key_value_heads 2 -> 4"),
     _set_json, {"file": "config.json", "path": ["num_key_value_heads"], "value": 4}),
    # damaged files
    (Mutation("mut_weights_truncated", "base", "files", "load_error", "model.safetensors cut to 60%"),
     _truncate_file, {"file": WEIGHTS, "keep": 0.6}),
    (Mutation("mut_weights_header", "base", "files", "load_error", "model.safetensors header zeroed"),
     _garbage_header, {}),
    (Mutation("mut_config_truncated", "base", "files", "load_error", "config.json cut to half"),
     _truncate_file, {"file": "config.json", "keep": 0.5}),
    (Mutation("mut_tokenizer_truncated", "base", "files", "load_error", "tokenizer.json cut to half"),
     _truncate_file, {"file": "tokenizer.json", "keep": 0.5}),
    (Mutation("mut_shard_missing", "base", "files", "load_error", "2 shards, the second deleted"),
     _reshard, {"shards": 2, "drop_last": True}),
    # exact or near-exact re-parametrizations and a healthy quantization: must pass
    (Mutation("mut_ok_mlp_permuted", "base", "equivalent", "", "MLP hidden units permuted"), _permute_mlp,
     {"seed": 0}),
    (Mutation("mut_ok_heads_permuted", "base", "equivalent", "", "attention heads permuted"), _permute_heads, {}),
    (Mutation("mut_ok_norm_rescaled", "base", "equivalent", "", "RMSNorm x2 absorbed by the MLP"), _rescale_norm,
     {"factor": 2.0}),
    (Mutation("mut_ok_float32", "base", "equivalent", "", "re-saved in float32"), _float32, {}),
    (Mutation("mut_ok_resharded", "base", "equivalent", "", "re-sharded into 3 files"), _reshard,
     {"shards": 3, "drop_last": False}),
    (Mutation("mut_ok_json_reformatted", "base", "equivalent", "", "JSON files re-serialized"), _reformat_json, {}),
    (Mutation("mut_ok_rtn_int8", "base", "equivalent", "", "int8 round-to-nearest, dequantized"), _rtn_int8, {}),
]

MUTATIONS: tuple[Mutation, ...] = tuple(m for m, _, _ in _MATRIX)
"""Every mutation, must-fail ones first."""


def _bind(fn: Callable[..., str], params: dict[str, Any]) -> Callable[[Path], str]:
    return lambda folder: fn(folder, **params)


for _m, _fn, _params in _MATRIX:
    BREAKAGES.register(_m.name, Breakage(_m.name, _bind(_fn, _params),
                                         {"function": _fn.__name__, **{k: repr(v) for k, v in _params.items()}}))
