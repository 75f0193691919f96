"""Greedy decoding over a static KV cache: the ``static``, ``compiled`` and ``cuda_graph`` decoders.

What makes the CUDA-graph decoder fast, and why each piece is there (measured on an H200: docs/benchmarks/; batch
256: 0.0136 s/sample before, 0.0029 after):

- attention reads each K/V head once and only the filled part of the cache (`evalkit.run.backends.transformers.
  attention`): by default a Triton split-KV kernel over exactly each row's attended slots, read on the device, so
  one graph serves every step (`evalkit.run.backends.transformers.decode_attention`); with
  ``EVALKIT_ATTENTION=sdpa`` masked SDPA, the decode step captured once per attended length (a multiple of
  `KV_BUCKET`), each step replaying the shortest that holds its tokens (``flash``: flash varlen, measured slower);
- graphs belong to a batch bucket: a batch reuses the cache and graphs of the last one only when it is at most 2x
  smaller (the 64-row batch of a benchmark no longer ran inside the 256-row graph);
- compressed-tensors layers run exactly as the library runs them, with fewer kernels and nothing copied from the
  host, so W8A8 captures (`evalkit.run.backends.transformers.quantized`);
- exact fused elementwise kernels where they probe equal to eager (`evalkit.run.backends.transformers.kernels`).

Whatever could not be accelerated is named in `StaticDecoder.fallback`, which the run record keeps.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from evalkit.run.backends.transformers.attention import (
    decode_mask,
    gqa_supported,
    head_shape,
    prefill_mask,
    text_config,
    use_gqa_attention,
    varlen_check,
)
from evalkit.run.backends.transformers.decode_attention import check as triton_check
from evalkit.run.backends.transformers.quantized import QuantizedModules, Unoffloaded, _kind, device_resident_scalars

__all__ = ["StaticDecoder"]


class _Context:
    """One batch bucket: its cache, its step buffers and its graphs (one per attended length)."""

    def __init__(self, batch: int, cache_len: int, max_new: int, cache: Any, buf: dict[str, Any]) -> None:
        self.batch, self.cache_len, self.max_new, self.cache, self.buf = batch, cache_len, max_new, cache, buf
        self.graphs: dict[int, Any] = {}
        self.pool: Any = None
        self.lean: dict[Any, Any] | None = None  # StaticLayer -> its lean decode update (`StaticDecoder._lean_cache`)
        self.scratch: dict[str, Any] = {}  # the Triton decode attention's split buffers (live with the graph)
        self.prefilling = False  # inside `StaticDecoder._prefill`, whose cache was just reset


class StaticDecoder:
    """Greedy decoding over a static KV cache, in three flavours (`mode`):

    - ``static``: each decode step runs eagerly;
    - ``compiled``: the decode step under `torch.compile` (``reduce-overhead``: CUDA graphs on a GPU), attending to
      the whole cache (one compile per batch bucket);
    - ``cuda_graph``: the whole decode step (forward, argmax, eos bookkeeping) captured as CUDA graphs and replayed,
      with no compiler involved in the model: the host launches one graph per token.

    Shapes stay fixed within a batch bucket (the cache length is the prompt width rounded up to `BUCKET` plus
    max_new_tokens, rounded up to `KV_BUCKET`; a short batch is filled with copies of its first row, whose outputs
    are dropped). Decode steps get a ready additive mask, so nothing in a step reads a tensor's value on the host.
    """

    BUCKET = 64
    KV_BUCKET = 32
    ATTENTIONS = ("triton", "sdpa", "flash")  # EVALKIT_ATTENTION's values for CUDA graphs; the first is the default

    def __init__(self, model: Any, eos_ids: tuple[int, ...], pad_id: int, *, mode: str) -> None:
        import torch

        kinds = set(getattr(text_config(model), "layer_types", None) or ["full_attention"])
        if kinds != {"full_attention"}:
            raise ValueError(f"decoder={mode!r} supports full-attention models only (this one has {sorted(kinds)}); "
                             "use decoder='eager'")
        if (why := gqa_supported(model)) is not None:
            raise ValueError(f"decoder={mode!r} needs sdpa attention: {why}; use decoder='eager'")
        self._torch = torch  # for the per-step helpers, which run without re-importing
        self.model, self.pad_id, self.mode, self.kinds = model, pad_id, mode, sorted(kinds)
        self.device = next(model.parameters()).device
        self.dtype = getattr(model, "dtype", next(model.parameters()).dtype)
        if mode == "cuda_graph" and self.device.type != "cuda":
            raise ValueError(f"decoder='cuda_graph' needs the model on a CUDA device (it is on {self.device.type}); "
                             "use decoder='static' or 'eager'")
        self.eos = torch.tensor(eos_ids, device=self.device)
        # "all rows finished?" costs a host sync: free on a CPU, so check every step there; every 8 on a GPU
        self.check_every = 1 if self.device.type == "cpu" else 8
        self.ctx: _Context | None = None
        self.notes: list[str] = []  # why part of the requested fast path could not be used, if any
        self.scalars: dict[Any, Any] = {}  # compressed-tensors' host scalars, as device tensors (live with graphs)
        self.quantized: QuantizedModules | None = None
        self.fusions: Any = None
        self.unoffloaded = Unoffloaded(model)
        self.capture_failed = False
        self.attention = "sdpa"  # the decode step's attention (`ATTENTIONS`; CUDA graphs choose in `_prepare`)
        self._next = self._next_token
        if mode == "compiled":
            # fullgraph=False: a compressed-tensors scheme evalkit does not accelerate keeps the library's wrapper
            self._next = torch.compile(self._next_token, mode="reduce-overhead", dynamic=False)

    @property
    def fallback(self) -> str | None:
        """What the run could not accelerate (kept in the run record), or None."""
        fused = self.fusions.note() if self.fusions is not None else None  # read now: a kernel can drop out late
        return "; ".join(dict.fromkeys(self.notes + ([fused] if fused else []))) or None

    # -- set-up --------------------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Once per decoder: probe the fused kernels (CUDA graphs only) and make the quantized layers' forwards."""
        if self.quantized is not None:
            return
        with self.unoffloaded.installed():  # the modules' own forwards, as the fast path sees them
            self._prepare_modules()
        self.notes += [n for n in (self.unoffloaded.note(), self.quantized.note() if self.quantized else None) if n]

    def _prepare_modules(self) -> None:
        # CUDA graphs: the Triton decode attention (exact lengths, one graph) unless EVALKIT_ATTENTION says sdpa
        # (masked SDPA over KV_BUCKET-slot buckets, one graph each) or flash (flash varlen, measured slower)
        wanted = os.environ.get("EVALKIT_ATTENTION", self.ATTENTIONS[0])
        if wanted not in self.ATTENTIONS:
            raise ValueError(f"EVALKIT_ATTENTION must be one of {', '.join(self.ATTENTIONS)}, got {wanted!r}")
        if self.mode == "cuda_graph" and wanted != "sdpa":
            check = triton_check if wanted == "triton" else varlen_check
            why = check(self.device, self.dtype, *head_shape(self.model))
            if why is None:
                self.attention = wanted
            else:
                self.notes.append(f"{why}: masked SDPA over {self.KV_BUCKET}-slot buckets instead")
        quant = None
        fuse = os.environ.get("EVALKIT_FUSE", "1")  # 0: no fused kernels; exact: only those bit-equal to eager
        if self.mode == "cuda_graph" and fuse != "0":
            from evalkit.run.backends.transformers.kernels import Fusions

            self.fusions = Fusions(self.model, exact_only=fuse == "exact")
            int8 = next((m for m in self.model.modules() if getattr(m, "quantization_scheme", None) is not None
                         and "forward" in vars(m) and _kind(m) == "int8_token"), None)
            self.fusions.probe(self.dtype, int8.quantization_scheme.input_activations if int8 is not None else None)
            quant = self.fusions.quant()
        # EVALKIT_CT_FAST=0 keeps compressed-tensors' own forwards (to measure them, and their capture, against ours)
        self.quantized = QuantizedModules(self.model, share_inputs=self.mode != "compiled", quant=quant,
                                          accelerate=os.environ.get("EVALKIT_CT_FAST", "1") != "0"
                                          and not self.unoffloaded.offloaded)

    @contextlib.contextmanager
    def _fast_path(self) -> Iterator[None]:
        """GQA attention, the quantized layers' fast forwards, fused kernels, device-resident scalars: for one call."""
        assert self.quantized is not None, "_prepare runs first"
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.unoffloaded.installed())
            stack.enter_context(use_gqa_attention(self.model))
            stack.enter_context(self.quantized.installed())
            if self.fusions is not None:
                stack.enter_context(self.fusions.installed())
            if self.device.type == "cuda":
                stack.enter_context(device_resident_scalars(self.scalars))
            yield

    def _context(self, rows: int, width: int, max_new: int) -> _Context:
        """The batch bucket for `rows` x `width`: the current one when it fits (at most 2x more rows on a GPU, the
        same rows on a CPU, where filler rows cost real time), else a new one."""
        import torch
        from transformers import StaticCache

        need = -(-(-(-width // self.BUCKET) * self.BUCKET + max_new) // self.KV_BUCKET) * self.KV_BUCKET
        c = self.ctx
        if c is not None and c.max_new == max_new and c.cache_len >= need and \
                (rows == c.batch or (self.device.type == "cuda" and c.batch // 2 < rows <= c.batch)):
            return c
        self.ctx = None  # free the old bucket's cache and graphs first
        dev = self.device
        buf = {
            "arange": torch.arange(need, device=dev),
            "tok": torch.full((rows, 1), self.pad_id, dtype=torch.long, device=dev),
            "pos": torch.zeros((rows, 1), dtype=torch.long, device=dev),
            "cpos": torch.zeros((1,), dtype=torch.long, device=dev),
            "mask": torch.ones((rows, need), dtype=torch.bool, device=dev),
            "finished": torch.zeros((rows,), dtype=torch.bool, device=dev),
            "out": torch.full((rows, max_new), self.pad_id, dtype=torch.long, device=dev),
            "step": torch.zeros((1,), dtype=torch.long, device=dev),
            "cu_q": torch.arange(rows + 1, dtype=torch.int32, device=dev),  # flash varlen: one query per row
            "cu_k": torch.arange(rows + 1, dtype=torch.int32, device=dev) * need,  # + each row's left padding
            "used": torch.ones((rows,), dtype=torch.int32, device=dev),  # slots each row attends to this step
            "lo": torch.zeros((rows,), dtype=torch.int32, device=dev),  # Triton: each row's left padding
        }
        buf["allowed"] = buf["mask"].view(torch.uint8)  # the same storage, as the Triton kernel reads it
        cache = StaticCache(config=self.model.config, max_cache_len=need)
        self.ctx = _Context(rows, need, max_new, cache, buf)
        if self.attention == "flash":
            self._token_major(cache, rows, need)
        if self.mode == "cuda_graph":
            self.ctx.pool = torch.cuda.graph_pool_handle()
        return self.ctx

    def _token_major(self, cache: Any, rows: int, length: int) -> None:
        """Lay the cache out token-major, (rows, length, H_kv, D), behind transformers' (rows, H_kv, length, D) view,
        so that the flash varlen path reads it as one packed tensor (`evalkit.run.backends.transformers.attention`)."""
        import torch

        _, kv_heads, dim = head_shape(self.model)
        probe = torch.empty((rows, kv_heads, 1, dim), dtype=self.dtype, device=self.device)
        for layer in cache.layers:
            layer.lazy_initialization(probe, probe)
            layer.keys = torch.zeros((rows, length, kv_heads, dim), dtype=self.dtype, device=self.device).transpose(1, 2)
            layer.values = torch.zeros_like(layer.keys.transpose(1, 2)).transpose(1, 2)

    def _attended(self, filled: int) -> int:
        """The attended length of a step whose cache holds `filled` tokens (the cache length when compiled)."""
        assert self.ctx is not None
        if self.mode == "compiled" or self.attention != "sdpa":
            return self.ctx.cache_len
        return min(self.ctx.cache_len, -(-filled // self.KV_BUCKET) * self.KV_BUCKET)

    def _capture(self, length: int) -> None:
        """Capture the decode step of attended length `length` (warm-up first: lazy inits, fused kernels' compile)."""
        import torch

        c = self.ctx
        assert c is not None
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._rewind()
                self._step(length)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        stance = self.fusions.capturing() if self.fusions is not None else contextlib.nullcontext()
        try:
            with stance, torch.cuda.graph(graph, pool=c.pool):
                self._step(length)
        except RuntimeError as err:
            # A module that cannot be captured (a host copy evalkit does not know of): decode eagerly instead,
            # the same tokens, slower; recorded.
            self.capture_failed = True
            self.notes.append(f"cuda graph capture failed, decoded step by step ({str(err).splitlines()[0][:120]})")
            warnings.warn(f"evalkit: {self.notes[-1]}", stacklevel=3)
            return
        c.graphs[length] = graph

    def _rewind(self) -> None:
        """Counters back to a batch's start, so that a warm-up step between batches writes inside its buffers."""
        assert self.ctx is not None
        b = self.ctx.buf
        self.ctx.cache.reset()
        b["step"].zero_()
        b["cpos"].zero_()
        b["mask"].fill_(True)
        b["finished"].zero_()
        b["cu_k"].copy_(b["cu_q"] * self.ctx.cache_len)
        b["used"].fill_(1)
        b["lo"].zero_()

    def _reset_cache(self) -> None:
        """The cache emptied for a new batch. With the Triton attention only its counters: no slot is read before this
        batch writes it (the prefill fills 0..width-1, each step its own), and zeroing the K/V of 28 layers was 30 GB
        of writes a batch at 1024 rows. The masked paths read whole buckets, so they zero it as transformers does."""
        assert self.ctx is not None
        layers = getattr(self.ctx.cache, "layers", None) or []
        if self.attention == "triton" and layers and all(
                type(x).__name__ == "StaticLayer" and getattr(x, "is_initialized", False)
                and hasattr(x, "cumulative_length") for x in layers):
            for layer in layers:
                layer.cumulative_length.zero_()
        else:
            self.ctx.cache.reset()

    @contextlib.contextmanager
    def _lean_cache(self) -> Iterator[None]:
        """A decode step writes its K/V at the step's cache position (the buffer ``cpos``) with one copy per tensor:
        transformers' StaticLayer.update makes the same write from a per-layer counter (arange, add, add_: three
        more kernels per layer and step). The prefill of an emptied cache (`_prefill`) copies into slots 0..n-1."""
        c = self.ctx
        assert c is not None
        cpos = c.buf["cpos"]

        def lean(layer: Any) -> Any:
            original = layer.update

            def update(key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
                n = key_states.shape[-2]
                if not getattr(layer, "is_initialized", False) or (n > 1 and not (
                        c.prefilling and hasattr(layer, "cumulative_length"))):
                    return original(key_states, value_states, *args, **kwargs)
                if n == 1:
                    layer.keys.index_copy_(2, cpos, key_states)
                    layer.values.index_copy_(2, cpos, value_states)
                else:  # the prefill of the emptied cache: slots 0..n-1, a plain copy (index_copy_ was 3x slower)
                    layer.keys[:, :, :n].copy_(key_states)
                    layer.values[:, :, :n].copy_(value_states)
                    layer.cumulative_length.add_(n)
                return layer.keys, layer.values
            return update

        if c.lean is None:  # made once per bucket: a compiled step sees the same functions every call
            c.lean = {layer: lean(layer) for layer in getattr(c.cache, "layers", [])
                      if type(layer).__name__ == "StaticLayer" and "update" not in vars(layer)}
        try:
            for layer, update in c.lean.items():
                layer.update = update
            yield
        finally:
            for layer in c.lean:
                vars(layer).pop("update", None)

    # -- decoding ------------------------------------------------------------------------------------------------

    def generate(self, input_ids: Any, mask: Any, max_new_tokens: int, clock: Any = None,
                 launched: Callable[[], None] | None = None) -> Any:
        """Greedy continuations (rows, max_new_tokens) of the left-padded batch; `clock` (an
        `evalkit.run.timing.StepClock`) is marked before and after the prefill and after each decode step;
        `launched` is called once the prefill is queued on the device, before anything waits for it (host work
        that then overlaps the prefill)."""
        import torch

        rows, width = input_ids.shape
        self._prepare()
        c = self._context(rows, width, max_new_tokens)
        if c.batch > rows:
            fill = c.batch - rows
            input_ids = torch.cat([input_ids, input_ids[:1].expand(fill, -1)])
            mask = torch.cat([mask, mask[:1].expand(fill, -1)])
        with self._fast_path(), self._lean_cache():
            if self.mode == "cuda_graph" and not self.capture_failed:
                for length in sorted({self._attended(width + s) for s in range(1, max_new_tokens)}):
                    if length not in c.graphs and not self.capture_failed:
                        self._capture(length)
            self._reset_cache()
            b = c.buf
            if clock is not None:
                clock.mark()  # the prefill's start: capture and set-up above are not timed
            nxt, last = self._prefill(input_ids, mask)
            b["finished"].zero_()
            b["out"].fill_(self.pad_id)
            b["out"][:, 0] = nxt
            b["finished"] |= torch.isin(nxt, self.eos)
            b["mask"].fill_(True)
            b["mask"][:, :width] = mask.bool()
            b["tok"].copy_(nxt[:, None])
            b["pos"].copy_(last + 1)
            b["cpos"].fill_(width)
            b["step"].fill_(1)
            pad = width - b["mask"][:, :width].sum(-1)  # each row's left padding: where its keys start
            b["cu_k"].copy_(b["cu_q"] * c.cache_len)
            b["cu_k"][:-1] += pad.to(torch.int32)
            b["used"].copy_((width + 1 - pad).to(torch.int32))  # the first decode step's prompt and own token
            b["lo"].copy_(pad)
            if clock is not None:
                clock.mark()
            if launched is not None:
                launched()
            for s in range(1, max_new_tokens):
                if (s - 1) % self.check_every == 0 and bool(b["finished"][:rows].all()):
                    break
                self._decode(self._attended(width + s))
                if clock is not None:
                    clock.mark()
        return b["out"][:rows].clone()

    def _decode(self, length: int) -> None:
        c = self.ctx
        assert c is not None
        graph = c.graphs.get(length)
        if graph is not None:
            graph.replay()
        elif self.mode == "compiled":
            self._torch.compiler.cudagraph_mark_step_begin()
            b = c.buf
            self._bookkeep(self._next(b["tok"], b["pos"], self._mask(length)).clone())
        else:
            self._step(length)

    def _prefill(self, input_ids: Any, mask: Any) -> tuple[Any, Any]:
        """The prompt through the model (eagerly, the mask eager generation builds); the first generated token and
        each row's last position."""
        assert self.ctx is not None
        positions = mask.long().cumsum(-1) - 1
        positions.masked_fill_(mask == 0, 1)
        masks = dict.fromkeys(self.kinds, prefill_mask(self.model, mask, self.dtype))
        self.ctx.prefilling = True
        try:
            logits = self.model(input_ids=input_ids, position_ids=positions, attention_mask=masks,
                                past_key_values=self.ctx.cache, use_cache=True, logits_to_keep=1).logits
        finally:
            self.ctx.prefilling = False
        return logits[:, -1, :].argmax(dim=-1), positions[:, -1:]

    def _mask(self, length: int) -> Any:
        """The additive mask of this step: the prompt's padding and the cache slots up to the current position."""
        assert self.ctx is not None
        b = self.ctx.buf
        return decode_mask(b["mask"][:, :length] & (b["arange"][:length] <= b["cpos"]), self.dtype)

    def _next_token(self, tokens: Any, positions: Any, mask4d: Any) -> Any:
        """One decode step's forward: greedy next token of each row."""
        assert self.ctx is not None
        b = self.ctx.buf
        extra: dict[str, Any] = {}
        if self.attention == "flash":
            extra["evalkit_varlen"] = (b["cu_q"], b["cu_k"], b["used"], self.ctx.cache_len)
        elif self.attention == "triton":
            extra["evalkit_decode"] = (b["allowed"], b["cpos"], b["lo"], self.ctx.scratch)
        logits = self.model(input_ids=tokens, position_ids=positions, attention_mask=dict.fromkeys(self.kinds, mask4d),
                            past_key_values=self.ctx.cache, use_cache=True, **extra).logits
        return logits[:, -1, :].argmax(dim=-1)

    def _step(self, length: int) -> None:
        """One whole decode step (what a graph holds): mask, forward, argmax, bookkeeping."""
        assert self.ctx is not None
        b = self.ctx.buf
        self._bookkeep(self._next_token(b["tok"], b["pos"], self._mask(length) if self.attention == "sdpa" else None))

    def _bookkeep(self, nxt: Any) -> None:
        assert self.ctx is not None
        b = self.ctx.buf
        nxt = self._torch.where(b["finished"], self.pad_id, nxt)
        b["finished"] |= self._torch.isin(nxt, self.eos)
        b["out"].index_copy_(1, b["step"], nxt[:, None])
        b["tok"].copy_(nxt[:, None])
        b["pos"].add_(1)
        b["cpos"].add_(1)
        b["step"].add_(1)
        b["used"].add_(1)
