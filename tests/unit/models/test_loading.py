"""evalkit.loading: every format loads back through one function; every malformed folder fails with one clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from evalkit.models.fingerprint import fingerprint
from evalkit.models.loading import LoadedModel, ModelLoadError, detect_format, load_model
from tiny_models import tiny_lora, tiny_quantized, tiny_qwen3


def _ids(loaded: LoadedModel) -> torch.Tensor:
    turns = [{"role": "user", "content": "What is 12 + 30? Answer yes or no within \\boxed{}."}]
    return loaded.tokenizer.apply_chat_template(turns, add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)["input_ids"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(file: Path, **changes: object) -> None:
    data = json.loads(file.read_text())
    data.update(changes)
    file.write_text(json.dumps(data))


# ------------------------------------------------------------------------------------------------ plain


def test_plain_folder_loads_with_its_own_dtype_and_identity():
    loaded = load_model(tiny_qwen3())
    assert loaded.format == "plain" and detect_format(tiny_qwen3()) == "plain"
    assert loaded.fingerprint == fingerprint(tiny_qwen3())
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert loaded.has_chat_template and not loaded.model.training
    assert loaded.notes == ("weights bfloat16",)
    out = loaded.model.generate(_ids(loaded), max_new_tokens=3, do_sample=False)
    assert out.shape[1] == _ids(loaded).shape[1] + 3


def test_dtype_override():
    loaded = load_model(tiny_qwen3(), dtype="float32")
    assert next(loaded.model.parameters()).dtype == torch.float32
    with pytest.raises(ModelLoadError, match="not a torch dtype"):
        load_model(tiny_qwen3(), dtype="float33")


def test_lost_chat_template_and_eos_are_reported_not_fatal(tmp_path):
    folder = _copy(tiny_qwen3(), tmp_path / "m")
    (folder / "chat_template.jinja").unlink()
    _edit_json(folder / "generation_config.json", eos_token_id=None)
    loaded = load_model(folder)
    assert not loaded.has_chat_template
    assert any("no chat template" in n for n in loaded.notes)
    assert any("no eos_token_id" in n for n in loaded.notes)


# -------------------------------------------------------------------------------------------- malformed
# One case per way a folder can be broken; each must give one ModelLoadError naming the thing and the fix.


def _missing_config(f: Path) -> None:
    (f / "config.json").unlink()


def _truncated_safetensors(f: Path) -> None:
    data = (f / "model.safetensors").read_bytes()
    (f / "model.safetensors").write_bytes(data[: len(data) // 2])


def _garbage_safetensors(f: Path) -> None:
    (f / "model.safetensors").write_bytes(b"\xff" * 64)


def _unknown_quant_method(f: Path) -> None:
    _edit_json(f / "config.json", quantization_config={"quant_method": "mystery-q", "bits": 3})


def _pickle_only(f: Path) -> None:
    from safetensors.torch import load_file

    torch.save(load_file(f / "model.safetensors"), f / "pytorch_model.bin")
    (f / "model.safetensors").unlink()


def _no_weights(f: Path) -> None:
    (f / "model.safetensors").unlink()


def _missing_shard(f: Path) -> None:
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
    (f / "model.safetensors.index.json").write_text(json.dumps(index))


def _invalid_json(f: Path) -> None:
    (f / "config.json").write_text("{not json")


def _no_tokenizer(f: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (f / name).unlink()


def _remote_code(f: Path) -> None:
    _edit_json(f / "config.json", auto_map={"AutoModelForCausalLM": "modeling_custom.Custom"}, model_type="custom")


def _tensor_missing(f: Path) -> None:
    _edit_tensors(f, lambda t: t.pop("model.layers.0.mlp.up_proj.weight"))


def _tensor_unexpected(f: Path) -> None:
    _edit_tensors(f, lambda t: t.update({"model.layers.0.mlp.extra.weight": t["model.norm.weight"].clone()}))


def _tensor_size_mismatch(f: Path) -> None:
    _edit_tensors(f, lambda t: t.update({"model.layers.0.mlp.gate_proj.weight":
                                         t["model.layers.0.mlp.gate_proj.weight"][:-1].clone()}))


def _edit_tensors(f: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(f / "model.safetensors")
    edit(tensors)
    save_file(tensors, f / "model.safetensors", metadata={"format": "pt"})


MALFORMED = {
    # issue 12: transformers' load report is an error naming the keys, never a random initialization
    "a tensor missing": (_tensor_missing, r"missing \(randomly initialized\): model\.layers\.0\.mlp\.up_proj\.weight"),
    "an unexpected tensor": (_tensor_unexpected, r"unexpected \(ignored\): model\.layers\.0\.mlp\.extra\.weight"),
    "a tensor of another size": (_tensor_size_mismatch,
                                 r"size mismatch: model\.layers\.0\.mlp\.gate_proj\.weight \(checkpoint \(511, 256\)"),
    "missing config": (_missing_config, r"no config\.json.*save_pretrained"),
    "truncated safetensors": (_truncated_safetensors, r"model\.safetensors: truncated.*re-copy"),
    "garbage safetensors": (_garbage_safetensors, r"not a valid safetensors file"),
    "unknown quant_method": (_unknown_quant_method, r"quant_method 'mystery-q'.*supported"),
    "weights only as pickle": (_pickle_only, r"weights only as pickle \(pytorch_model\.bin\).*safe_serialization"),
    "no weights": (_no_weights, r"no weights.*copy the weight files"),
    "index lists a missing shard": (_missing_shard, r"model-00002-of-00002\.safetensors.*not in the folder"),
    "config is not JSON": (_invalid_json, r"config\.json: not valid JSON"),
    "no tokenizer": (_no_tokenizer, r"no tokenizer.*save_pretrained"),
    "needs remote code": (_remote_code, r"custom code \(trust_remote_code\)|could not load"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_folder_gives_one_clear_error(tmp_path, case):
    damage, message = MALFORMED[case]
    folder = _copy(tiny_qwen3(), tmp_path / "m")
    damage(folder)
    with pytest.raises(ModelLoadError, match=message) as err:
        load_model(folder)
    assert str(folder) in str(err.value)


def test_missing_and_non_folder_paths(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelLoadError, match="not a folder"):
        detect_format(tmp_path / "file")


# ------------------------------------------------------------------------------------------------- adapters


def test_lora_adapter_loads_on_its_base_and_changes_outputs():
    base = load_model(tiny_qwen3(), dtype="float32")
    adapter = load_model(tiny_lora(), dtype="float32")
    assert adapter.format == "peft-lora" and adapter.base == tiny_qwen3().resolve()
    assert adapter.fingerprint not in (fingerprint(tiny_lora()), base.fingerprint)
    assert "LoRA adapter applied unmerged" in adapter.notes
    with torch.no_grad():
        diff = (adapter.model(_ids(adapter)).logits - base.model(_ids(base)).logits).abs().max()
    assert diff > 1e-3


def test_adapter_without_its_base(tmp_path):
    folder = _copy(tiny_lora(), tmp_path / "adapter")
    _edit_json(folder / "adapter_config.json", base_model_name_or_path="Qwen/Qwen3-0.6B")
    with pytest.raises(ModelLoadError, match=r"adapter without its base.*'Qwen/Qwen3-0.6B'.*base="):
        load_model(folder)
    assert load_model(folder, base=tiny_qwen3()).format == "peft-lora"  # the fix the message names


def test_adapter_base_relative_to_adapter_folder(tmp_path):
    _copy(tiny_qwen3(), tmp_path / "base")
    folder = _copy(tiny_lora(), tmp_path / "adapter")
    _edit_json(folder / "adapter_config.json", base_model_name_or_path="../base")
    assert load_model(folder).base == (tmp_path / "base").resolve()


def test_adapter_on_a_quantized_base_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match=r"'compressed-tensors' folder; a LoRA adapter needs a plain"):
        load_model(tiny_lora(), base=tiny_quantized("gptq-w4g64"))


@pytest.mark.parametrize(("files", "match"), [
    ({"adapter_model.safetensors": "adapter_model-renamed.safetensors"},
     r"no adapter_model\.safetensors .*found adapter_model-renamed\.safetensors, adapter_model\.bin: rename"),
    ({"adapter_model.safetensors": "adapter_model.bin"}, r"adapter weights only as pickle \(adapter_model\.bin\)"),
])
def test_adapter_weights_load_only_from_adapter_model_safetensors(tmp_path, files, match):
    """peft reads adapter_model.safetensors, else unpickles adapter_model.bin: any other name is refused."""
    folder = _copy(tiny_lora(), tmp_path / "adapter")
    for old, new in files.items():
        (folder / old).rename(folder / new)
    if "adapter_model-renamed.safetensors" in files.values():  # the pickle peft would have fallen back to
        from safetensors.torch import load_file

        torch.save(load_file(folder / "adapter_model-renamed.safetensors"), folder / "adapter_model.bin")
    with pytest.raises(ModelLoadError, match=match):
        load_model(folder, base=tiny_qwen3())


def test_non_lora_adapter_is_refused(tmp_path):
    folder = _copy(tiny_lora(), tmp_path / "adapter")
    _edit_json(folder / "adapter_config.json", peft_type="PREFIX_TUNING")
    with pytest.raises(ModelLoadError, match="LoRA adapters only"):
        detect_format(folder)


# ------------------------------------------------------------------------------------------- bitsandbytes


def test_qlora_adapter_loads_on_an_nf4_base_with_bf16_head(tmp_path):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    folder = _copy(tiny_lora(), tmp_path / "qlora")
    spec = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16",
            "llm_int8_skip_modules": ["lm_head"]}
    (folder / "provenance.json").write_text(json.dumps({"base_quantization": spec}))
    assert detect_format(folder) == "bnb-nf4"
    loaded = load_model(folder)
    inner = loaded.model.get_base_model()
    assert isinstance(inner.model.layers[0].mlp.down_proj.base_layer, bnb.nn.Linear4bit)
    assert isinstance(inner.lm_head, torch.nn.Linear) and inner.lm_head.weight.dtype == torch.bfloat16
    assert any("nf4" in n and "lm_head" in n for n in loaded.notes)
    with torch.no_grad():
        assert torch.isfinite(loaded.model(_ids(loaded)).logits).all()


def test_saved_nf4_folder_loads(tmp_path):
    pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3(), quantization_config=config, device_map={"": "cpu"})
    model.save_pretrained(tmp_path / "nf4")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny_qwen3() / name, tmp_path / "nf4" / name)
    loaded = load_model(tmp_path / "nf4")
    assert loaded.format == "bnb-nf4" and any("nf4" in n for n in loaded.notes)


# --------------------------------------------------------------------------------------- compressed-tensors


def test_gptq_variant_loads_as_compressed_tensors():
    loaded = load_model(tiny_quantized("gptq-w4g64"))
    assert loaded.format == "compressed-tensors"
    assert loaded.notes[0] == "weights int4 sym group 64 [28 modules]"
    assert not any("activation" in n for n in loaded.notes)


def _per_token_int8(x: torch.Tensor) -> torch.Tensor:
    """Symmetric dynamic per-token int8 quantize-dequantize, written out independently of compressed-tensors
    (int8's 255 steps centred on zero: scale = max|x| / 127.5 per token; arithmetic in the activation dtype)."""
    scale = x.abs().amax(dim=-1, keepdim=True) / 127.5
    q = torch.clamp(torch.round(x / scale), -128, 127)
    return q * scale


def test_w8a8_keeps_activation_quantization_active_at_eval_time():
    """W8A8 must not silently become a weights-only model: each Linear's input goes through dynamic per-token int8."""
    loaded = load_model(tiny_quantized("smoothquant-w8a8"))
    assert any("activation quantization active (int8 sym token dynamic)" in n for n in loaded.notes)
    proj = loaded.model.model.layers[1].mlp.down_proj
    seen: dict[str, torch.Tensor] = {}
    handle = proj.register_forward_hook(lambda m, args, out: seen.update(x=args[0], y=out))
    with torch.no_grad():
        with_acts = loaded.model(_ids(loaded)).logits.float()
    handle.remove()
    # the module's output is exactly linear(QDQ_int8_per_token(x), W): activation quantization ran
    expected = torch.nn.functional.linear(_per_token_int8(seen["x"]), proj.weight)
    assert torch.equal(seen["y"], expected)
    assert not torch.equal(seen["y"], torch.nn.functional.linear(seen["x"], proj.weight))
    # and it matters end to end: the same weights with input quantization switched off give other logits
    schemes = {id(m.quantization_scheme): m.quantization_scheme for m in loaded.model.modules()
               if getattr(m, "quantization_scheme", None) is not None}
    saved = {key: scheme.input_activations for key, scheme in schemes.items()}
    try:
        for scheme in schemes.values():
            scheme.input_activations = None
        with torch.no_grad():
            weights_only = loaded.model(_ids(loaded)).logits.float()
    finally:
        for key, scheme in schemes.items():
            scheme.input_activations = saved[key]
    assert (with_acts - weights_only).abs().max() > 1e-3


def test_transformers_run_compressed_on_cpu_decompresses_on_first_forward_and_keeps_activation_quant():
    """What transformers' compressed-tensors integration does with the default (run compressed, dequantize=False)
    on CPU: int8 weights stay packed until the first forward, a hook then decompresses every layer to bf16, and the
    input activations are still fake-quantized, so the logits equal evalkit's load-time-decompressed path."""
    from transformers import AutoModelForCausalLM

    folder = tiny_quantized("smoothquant-w8a8")
    ours = load_model(folder)
    default = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    proj = default.model.layers[0].self_attn.q_proj
    assert str(proj.quantization_status.value) == "compressed" and proj.weight.dtype == torch.int8
    with torch.no_grad():
        logits = default(_ids(ours)).logits
        assert torch.equal(logits, ours.model(_ids(ours)).logits)
    assert str(proj.quantization_status.value) == "decompressed" and proj.weight.dtype == torch.bfloat16
    assert proj.quantization_scheme.input_activations is not None


# ------------------------------------------------------------------------------------------ optional backends


def _legacy_folder(tmp_path: Path, method: str) -> Path:
    folder = _copy(tiny_qwen3(), tmp_path / method)
    _edit_json(folder / "config.json", quantization_config={"quant_method": method, "bits": 4, "group_size": 128})
    return folder


@pytest.mark.parametrize(("method", "fmt"), [("gptq", "gptq-legacy"), ("awq", "awq-legacy")])
def test_legacy_formats_are_detected(tmp_path, method, fmt):
    assert detect_format(_legacy_folder(tmp_path, method)) == fmt


def test_legacy_gptq_without_backend_names_the_extra(tmp_path):
    import importlib.util

    if importlib.util.find_spec("gptqmodel") and importlib.util.find_spec("optimum"):
        pytest.skip("gptqmodel and optimum are installed")
    with pytest.raises(ModelLoadError, match=r"pip install 'evalkit\[legacy-gptq\]'"):
        load_model(_legacy_folder(tmp_path, "gptq"))


def test_legacy_awq_without_backend_names_the_extras(tmp_path):
    import importlib.util

    if importlib.util.find_spec("gptqmodel") or importlib.util.find_spec("awq"):
        pytest.skip("an AWQ backend is installed")
    with pytest.raises(ModelLoadError, match=r"evalkit\[legacy-gptq\].*evalkit\[legacy-awq\]"):
        load_model(_legacy_folder(tmp_path, "awq"))


def _autogptq_folder(source: Path, out: Path, dequantized: Path, group: int = 64) -> Path:
    """An AutoGPTQ v1 folder made directly from tensors (round-to-nearest int4, symmetric): packed qweight, qzeros,
    scales and g_idx, a config.json without quantization_config and quantize_config.json beside it, as AutoGPTQ
    saved them; `dequantized` gets the same weights unpacked, as a plain folder (what loading must reproduce)."""
    from safetensors.torch import load_file, save_file

    packed, plain = {}, {}
    for key, w in load_file(source / "model.safetensors").items():
        if not (key.startswith("model.layers.") and key.endswith("_proj.weight")):
            packed[key] = plain[key] = w
            continue
        out_f, in_f = w.shape
        scale = (w.float().reshape(out_f, in_f // group, group).abs().amax(-1) / 7).clamp(min=1e-8).half()
        q = (w.float().reshape(out_f, in_f // group, group) / scale.float()[..., None]).round().clamp(-8, 7) + 8
        plain[key] = ((q - 8) * scale.float()[..., None]).reshape(out_f, in_f).to(w.dtype)
        q_t = q.reshape(out_f, in_f).T.to(torch.int32)  # [in, out]
        base = key.removesuffix(".weight")
        packed[base + ".qweight"] = sum(((q_t[b::8] & 0xF) << (4 * b) for b in range(8)),
                                        torch.zeros(in_f // 8, out_f, dtype=torch.int32))
        zeros = torch.full((in_f // group, out_f), 7, dtype=torch.int32)  # v1 stores zero point 8 as 8 - 1
        packed[base + ".qzeros"] = sum(((zeros[:, b::8] & 0xF) << (4 * b) for b in range(8)),
                                       torch.zeros(in_f // group, out_f // 8, dtype=torch.int32))
        packed[base + ".scales"] = scale.T.contiguous()
        packed[base + ".g_idx"] = torch.arange(in_f, dtype=torch.int32) // group
    for folder, tensors in ((out, packed), (dequantized, plain)):
        _copy(source, folder)
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    (out / "quantize_config.json").write_text(json.dumps({"bits": 4, "group_size": group, "desc_act": False,
                                                          "sym": True, "model_file_base_name": "model"}))
    return out


def test_an_autogptq_folder_without_gptqmodel_is_one_clear_error_never_random_weights(tmp_path):
    import importlib.util

    folder = _autogptq_folder(tiny_qwen3(), tmp_path / "autogptq", tmp_path / "dequantized")
    assert detect_format(folder) == "gptq-legacy"
    if importlib.util.find_spec("gptqmodel") and importlib.util.find_spec("optimum"):
        pytest.skip("gptqmodel and optimum are installed")
    with pytest.raises(ModelLoadError, match=r"legacy GPTQ checkpoint needs the optional package 'gptqmodel'"):
        load_model(folder)
    (folder / "quantize_config.json").unlink()  # as a plain folder its packed tensors are all unexpected
    with pytest.raises(ModelLoadError, match=r"missing \(randomly initialized\): .*unexpected \(ignored\): "):
        load_model(folder)


def test_an_autogptq_folder_loads_with_its_real_weights(tmp_path, monkeypatch):
    """The side-file folder (config.json without quantization_config) loads packed: its logits are those of the
    same weights unpacked, not of a random model."""
    _gptqmodel_or_skip(monkeypatch)
    monkeypatch.chdir(tmp_path)
    folder = _autogptq_folder(tiny_qwen3(), tmp_path / "autogptq", tmp_path / "dequantized")
    loaded, reference = load_model(folder, dtype="float32"), load_model(tmp_path / "dequantized", dtype="float32")
    assert loaded.format == "gptq-legacy"
    with torch.no_grad():
        mine, theirs = (m.model(_ids(reference)).logits.float() for m in (loaded, reference))
    assert torch.nn.functional.cosine_similarity(mine.flatten(), theirs.flatten(), dim=0) > 0.99


def _gptqmodel_or_skip(monkeypatch):
    import importlib.util

    if not (importlib.util.find_spec("gptqmodel") and importlib.util.find_spec("optimum")):
        pytest.skip("legacy checkpoints need gptqmodel + optimum: pip install 'evalkit[legacy-gptq]'")
    monkeypatch.setenv("GPTQMODEL_CPU_WORKERS", "2")  # gptqmodel refuses a 1-worker CPU pool when torch has 1 thread


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_legacy_checkpoint_made_by_gptqmodel_loads(tmp_path, monkeypatch, method):
    """A real legacy checkpoint (gptqmodel's GPTQ v1 / AWQ GEMM packing) loads through transformers + gptqmodel."""
    _gptqmodel_or_skip(monkeypatch)
    monkeypatch.chdir(tmp_path)  # gptqmodel writes its quantization logs to ./logs
    from gptqmodel import BACKEND, GPTQModel, QuantizeConfig
    from gptqmodel.quantization.config import FORMAT, METHOD

    from evalkit.models.quantization import calibration_items, calibration_texts
    from tiny_models import make_tiny_qwen3

    source = make_tiny_qwen3(tmp_path / "src", layers=1)
    texts = calibration_texts(calibration_items(4), load_model(source).tokenizer)
    if method == "gptq":
        config, backend = QuantizeConfig(bits=4, group_size=64), BACKEND.AUTO
    else:  # gptqmodel packs AWQ GEMM on CPU only through its torch kernel
        config = QuantizeConfig(bits=4, group_size=128, quant_method=METHOD.AWQ, format=FORMAT.GEMM)
        backend = BACKEND.TORCH_AWQ
    model = GPTQModel.load(str(source), config, device="cpu", backend=backend)
    model.quantize(texts, batch_size=1, backend=backend)
    model.save(str(tmp_path / method))
    loaded = load_model(tmp_path / method)
    assert loaded.format == f"{method}-legacy"
    assert "kernels from gptqmodel" in loaded.notes[0]
    with torch.no_grad():
        assert torch.isfinite(loaded.model(_ids(loaded)).logits).all()
