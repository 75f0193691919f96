"""Offline helpers for the engine's tests: a word-level tokenizer with a Qwen3-style chat template and a tiny,
randomly initialised Qwen3ForCausalLM, saved to a folder like a real checkpoint.

The fixture zoo (fixtures/zoo/) holds trained models; these random ones exercise the plumbing (batching, padding,
eos handling, caching, drift) without depending on the zoo, and build in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

QWEN3_STYLE_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EXTRA = ["<think>", "</think>"]  # added but not special, as in Qwen3
WORDS = (
    "user assistant system the a is of and to in what which answer yes no true false question passage option "
    "letter correct within "
    "boxed please reason step by put your final sky blue green red number sum plus minus times equals if does not "
    "contain span copied from with short or . , ? : \\ { } ( ) = + - * / 0 1 2 3 4 5 6 7 8 9 A B C D E"
).split()


def build_tokenizer(chat_template: str | None = QWEN3_STYLE_TEMPLATE):
    """A PreTrainedTokenizerFast over a small word-level vocabulary; unknown words map to [UNK]."""
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


def build_model(vocab_size: int, *, layers: int = 2, hidden: int = 32, seed: int = 0, eos_id: int | None = None):
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
        tie_word_embeddings=True,
        eos_token_id=eos_id,
        pad_token_id=0,
    )
    model = Qwen3ForCausalLM(config).eval()
    return model


def save_tiny(folder: Path, *, seed: int = 0, layers: int = 2,
              chat_template: str | None = QWEN3_STYLE_TEMPLATE) -> Path:
    """Build and save a tiny random Qwen3 with its tokenizer to `folder`; returns the folder."""
    tok = build_tokenizer(chat_template)
    model = build_model(len(tok), layers=layers, seed=seed, eos_id=tok.eos_token_id)
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
