"""Batched greedy generation: prompts through the model's own chat template, one `Generation` record per item.

Why batched and recorded: the seed evaluated one sample at a time (2-3 s each) and kept only the extracted answer,
so nobody could tell an empty response from a missing box. Here every item keeps its prompt, its raw text with
special tokens (what the diagnosis reads), its clean text, token counts and why decoding stopped.

A `Backend` is the seam for other engines (vLLM, an OpenAI-compatible server) once a model outgrows one machine:
render prompts, generate, describe itself. `HFBackend` is the transformers implementation, with four decoders:

- ``eager``: `model.generate` with a dynamic KV cache (default; every architecture transformers supports).
- ``static``: evalkit's own greedy loop over a static KV cache, the same tokens as ``eager``.
- ``compiled``: ``static`` with the decode step under `torch.compile` (CUDA graphs on a GPU).
- ``cuda_graph``: ``static`` with each decode step captured once as a CUDA graph and replayed (GPU only; no
  compiler, so no compile time): the fast path on a GPU.

torch and transformers are imported inside functions, so importing this module costs nothing.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from evalkit import prompts
from evalkit.types import FinishReason, Item

Decoder = Literal["eager", "static", "compiled", "cuda_graph"]
PromptMode = Literal["chat_template", "plain"]
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
    use_chat_template: bool = True  # False forces evalkit.prompts.plain_prompt even when a template exists
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Generation:
        return cls(**row)


@dataclass(frozen=True, slots=True)
class GenerationRun:
    """All generations of one (model, task) pass, in item order, with the time they took."""

    generations: tuple[Generation, ...]
    seconds: float  # wall time of generation only (tokenization included, model loading excluded)
    backend: dict[str, str]  # Backend.describe(): name, device, dtype, decoder

    @property
    def output_tokens(self) -> int:
        return sum(g.output_tokens for g in self.generations)

    def throughput(self) -> dict[str, float | int]:
        n = len(self.generations)
        tokens = self.output_tokens
        return {
            "samples": n,
            "seconds": round(self.seconds, 4),
            "seconds_per_sample": round(self.seconds / n, 6) if n else 0.0,
            "output_tokens": tokens,
            "tokens_per_second": round(tokens / self.seconds, 2) if self.seconds > 0 else 0.0,
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
    """Render items through the tokenizer's chat template, or `prompts.plain_prompt` when it has none.

    The template receives `enable_thinking`; templates that ignore it are unaffected.
    """
    use_chat = config.use_chat_template and bool(getattr(tokenizer, "chat_template", None))
    out = []
    for item in items:
        if use_chat:
            text = tokenizer.apply_chat_template(
                prompts.messages(item, config.system_prompt),
                tokenize=False,
                add_generation_prompt=True,
                enable_thinking=config.enable_thinking,
            )
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # the template already holds them
            out.append(Prompt(item.id, text, tuple(ids), "chat_template"))
        else:
            text = prompts.plain_prompt(item, config.system_prompt)
            ids = tokenizer(text, add_special_tokens=True)["input_ids"]  # BOS where the model expects one
            out.append(Prompt(item.id, text, tuple(ids), "plain"))
    return out


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


class HFBackend:
    """Batched greedy decoding with a transformers causal LM (left padding, length-sorted batches).

    The model is used as loaded: no re-casting or module swaps, so quantized layers (compressed-tensors W8A8
    activation quantization included) run exactly as the loader set them up.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.eos_ids = eos_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eos_ids[0]
        self.special_tokens = tuple(getattr(tokenizer, "all_special_tokens", ()) or ())
        self._static: _StaticDecoder | None = None

    def describe(self) -> dict[str, str]:
        param = next(self.model.parameters())
        return {"backend": "transformers", "device": str(param.device.type),
                "dtype": str(param.dtype).removeprefix("torch.")}

    def render(self, items: Sequence[Item], config: GenerationConfig) -> list[Prompt]:
        return render_prompts(self.tokenizer, items, config)

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig) -> GenerationRun:
        import torch

        start = time.perf_counter()
        order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i].token_ids), i))
        results: dict[int, Generation] = {}
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for b in range(0, len(order), config.batch_size):
                idx = order[b : b + config.batch_size]
                batch = [prompts[i] for i in idx]
                input_ids, mask = self._left_pad([p.token_ids for p in batch], device)
                if config.decoder == "eager":
                    new = self._generate_eager(input_ids, mask, config)
                else:
                    new = self._static_decoder(config).generate(input_ids, mask, config.max_new_tokens)
                for i, prompt, row in zip(idx, batch, new.tolist(), strict=True):
                    results[i] = self._record(prompt, row)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        gens = tuple(results[i] for i in range(len(prompts)))
        info = {**self.describe(), "decoder": config.decoder}
        if config.decoder != "eager" and self._static is not None and self._static.fallback:
            info["fallback"] = self._static.fallback  # e.g. capture failed: the timings are the slower path's
        return GenerationRun(gens, seconds, info)

    # -- internals ---------------------------------------------------------------------------------------------

    def _left_pad(self, rows: Sequence[Sequence[int]], device: Any):
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            if r:
                ids[j, width - len(r) :] = torch.tensor(r, dtype=torch.long)
                mask[j, width - len(r) :] = 1
        return ids.to(device), mask.to(device)

    def _generate_eager(self, input_ids: Any, mask: Any, config: GenerationConfig):
        from transformers import GenerationConfig as HFGenerationConfig

        # A fresh config, not the model's: a checkpoint's generation_config.json may ask for sampling, a repetition
        # penalty or a minimum length, and evaluation is plain greedy decoding whatever the checkpoint says.
        greedy = HFGenerationConfig(max_new_tokens=config.max_new_tokens, do_sample=False, num_beams=1,
                                    eos_token_id=list(self.eos_ids), pad_token_id=self.pad_id)
        out = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=greedy)
        return out[:, input_ids.shape[1] :]

    def _static_decoder(self, config: GenerationConfig) -> _StaticDecoder:
        if self._static is None or self._static.mode != config.decoder:
            self._static = _StaticDecoder(self.model, self.eos_ids, self.pad_id, mode=config.decoder)
        return self._static

    def _record(self, prompt: Prompt, row: list[int]) -> Generation:
        eos = set(self.eos_ids)
        cut = next((k + 1 for k, t in enumerate(row) if t in eos), None)
        tokens = row if cut is None else row[:cut]
        return Generation(
            item_id=prompt.item_id,
            prompt=prompt.text,
            raw_text=self.tokenizer.decode(tokens, skip_special_tokens=False),
            text=self.tokenizer.decode(tokens, skip_special_tokens=True),
            prompt_tokens=len(prompt.token_ids),
            output_tokens=len(tokens),
            finish_reason="length" if cut is None else "eos",
        )


class _StaticDecoder:
    """Greedy decoding over one reused static KV cache, in three flavours (`mode`):

    - ``static``: each decode step runs eagerly;
    - ``compiled``: the decode step under `torch.compile` (``reduce-overhead``: CUDA graphs on a GPU);
    - ``cuda_graph``: the whole decode step (forward, argmax, eos bookkeeping) captured once as a CUDA graph and
      replayed, with no compiler involved: the host only launches one graph per token.

    Shapes are kept fixed across batches (the cache length is a multiple of 64 plus max_new_tokens, and a short
    last batch is filled with copies of its first row, whose outputs are dropped), so a step is compiled or
    captured once per run. Decode steps receive a ready 4D mask (padding and causality), so nothing in the step
    reads a tensor's value on the host.
    """

    BUCKET = 64

    def __init__(self, model: Any, eos_ids: tuple[int, ...], pad_id: int, *, mode: str) -> None:
        import torch

        text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        kinds = set(getattr(text_config, "layer_types", None) or ["full_attention"])
        if kinds != {"full_attention"}:
            raise ValueError(f"decoder={mode!r} supports full-attention models only (this one has {sorted(kinds)}); "
                             "use decoder='eager'")
        self._torch = torch  # for the per-step helpers, which run without re-importing
        self.model, self.pad_id, self.mode, self.kinds = model, pad_id, mode, sorted(kinds)
        self.device = next(model.parameters()).device
        if mode == "cuda_graph" and self.device.type != "cuda":
            raise ValueError(f"decoder='cuda_graph' needs the model on a CUDA device (it is on {self.device.type}); "
                             "use decoder='static' or 'eager'")
        self.eos = torch.tensor(eos_ids, device=self.device)
        # "all rows finished?" costs a host sync: free on a CPU, so check every step there; every 8 on a GPU
        self.check_every = 1 if self.device.type == "cpu" else 8
        self.cache: Any = None
        self.shape: tuple[int, int, int] | None = None  # (batch, cache_len, max_new_tokens)
        self.graph: Any = None
        self.fallback: str | None = None  # why the requested fast path could not be used, if it could not
        self.buf: dict[str, Any] = {}
        self._next = self._next_token
        if mode == "compiled":
            # fullgraph=False: compressed-tensors wraps modules in Python offload hooks that dynamo cannot trace
            self._next = torch.compile(self._next_token, mode="reduce-overhead", dynamic=False)

    def _next_token(self, tokens, positions, cpos, mask2d):
        """One decode step: attend to the prompt (mask2d) and to cache positions <= cpos; greedy next token."""
        allowed = mask2d[:, None, None, :] & (self.buf["arange"] <= cpos)[None, None, None, :]
        logits = self.model(input_ids=tokens, position_ids=positions, attention_mask=dict.fromkeys(self.kinds, allowed),
                            past_key_values=self.cache, use_cache=True).logits
        return logits[:, -1, :].argmax(dim=-1)

    def _graph_body(self) -> None:
        b = self.buf
        self._bookkeep(self._next_token(b["tok"], b["pos"], b["cpos"], b["mask"]))

    def _setup(self, batch: int, cache_len: int, max_new: int, input_ids: Any, mask: Any) -> None:
        import torch
        from transformers import StaticCache

        self.shape = (batch, cache_len, max_new)
        self.cache = StaticCache(config=self.model.config, max_cache_len=cache_len)
        dev = self.device
        self.buf = {
            "arange": torch.arange(cache_len, device=dev),
            "tok": torch.full((batch, 1), self.pad_id, dtype=torch.long, device=dev),
            "pos": torch.zeros((batch, 1), dtype=torch.long, device=dev),
            "cpos": torch.zeros((1,), dtype=torch.long, device=dev),
            "mask": torch.ones((batch, cache_len), dtype=torch.bool, device=dev),
            "finished": torch.zeros((batch,), dtype=torch.bool, device=dev),
            "out": torch.full((batch, max_new), self.pad_id, dtype=torch.long, device=dev),
            "step": torch.zeros((1,), dtype=torch.long, device=dev),
        }
        self.graph = None
        if self.mode == "cuda_graph" and max_new > 1:
            self._prefill(input_ids, mask)  # allocates the cache tensors before capture
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up outside the capture (cuBLAS handles, lazy inits)
                    self._graph_body()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    self._graph_body()
                self.graph = graph
            except RuntimeError as err:
                # Some modules cannot be captured (compressed-tensors' dynamic activation quantization copies a
                # host scalar to the GPU on every call). Decode eagerly instead: same tokens, slower; recorded.
                self.fallback = f"cuda graph capture failed, decoded step by step ({str(err).splitlines()[0][:120]})"
                warnings.warn(f"evalkit: {self.fallback}", stacklevel=2)

    def _prefill(self, input_ids: Any, mask: Any):
        """Run the prompt through the model (eagerly); returns the first generated token and last positions."""
        batch, width = input_ids.shape
        full = self._torch.ones((batch, self.shape[1]), dtype=mask.dtype, device=mask.device)
        full[:, :width] = mask
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=input_ids, position_ids=positions, attention_mask=full,
                            past_key_values=self.cache, use_cache=True, logits_to_keep=1).logits
        return logits[:, -1, :].argmax(dim=-1), positions[:, -1:], full.bool()

    def generate(self, input_ids: Any, mask: Any, max_new_tokens: int):
        import torch

        rows, width = input_ids.shape
        batch, cache_len = rows, -(-width // self.BUCKET) * self.BUCKET + max_new_tokens
        if self.shape is not None and self.shape[0] >= rows and self.shape[1] >= cache_len and \
                self.shape[2] == max_new_tokens:
            batch, cache_len = self.shape[0], self.shape[1]  # reuse the cache (and graph) of a larger batch
        if batch > rows:
            fill = batch - rows
            input_ids = torch.cat([input_ids, input_ids[:1].expand(fill, -1)])
            mask = torch.cat([mask, mask[:1].expand(fill, -1)])
        if self.shape != (batch, cache_len, max_new_tokens):
            self._setup(batch, cache_len, max_new_tokens, input_ids, mask)
        self.cache.reset()
        b = self.buf
        nxt, last, full = self._prefill(input_ids, mask)
        b["finished"].zero_()
        b["out"].fill_(self.pad_id)
        b["out"][:, 0] = nxt
        b["finished"] |= torch.isin(nxt, self.eos)
        b["mask"].copy_(full)
        b["tok"].copy_(nxt[:, None])
        b["pos"].copy_(last + 1)
        b["cpos"].fill_(width)
        b["step"].fill_(1)
        for s in range(1, max_new_tokens):
            if (s - 1) % self.check_every == 0 and bool(b["finished"][:rows].all()):
                break
            if self.graph is not None:
                self.graph.replay()
            elif self.mode == "compiled":
                torch.compiler.cudagraph_mark_step_begin()
                nxt = self._next(b["tok"], b["pos"], b["cpos"], b["mask"]).clone()
                self._bookkeep(nxt)
            else:
                self._bookkeep(self._next(b["tok"], b["pos"], b["cpos"], b["mask"]))
        return b["out"][:rows].clone()

    def _bookkeep(self, nxt: Any) -> None:
        b = self.buf
        nxt = self._torch.where(b["finished"], self.pad_id, nxt)
        b["finished"] |= self._torch.isin(nxt, self.eos)
        b["out"].index_copy_(1, b["step"], nxt[:, None])
        b["tok"].copy_(nxt[:, None])
        b["pos"].add_(1)
        b["cpos"].add_(1)
        b["step"].add_(1)
