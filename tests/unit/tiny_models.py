"""Test helper: tiny randomly initialised Qwen3 models with an offline word-level tokenizer and a chat template,
saved as real HF folders (safetensors, config, tokenizer, chat template, generation config).

The fixture zoo (fixtures/zoo/) holds trained models; these random ones exercise the plumbing in about a second.
Two sizes: `save_tiny`'s default (hidden 32, 2 layers, float32, tied embeddings) for generation, engine and drift
tests; `make_tiny_qwen3` (hidden 256, bf16, untied, plain ChatML) for quantization, loading and the tiny zoo, because
llmcompressor's group sizes (64, 128) must divide the hidden size and the zoo's eos-flood edit refuses tied
embeddings. Their answers are noise; every code path is the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_TURNS = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
CHAT_TEMPLATE = (
    _TURNS + "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
"""Qwen3's switch: with thinking off, the generation prompt ends in an empty think block."""
CHATML_TEMPLATE = _TURNS + "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
"""Plain ChatML: the generation prompt ends at 'assistant\n', as the tiny zoo's hand-written prompts do
(test_zoo_build's eos-flood check edits the embedding of the generation prompt's last token)."""
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EXTRA = ["<think>", "</think>"]  # added but not special, as in Qwen3
WORDS = (
    "user assistant system the a is of and to in what which answer yes no true false question passage option "
    "letter correct within "
    "boxed please reason step by put your final sky blue green red number sum plus minus times equals if does not "
    "contain span copied from with short or . , ? : \\ { } ( ) = + - * / 0 1 2 3 4 5 6 7 8 9 A B C D E"
).split()


def build_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    """A PreTrainedTokenizerFast over a small word-level vocabulary; unknown words map to [UNK]. Word-level, so
    decoding and re-encoding a generation gives back the same ids (the eos tests rely on it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["[UNK]", *SPECIALS, *EXTRA, "\n", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", behavior="isolated"), pre_tokenizers.WhitespaceSplit()]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.add_tokens(EXTRA)
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


@dataclass
class Tiny:
    """Stands in for loading.LoadedModel in the engine's tests."""

    model: object
    tokenizer: object
    path: Path
    fingerprint: str
    format: str = "hf"
    notes: tuple[str, ...] = ()


def build_model(vocab_size: int, *, layers: int = 2, hidden: int = 32, seed: int = 0, eos_id: int | None = None,
                tie: bool = True):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=512,
        tie_word_embeddings=tie,
        eos_token_id=eos_id,
        pad_token_id=0,
    )
    model = Qwen3ForCausalLM(config).eval()
    return model


def save_tiny(folder: Path, *, seed: int = 0, layers: int = 2, hidden: int = 32, dtype: str = "float32",
              tie: bool = True, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """Build and save a tiny random Qwen3 with its tokenizer to `folder`; returns the folder."""
    import torch

    tok = build_tokenizer(chat_template)
    model = build_model(len(tok), layers=layers, hidden=hidden, seed=seed, eos_id=tok.eos_token_id, tie=tie)
    model = model.to(getattr(torch, dtype))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def load_tiny(folder: Path, fingerprint: str | None = None) -> Tiny:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False, use_safetensors=True).eval()
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    return Tiny(model=model, tokenizer=tok, path=Path(folder), fingerprint=fingerprint or f"tiny:{Path(folder).name}")


def truncate_depth(folder: Path, keep: int) -> Path:
    """Keep only the first `keep` decoder layers of a saved folder, consistently (tensors and config.json): a
    shallower model that loads cleanly, sharing its first layers with the original."""
    import json

    from safetensors.torch import load_file, save_file

    tensors = {k: v for k, v in load_file(folder / "model.safetensors").items()
               if not (k.startswith("model.layers.") and int(k.split(".")[2]) >= keep)}
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"], config["layer_types"] = keep, config["layer_types"][:keep]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def make_tiny_qwen3(path: Path, *, seed: int = 0, layers: int = 4) -> Path:
    """The quantizable size (hidden 256, ~2.4M parameters with 4 layers, bf16, untied lm_head, ChatML template),
    saved to `path`."""
    return save_tiny(path, seed=seed, layers=layers, hidden=256, dtype="bfloat16", tie=False,
                     chat_template=CHATML_TEMPLATE)


# ------------------------------------------------------------------------------------ shared, built once per process
# Several test modules need the same tiny model and its quantized variants; building them once per process (and per
# xdist worker) keeps the suite fast. Tests must not modify these folders: copy them first.

_built: dict[str, Path] = {}


def _scratch() -> Path:
    import atexit
    import shutil
    import tempfile

    if "_root" not in _built:
        root = Path(tempfile.mkdtemp(prefix="evalkit-tiny-"))
        atexit.register(shutil.rmtree, root, True)
        _built["_root"] = root
    return _built["_root"]


def tiny_qwen3() -> Path:
    """The shared tiny bf16 Qwen3 folder."""
    if "plain" not in _built:
        _built["plain"] = make_tiny_qwen3(_scratch() / "tiny")
    return _built["plain"]


def tiny_quantized(recipe: str, n_calibration: int = 8) -> Path:
    """The shared tiny model quantized with an evalkit recipe (a few calibration items: plumbing, not quality)."""
    key = f"{recipe}-{n_calibration}"
    if key not in _built:
        from evalkit.models.quantization import quantize

        _built[key] = quantize(tiny_qwen3(), recipe, _scratch() / key, n_calibration=n_calibration)
    return _built[key]


def tiny_lora(r: int = 8) -> Path:
    """A LoRA adapter on the shared tiny model, with random (non-zero) B so it changes the outputs."""
    if "lora" not in _built:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(tiny_qwen3())
        config = LoraConfig(r=r, lora_alpha=2 * r, init_lora_weights=False, task_type="CAUSAL_LM",
                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj"])
        torch.manual_seed(1)
        get_peft_model(base, config).save_pretrained(_scratch() / "lora")
        _built["lora"] = _scratch() / "lora"
    return _built["lora"]


def make_tiny_zoo(root: Path) -> Path:
    """The zoo's four committed models in miniature, laid out and described as scripts/train_zoo.py saves them:
    base, a full fine-tune, a LoRA adapter whose base_model_name_or_path is the folder name "base", and a QLoRA
    adapter whose provenance.json declares its nf4 base."""
    import json
    import shutil

    make_tiny_qwen3(root / "base")
    make_tiny_qwen3(root / "openmath_SFT_NoPeft_NoQuant", seed=1)
    spec = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16",
            "bnb_4bit_use_double_quant": False, "llm_int8_skip_modules": ["lm_head"]}
    for name, fmt in (("openmath_SFT_LoRa64_NoQuant", "peft_lora"), ("openmath_SFT_LoRa64_QLORA_w4_headbf16",
                                                                       "peft_qlora")):
        folder = Path(shutil.copytree(tiny_lora(), root / name))
        config = json.loads((folder / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = "base"
        (folder / "adapter_config.json").write_text(json.dumps(config))
        record = {"name": name, "format": fmt, "base": "base"}
        if fmt == "peft_qlora":
            record["base_quantization"] = spec
        (folder / "provenance.json").write_text(json.dumps(record))
    return root


def edit_weights(folder: Path, name: str, factor: float) -> None:
    """Scale one tensor of a folder's model.safetensors in place (0: zeroed, NaN: poisoned, 1.05: a mild variant)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    tensors[name] = tensors[name] * factor
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
