"""Greedy decoding over one reused static KV cache: the ``static``, ``compiled`` and ``cuda_graph`` decoders."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["StaticDecoder"]


class StaticDecoder:
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
        assert self.shape is not None, "_setup runs before the first prefill"
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
