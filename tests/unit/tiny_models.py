"""Test helper: a tiny randomly initialised Qwen3 with a small offline-built tokenizer, saved as a real HF folder.

Loading and quantization tests need a real checkpoint on disk that builds in about a second; this is it
(hidden 256, 4 layers, ~3.5M parameters, ~7 MB in bf16). Its answers are noise; what matters is that every
code path (safetensors, config, tokenizer, chat template, generation config) is the real one.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
_CORPUS = [
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "Answer with the letter of the correct option within \\boxed{}.",
    "Answer yes or no within \\boxed{}. Question: is the sky blue? yes no",
    "Answer with a short span copied from the passage within \\boxed{}.",
    "What is 12 + 30? 12 + 30 = 42, so the answer is \\boxed{42}. A. B. C. D.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 the of and a to in is that it was for on are as with",
]


def build_tokenizer(vocab_size: int = 384):
    """A byte-level BPE tokenizer trained on a few prompt sentences, with Qwen's special tokens and ChatML."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_qwen3(path: Path, *, seed: int = 0, dtype: str = "bfloat16", layers: int = 4) -> Path:
    """Save a random Qwen3ForCausalLM + tokenizer + generation config to `path` and return it."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=768, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=512,
                         tie_word_embeddings=False, eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, do_sample=False)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


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
        from evalkit.quantization import quantize

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
