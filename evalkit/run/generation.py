"""Generation: how to prompt and decode (`GenerationConfig`), the records a pass produces, and the `Backend` seam.

Why batched and recorded: the seed evaluated one sample at a time (2-3 s each) and kept only the extracted answer,
so nobody could tell an empty response from a missing box. Here every item keeps its prompt, its raw text with
special tokens (what the diagnosis reads), its clean text, token counts and why decoding stopped.

A `Backend` is the seam for other engines (vLLM, an OpenAI-compatible server) once a model outgrows one machine:
render prompts, generate, describe itself. Each backend lives in its own folder under `evalkit.run.backends` and is
registered in `evalkit.run.backends.BACKENDS`; `transformers` (batched greedy decoding with four decoders) is the
default.

torch and transformers are imported inside functions, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from evalkit.core import prompts
from evalkit.core.prompts import PromptMode
from evalkit.core.types import FinishReason, Item

__all__ = ["DECODERS", "Backend", "Decoder", "Generation", "GenerationConfig", "GenerationRun", "Phases", "Prompt",
           "PromptMode", "end_of_turn_tokens", "eos_token_ids", "render_prompts"]

Decoder = Literal["eager", "static", "compiled", "cuda_graph"]
DECODERS: tuple[Decoder, ...] = ("eager", "static", "compiled", "cuda_graph")


@dataclass(frozen=True, slots=True)
class GenerationConfig:
    """How to prompt and decode. Every field changes the outputs, so every field is part of the cache key.

    >>> GenerationConfig(max_new_tokens=64).batch_size
    32
    """

    max_new_tokens: int = 256  # a reply cut here is diagnosed "truncated", never silently scored
    batch_size: int = 32  # rows per forward pass; padding changes float sums slightly, so it is part of the key
    enable_thinking: bool = False  # passed to the chat template (Qwen3's switch); False asks for a direct answer
    system_prompt: str | None = None  # optional system turn (chat template) or header (plain prompt)
    use_chat_template: bool = True  # False forces evalkit.core.prompts.plain_prompt even when a template exists
    decoder: Decoder = "eager"  # see the module docstring

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"GenerationConfig.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"GenerationConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.decoder not in DECODERS:
            raise ValueError(f"GenerationConfig.decoder must be one of {DECODERS}, got {self.decoder!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A rendered prompt: the exact text and token ids the model sees."""

    item_id: str
    text: str
    token_ids: tuple[int, ...]
    mode: PromptMode


@dataclass(frozen=True, slots=True)
class Generation:
    """One item's generation, with everything needed to explain it later."""

    item_id: str
    prompt: str
    raw_text: str  # decoded with special tokens (eos, <think>), as the diagnosis needs them
    text: str  # special tokens removed: what a reader sees
    prompt_tokens: int
    output_tokens: int  # up to and including the eos token, excluding padding
    finish_reason: FinishReason  # "eos", or "length" when max_new_tokens cut it off
    token_ids: tuple[int, ...] = ()  # the generated ids, up to and including eos: what drift teacher-forces

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Generation:
        return cls(**{**row, "token_ids": tuple(row.get("token_ids", ()))})


@dataclass(frozen=True, slots=True)
class Phases:
    """Steady-state speed of one run, per phase (`evalkit.run.timing`): what the slow-kernel check compares, since
    a run's wall time mixes in one-time costs and, on a small model, is too short to time as a whole.

    >>> Phases.from_dict(Phases(2e-05, 0.001, 90, 2).to_dict()).decode_steps
    90
    """

    prefill_s_per_token: float  # the fastest batch's prefill seconds / (rows x prompt width)
    decode_s_per_row: float | None  # median decode step seconds / rows, warm-up steps excluded; None: no step ran
    decode_steps: int  # decode steps timed
    batches: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Phases:
        return cls(**row)


@dataclass(frozen=True, slots=True)
class GenerationRun:
    """All generations of one (model, task) pass, in item order, with the time they took."""

    generations: tuple[Generation, ...]
    seconds: float  # wall time of generation only (tokenization included, model loading excluded)
    backend: dict[str, str]  # Backend.describe(): name, device, dtype, decoder (and fallback: what ran slower)
    phases: Phases | None = None  # per-phase timings, when the backend measures them

    @property
    def output_tokens(self) -> int:
        return sum(g.output_tokens for g in self.generations)

    def throughput(self) -> dict[str, Any]:
        n = len(self.generations)
        tokens = self.output_tokens
        return {
            "samples": n,
            "seconds": round(self.seconds, 4),
            "seconds_per_sample": round(self.seconds / n, 6) if n else 0.0,
            "output_tokens": tokens,
            "tokens_per_second": round(tokens / self.seconds, 2) if self.seconds > 0 else 0.0,
            **({"phases": self.phases.to_dict()} if self.phases is not None else {}),
        }


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a generation engine. Three methods, nothing else."""

    def render(self, items: Sequence[Item], config: GenerationConfig) -> list[Prompt]:
        """The exact prompt for each item (chat template or plain prompt)."""
        ...

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig) -> GenerationRun:
        """Greedy generations for `prompts`, in the same order."""
        ...

    def describe(self) -> dict[str, str]:
        """Name, device, dtype and anything else that changes outputs (it is part of the cache key)."""
        ...


def render_prompts(tokenizer: Any, items: Sequence[Item], config: GenerationConfig) -> list[Prompt]:
    """Render items through `evalkit.core.prompts.render` (the tokenizer's chat template, or `plain_prompt` when it
    has none) and tokenize them exactly as the model will see them."""
    out = []
    for item in items:
        text, mode = prompts.render(tokenizer, item, system=config.system_prompt, enable_thinking=config.enable_thinking,
                                    use_chat_template=config.use_chat_template)
        # a chat template already holds the special tokens; a plain prompt gets BOS where the model expects one
        ids = tokenizer(text, add_special_tokens=mode == "plain")["input_ids"]
        out.append(Prompt(item.id, text, tuple(ids), mode))
    return out


def end_of_turn_tokens(tokenizer: Any, stop_ids: Sequence[int] = ()) -> tuple[str, ...]:
    """The tokens that end the model's turn: those that stop generation (`stop_ids`), and the special token the
    chat template writes right after an assistant message (`<|im_end|>` for ChatML), so that a reply whose end of
    turn no longer stops generation (a lost eos) still ends there for extraction.

    A tokenizer without a template has only its stop tokens.
    """
    tokens = [str(t) for t in tokenizer.convert_ids_to_tokens(list(stop_ids))] if stop_ids else []
    specials = {str(t) for t in getattr(tokenizer, "all_special_tokens", ()) or ()}
    if getattr(tokenizer, "chat_template", None):
        marker = "\x00evalkit-end-of-turn\x00"
        try:
            text = tokenizer.apply_chat_template([{"role": "user", "content": "q"},
                                                  {"role": "assistant", "content": marker}], tokenize=False)
        except Exception:  # noqa: BLE001 - a template that cannot render a reply names no end-of-turn token
            text = ""
        after = text.split(marker, 1)[1] if marker in text else ""
        ending = next((t for t in sorted(specials, key=len, reverse=True) if after.lstrip().startswith(t)), None)
        if ending is not None:
            tokens.append(ending)
    return tuple(dict.fromkeys(t for t in tokens if t))


def eos_token_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    """Every token that ends a reply: the generation config's (Qwen3 lists two) and the tokenizer's."""
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        for i in [value] if isinstance(value, int) else list(value or []):
            if i is not None and i not in ids:
                ids.append(int(i))
    if not ids:
        raise ValueError("The tokenizer and the generation config name no eos token; generation could never stop early")
    return tuple(ids)
