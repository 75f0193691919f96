"""The static decoders' attention: grouped-query attention that never repeats K/V, over the filled part of the cache.

Why: transformers' ``sdpa`` attention repeats the 8 K/V heads of a Qwen3 model to 16 whenever an attention mask is
passed (`transformers.integrations.sdpa_attention.use_gqa_in_sdpa`), and a batched decode always passes one (left
padding, unfilled cache slots). On an H200 that copy was 65 % of a decode step at batch 256.

`gqa_attention` is registered with transformers' `AttentionInterface` as ``evalkit_gqa`` and switched on only inside
`evalkit.run.backends.transformers.static.StaticDecoder` (`use_gqa_attention`). Its calls are a prefill or a decode
step, the decode step in one of three ways (``EVALKIT_ATTENTION`` chooses for the CUDA-graph decoder):

- a prefill of an empty cache (query length > 1, cache position 0): K/V are cut to the prompt and the call goes to
  transformers' own ``sdpa`` function with the mask eager generation builds (`prefill_mask`), so a prefill computes
  exactly what eager ``generate`` computes;
- ``triton``, the CUDA-graph decoder's default: ``evalkit_decode`` passed, the Triton kernel of
  `evalkit.run.backends.transformers.decode_attention` (each K/V head read once, only the slots each row attends to,
  read on the device: one graph for every step; at batch 1024 on an H200 0.241 ms a layer, 73 % of the bandwidth);
- ``sdpa`` (and the ``static`` and ``compiled`` decoders): a 4D additive mask of shape (batch, 1, 1, L), only the
  first L cache slots read (L is the decoder's attended length, a multiple of `StaticDecoder.KV_BUCKET`), through
  SDPA's own grouped-query support (``enable_gqa=True``), which reads each K/V head once. On an H200 (one layer, 256
  slots): 0.117 ms at batch 256 and 0.337 at 1024, against 0.819 / 3.10 with the heads repeated, and bit for bit the
  repeated path's output at 256 (docs/benchmarks/);
- ``flash``: ``evalkit_varlen`` passed, flash attention over exactly each row's filled cache slots, with no mask. The
  decoder keeps the cache token-major, (batch, cache_len, H_kv, D) behind transformers' (batch, H_kv, cache_len, D)
  view, so it is one packed (batch x cache_len, H_kv, D) tensor; row b's keys start at ``cu_k[b] = b * cache_len +
  its left padding`` and ``used[b]`` of them are read (FlashAttention-2's varlen kernel with ``seqused_k``). On an
  H200 this kernel (one split per row and K/V head) took 0.174 ms at batch 256 and 0.537 at 1024 for 200 filled
  slots, against 0.108 / 0.283 for masked SDPA over 208.

All are the same function of the same inputs as transformers' attention (the Triton and flash paths to within
rounding: `decode_attention.check`, `varlen_check`). ``tests/unit/run/test_static.py`` checks greedy tokens against
eager decoding on the zoo.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["ATTENTION", "decode_mask", "gqa_attention", "head_shape", "prefill_mask", "text_config",
           "use_gqa_attention", "varlen_check"]

ATTENTION = "evalkit_gqa"
_REGISTERED: list[bool] = []


def gqa_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                  scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """Attention for the static decoders (module docstring). Shapes: query (B, H, q, D); key, value: the whole static
    cache, (B, H_kv, cache_len, D); returns (B, q, H, D) as transformers' attention functions do."""
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_len, dim = query.shape
    varlen = kwargs.pop("evalkit_varlen", None)
    triton = kwargs.pop("evalkit_decode", None)
    if q_len == 1 and triton is not None:
        from evalkit.run.backends.transformers.decode_attention import decode_attention

        allowed, pos, lo, scratch = triton
        return decode_attention(query, key, value, allowed, pos, lo, scaling if scaling is not None else dim ** -0.5,
                                scratch), None
    if q_len == 1 and varlen is not None:
        return _flash_varlen(query, key, value, varlen, scaling), None
    if q_len > 1:  # prefill of an empty cache: only the prompt's own keys exist
        key, value = key[:, :, :q_len], value[:, :, :q_len]
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if attention_mask is None or attention_mask.dim() != 4:
        raise ValueError("evalkit_gqa: a decode step needs the static decoder's 4D mask (batch, 1, 1, attended)")
    attended = attention_mask.shape[-1]
    key, value = key[:, :, :attended], value[:, :, :attended]
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0, scale=scaling,
                                         enable_gqa=key.shape[1] != heads)
    return out.transpose(1, 2).contiguous(), None


def _flash_varlen(query: Any, key: Any, value: Any, varlen: tuple[Any, Any, Any, int], scaling: float | None) -> Any:
    """(B, H, 1, D) queries over the packed token-major cache: (B, 1, H, D), as transformers' attention returns."""
    import torch

    cu_q, cu_k, used, max_k = varlen
    batch, heads, _, dim = query.shape
    k = key.transpose(1, 2).reshape(-1, key.shape[1], dim)  # a view: the storage is (B, cache_len, H_kv, D)
    v = value.transpose(1, 2).reshape(-1, value.shape[1], dim)
    out = torch.ops.aten._flash_attention_forward(query[:, :, 0], k, v, cu_q, cu_k, 1, max_k, 0.0, False, False,
                                                  scale=scaling, seqused_k=used)[0]
    return out.view(batch, 1, heads, dim)


def varlen_check(device: Any, dtype: Any, heads: int, kv_heads: int, dim: int) -> str | None:
    """None when the flash varlen path computes, on this device, what masked SDPA computes (random left-padded rows,
    to within bf16 rounding), else why not: it is used only where it agrees."""
    import torch
    import torch.nn.functional as F

    try:
        g = torch.Generator(device=device).manual_seed(0)
        batch, length, filled = 6, 64, 40
        q = torch.randn(batch, heads, 1, dim, generator=g, device=device).to(dtype)
        store_k = torch.randn(batch, length, kv_heads, dim, generator=g, device=device).to(dtype)
        store_v = torch.randn(batch, length, kv_heads, dim, generator=g, device=device).to(dtype)
        key, value = store_k.transpose(1, 2), store_v.transpose(1, 2)
        pad = torch.tensor([0, 3, 9, 0, 17, 1], device=device)[:batch]
        slots = torch.arange(length, device=device)[None]
        allowed = (slots >= pad[:, None]) & (slots < filled)
        ref = F.scaled_dot_product_attention(q, key, value, attn_mask=allowed[:, None, None, :],
                                             enable_gqa=heads != kv_heads).transpose(1, 2)
        cu_q = torch.arange(batch + 1, dtype=torch.int32, device=device)
        cu_k = (cu_q * length + torch.cat([pad, pad[-1:] * 0])).to(torch.int32)
        used = (filled - pad).to(torch.int32)
        out = _flash_varlen(q, key, value, (cu_q, cu_k, used, length), dim ** -0.5)
        err = (out.float() - ref.float()).abs().max().item()
        return None if err <= 2e-2 else f"flash varlen disagreed with SDPA by {err:.3g}"
    except Exception as e:  # noqa: BLE001 - no flash kernel for this device, dtype or head size: masked SDPA
        return f"flash varlen unavailable ({type(e).__name__}: {str(e).splitlines()[0][:100]})"


def _register() -> None:
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, gqa_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # masks built on the way in are sdpa's
    _REGISTERED.append(True)


def text_config(model: Any) -> Any:
    """The language model's config (a multimodal model's text part)."""
    return model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config


def head_shape(model: Any) -> tuple[int, int, int]:
    """(query heads, K/V heads, head size) of `model`'s attention."""
    c = text_config(model)
    heads = c.num_attention_heads
    return heads, getattr(c, "num_key_value_heads", None) or heads, getattr(c, "head_dim", None) or \
        c.hidden_size // heads


def gqa_supported(model: Any) -> str | None:
    """None when `use_gqa_attention` applies to `model`, else why not (kept as the run record's fallback note)."""
    impl = getattr(text_config(model), "_attn_implementation", None)
    if impl not in ("sdpa", ATTENTION):
        return f"attention {impl!r} kept (evalkit's GQA attention replaces only 'sdpa')"
    return None


@contextlib.contextmanager
def use_gqa_attention(model: Any) -> Iterator[bool]:
    """Within the block, `model` attends through `gqa_attention` (when `gqa_supported`); yields whether it does.
    The previous implementation is restored on exit."""
    if gqa_supported(model) is not None:
        yield False
        return
    _register()
    configs = {id(c): c for c in (model.config, text_config(model))}.values()
    saved = [(c, c._attn_implementation) for c in configs]
    try:
        for c, _ in saved:
            c._attn_implementation = ATTENTION
        yield True
    finally:
        for c, impl in saved:
            c._attn_implementation = impl


def prefill_mask(model: Any, mask2d: Any, dtype: Any) -> Any:
    """The 4D mask (or None) that eager generation's sdpa attention gets for a prefill of `mask2d` (batch, width):
    built by transformers itself, as if the cache were empty."""
    import torch
    from transformers.masking_utils import create_causal_mask

    config = text_config(model)
    impl = config._attn_implementation
    shape_only = torch.empty((mask2d.shape[0], mask2d.shape[1], 1), dtype=dtype, device=mask2d.device)
    try:
        config._attn_implementation = "sdpa"
        return create_causal_mask(config=config, inputs_embeds=shape_only, attention_mask=mask2d,
                                  past_key_values=None)
    finally:
        config._attn_implementation = impl


def decode_mask(allowed: Any, dtype: Any) -> Any:
    """(batch, L) bool -> the additive (batch, 1, 1, L) mask of one decode step: 0 where allowed, -inf elsewhere (the
    values SDPA itself derives from a boolean mask, made once per step instead of once per layer)."""
    import torch

    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, float("-inf"))[
        :, None, None, :]
