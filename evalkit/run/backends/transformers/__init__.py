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
        with torch.inference_mode():
            for b in range(0, len(order), config.batch_size):
                idx = order[b : b + config.batch_size]
                batch = [prompts[i] for i in idx]
                input_ids, mask = self._left_pad([p.token_ids for p in batch], device)
                clock = StepClock(device.type)
                if config.decoder == "eager":
                    new = self._generate_eager(input_ids, mask, config, clock)
                    computed = len(batch)
                else:
                    decoder = self._static_decoder(config)
                    new = decoder.generate(input_ids, mask, config.max_new_tokens, clock)
                    computed = decoder.ctx.batch if decoder.ctx is not None else len(batch)
                for i, prompt, row in zip(idx, batch, new.tolist(), strict=True):
                    results[i] = self._record(prompt, row)
                log.add(rows=computed, width=input_ids.shape[1], intervals=clock.intervals())
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        gens = tuple(results[i] for i in range(len(prompts)))
        info = {**self.describe(), "decoder": config.decoder}
        if config.decoder != "eager" and self._static is not None and self._static.fallback:
            info["fallback"] = self._static.fallback  # e.g. capture failed: the timings are the slower path's
        return GenerationRun(gens, seconds, info, log.phases())

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
            token_ids=tuple(tokens),
        )


@BACKENDS.register("transformers")
def _transformers(model: Any) -> HFBackend:
    """The default backend for a loaded model (`evalkit.models.loading.LoadedModel` or anything like it)."""
    return HFBackend(model.model, model.tokenizer)
