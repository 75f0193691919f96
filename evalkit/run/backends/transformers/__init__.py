"""The transformers backend: batched greedy decoding with a causal LM, left padding, length-sorted batches.

Four decoders (`evalkit.run.generation.GenerationConfig.decoder`):

- ``eager``: `model.generate` with a dynamic KV cache (default; every architecture transformers supports).
- ``static``: evalkit's own greedy loop over a static KV cache, the same tokens as ``eager``.
- ``compiled``: ``static`` with the decode step under `torch.compile` (CUDA graphs on a GPU).
- ``cuda_graph``: ``static`` with each decode step captured as CUDA graphs and replayed (GPU only; no compiler in
  the model, so little set-up time): the fast path on a GPU.

The static decoders are `evalkit.run.backends.transformers.static` (grouped-query attention over the filled cache,
quantized layers that capture, exact fused kernels). Every run is timed per phase (`evalkit.run.timing`): the
prefill and each decode step, which the slow-kernel check compares with the parent's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from evalkit.core.types import Item
from evalkit.run.backends.registry import BACKENDS
from evalkit.run.backends.transformers.static import StaticDecoder
from evalkit.run.generation import Generation, GenerationConfig, GenerationRun, Prompt, eos_token_ids, render_prompts
from evalkit.run.timing import PhaseLog, StepClock, clock_criterion

__all__ = ["HFBackend"]


class HFBackend:
    """Batched greedy decoding with a transformers causal LM (left padding, length-sorted batches).

    The model is used as loaded: no re-casting, and the eager decoder swaps nothing, so quantized layers
    (compressed-tensors W8A8 activation quantization included) run exactly as the loader set them up. The static
    decoders replace forwards only for the length of a call, with functions that compute the same values
    (`evalkit.run.backends.transformers.static`).
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.eos_ids = eos_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eos_ids[0]
        self.special_tokens = tuple(getattr(tokenizer, "all_special_tokens", ()) or ())
        self._static: StaticDecoder | None = None

    def describe(self) -> dict[str, str]:
        """What decides this backend's numbers (part of the cache key): a cache filled on another platform, e.g.
        another oneDNN ISA, would hand back that platform's replies (`evalkit.run.platform`)."""
        from evalkit.run.platform import platform_key

        param = next(self.model.parameters())
        return {"backend": "transformers", "device": str(param.device.type),
                "dtype": str(param.dtype).removeprefix("torch."), "platform": platform_key(str(param.device))}

    def render(self, items: Sequence[Item], config: GenerationConfig) -> list[Prompt]:
        return render_prompts(self.tokenizer, items, config)

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig) -> GenerationRun:
        import torch

        start = time.perf_counter()
        order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i].token_ids), i))
        results: dict[int, Generation] = {}
        device = next(self.model.parameters()).device
        log = PhaseLog()
        pending: list[tuple[list[int], list[Prompt], Any, Any]] = []  # a batch whose tokens are not decoded yet

        def decode_pending() -> None:
            """The previous batch's text, while the device runs this batch's prefill (`StaticDecoder.generate`'s
            `launched`): on an H200 at batch 1024 the host's share was 0.1 ms a sample, the device idle meanwhile."""
            while pending:
                idx, batch, tokens, done = pending.pop()
                if done is not None:
                    done.synchronize()  # that batch's copy only: the device's later work is queued behind it
                results.update(zip(idx, self._records(batch, tokens.tolist()), strict=True))

        batches = [order[b : b + config.batch_size] for b in range(0, len(order), config.batch_size)]
        padded: dict[int, tuple[Any, Any]] = {}  # batch number -> its (ids, mask), made a batch ahead

        def pad(k: int) -> None:
            if k < len(batches) and k not in padded:
                padded[k] = self._left_pad([prompts[i].token_ids for i in batches[k]])

        with torch.inference_mode():
            for k, idx in enumerate(batches):
                batch = [prompts[i] for i in idx]
                pad(k)
                input_ids, mask = (t.to(device) for t in padded.pop(k))
                clock = StepClock(device.type)
                if config.decoder == "eager":
                    decode_pending()
                    new = self._generate_eager(input_ids, mask, config, clock)
                    computed = len(batch)
                else:
                    def launched(k: int = k) -> None:
                        decode_pending()
                        pad(k + 1)
                    decoder = self._static_decoder(config)
                    new = decoder.generate(input_ids, mask, config.max_new_tokens, clock, launched=launched)
                    computed = decoder.ctx.batch if decoder.ctx is not None else len(batch)
                pending.append((idx, batch, *_to_host(new)))
                log.add(rows=computed, width=input_ids.shape[1], intervals=clock.intervals())
            decode_pending()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        gens = tuple(results[i] for i in range(len(prompts)))
        info = {**self.describe(), "decoder": config.decoder}
        if config.decoder != "eager" and self._static is not None and self._static.fallback:
            info["fallback"] = self._static.fallback  # e.g. capture failed: the timings are the slower path's
        return GenerationRun(gens, seconds, info, log.phases())

    # -- internals ---------------------------------------------------------------------------------------------

    def _left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        """(ids, mask) of the rows right-aligned in one host tensor (one fill, not one per row: 1024 rows took
        14 ms). On a GPU the next batch's is made while the device runs this one's prefill."""
        import itertools

        import torch

        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        width = int(lengths.max()) if len(rows) else 0
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        filled = torch.arange(width)[None, :] >= (width - lengths)[:, None]  # row-major order = the rows' order
        ids[filled] = torch.tensor(list(itertools.chain.from_iterable(rows)), dtype=torch.long)
        return ids, filled.long()

    def _generate_eager(self, input_ids: Any, mask: Any, config: GenerationConfig, clock: StepClock):
        from transformers import GenerationConfig as HFGenerationConfig
        from transformers import StoppingCriteriaList

        # A fresh config, not the model's: a checkpoint's generation_config.json may ask for sampling, a repetition
        # penalty or a minimum length, and evaluation is plain greedy decoding whatever the checkpoint says.
        greedy = HFGenerationConfig(max_new_tokens=config.max_new_tokens, do_sample=False, num_beams=1,
                                    eos_token_id=list(self.eos_ids), pad_token_id=self.pad_id)
        clock.mark()
        out = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=greedy,
                                  stopping_criteria=StoppingCriteriaList([clock_criterion(clock)]))
        return out[:, input_ids.shape[1] :]

    def _static_decoder(self, config: GenerationConfig) -> StaticDecoder:
        if self._static is None or self._static.mode != config.decoder:
            self._static = StaticDecoder(self.model, self.eos_ids, self.pad_id, mode=config.decoder)
        return self._static

    def _records(self, prompts: Sequence[Prompt], rows: list[list[int]]) -> list[Generation]:
        """One batch's generations: each row cut after its first end token, decoded with and without special
        tokens."""
        cuts = [_cut(row, self.eos_ids) for row in rows]
        tokens = [row if cut is None else row[:cut] for row, cut in zip(rows, cuts, strict=True)]
        raw, text = self._decode(tokens, skip_special_tokens=False), self._decode(tokens, skip_special_tokens=True)
        return [Generation(item_id=p.item_id, prompt=p.text, raw_text=r, text=t, prompt_tokens=len(p.token_ids),
                           output_tokens=len(toks), finish_reason="length" if cut is None else "eos",
                           token_ids=tuple(toks))
                for p, toks, cut, r, t in zip(prompts, tokens, cuts, raw, text, strict=True)]

    def _decode(self, rows: list[list[int]], *, skip_special_tokens: bool) -> list[str]:
        """``tokenizer.decode`` of each row; through the Rust tokenizer's parallel ``decode_batch`` where that is
        what ``decode`` would do (a fast tokenizer with no clean-up and no decode of its own): on 1024 rows of 128
        tokens, 26 ms one by one against 14 on 2 cores."""
        if _batch_decodes(self.tokenizer):
            return list(self.tokenizer._tokenizer.decode_batch(rows, skip_special_tokens=skip_special_tokens))
        return [self.tokenizer.decode(r, skip_special_tokens=skip_special_tokens) for r in rows]


def _cut(row: list[int], eos: Sequence[int]) -> int | None:
    """The length of `row` up to and including its first end token, or None (list scans in C, not a loop)."""
    return min((row.index(e) + 1 for e in eos if e in row), default=None)


def _to_host(tokens: Any) -> tuple[Any, Any]:
    """(a host copy of `tokens`, the event after which it is filled): on a GPU without waiting for the device."""
    import torch

    if tokens.device.type != "cuda":
        return tokens, None
    host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
    host.copy_(tokens, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return host, done


def _batch_decodes(tokenizer: Any) -> bool:
    """Whether transformers' ``decode`` of this tokenizer is exactly its Rust tokenizer's ``decode``."""
    try:
        from tokenizers import Tokenizer
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:
        return False
    kind = type(tokenizer)
    return isinstance(getattr(tokenizer, "_tokenizer", None), Tokenizer) and \
        getattr(kind, "decode", None) is PreTrainedTokenizerBase.decode and \
        getattr(kind, "_decode", None) is TokenizersBackend._decode and \
        not getattr(tokenizer, "clean_up_tokenization_spaces", True)


@BACKENDS.register("transformers")
def _transformers(model: Any) -> HFBackend:
    """The default backend for a loaded model (`evalkit.models.loading.LoadedModel` or anything like it)."""
    return HFBackend(model.model, model.tokenizer)
