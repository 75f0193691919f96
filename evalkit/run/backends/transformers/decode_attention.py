"""Decode-step attention as one Triton kernel: each K/V head read once, only each row's filled slots, no mask tensor.

Why: at batch 1024 on an H200 the decode attention was most of a step (28 layers x 0.283 ms of masked SDPA over
the bucketed slots, 1.6x the time its bytes take at the card's bandwidth), and neither SDPA with a mask nor flash
varlen (one split per row and head) came near the bandwidth floor (docs/benchmarks/).

One program per (row, K/V head, split) loads the query heads of its group once (padded to the 16 rows a tensor-core
dot needs), then streams its share of the row's cache in blocks with an online softmax, in float32: what
FlashDecoding does. The attended slots are those the CUDA-graph decoder's masked path attends to, read on the device
at run time, so one captured graph serves every step:

- slot s of row b is attended when ``s <= pos`` (``pos``: the step's cache position, where its own key was just
  written, a 1-element tensor) and the row's prompt mask allows it (``allowed[b, s]``: left padding);
- ``lo[b]`` (the row's left padding) is where its first key sits: whole blocks before it are skipped.

With several splits a second kernel merges the partial results by their log-sum-exp. Split count, block size and
warps are fixed per batch size (`launch_config`), never autotuned: the same inputs give the same bits every run.
`check` compares the kernel with masked SDPA on random left-padded rows before the decoder uses it.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["available", "check", "decode_attention", "launch_config"]


@functools.cache
def _kernels() -> tuple[Any, Any]:
    import triton
    import triton.language as tl

    @triton.jit
    def attend(q_ptr, k_ptr, v_ptr, allowed_ptr, pos_ptr, lo_ptr, o_ptr, part_ptr, lse_ptr,
               sq_b, sq_h, sk_b, sk_h, sk_n, sv_b, sv_h, sv_n, sa_b, so_b, so_h, scale_log2,
               GROUP: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, BLOCK_N: tl.constexpr,
               SPLITS: tl.constexpr):
        b = tl.program_id(0).to(tl.int64)
        h = tl.program_id(1)
        split = tl.program_id(2)
        g = tl.arange(0, GP)
        d = tl.arange(0, D)
        n0 = tl.arange(0, BLOCK_N)
        heads = h * GROUP + g
        q = tl.load(q_ptr + b * sq_b + heads[:, None] * sq_h + d[None, :], mask=(g < GROUP)[:, None], other=0.0)
        one = tl.arange(0, 1)  # scalars loaded as 1-element blocks and reduced (also runs under TRITON_INTERPRET)
        end = tl.sum(tl.load(pos_ptr + one), 0).to(tl.int32) + 1
        lo = (tl.sum(tl.load(lo_ptr + b + one), 0) // BLOCK_N) * BLOCK_N
        chunk = tl.cdiv(tl.cdiv(end - lo, SPLITS), BLOCK_N) * BLOCK_N
        first = lo + split * chunk
        last = tl.minimum(end, first + chunk)
        m = tl.full([GP], -1.0e30, tl.float32)
        den = tl.zeros([GP], tl.float32)
        acc = tl.zeros([GP, D], tl.float32)
        k_row = k_ptr + b * sk_b + h * sk_h
        v_row = v_ptr + b * sv_b + h * sv_h
        for start in range(first, last, BLOCK_N):
            n = start + n0
            inside = n < last
            ok = tl.load(allowed_ptr + b * sa_b + n, mask=inside, other=0) != 0
            k = tl.load(k_row + n[:, None] * sk_n + d[None, :], mask=inside[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k)) * scale_log2
            s = tl.where(ok[None, :], s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, 1))
            alpha = tl.exp2(m - m_new)
            p = tl.exp2(s - m_new[:, None])
            den = den * alpha + tl.sum(p, 1)
            v = tl.load(v_row + n[:, None] * sv_n + d[None, :], mask=inside[:, None], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m = m_new
        if SPLITS == 1:
            out = acc / den[:, None]
            tl.store(o_ptr + b * so_b + heads[:, None] * so_h + d[None, :], out.to(o_ptr.dtype.element_ty),
                     mask=(g < GROUP)[:, None])
        else:  # partial (unnormalized) sums and their running max, merged by `merge`
            slot = (b * tl.num_programs(1) * GROUP + heads) * SPLITS + split
            tl.store(part_ptr + slot[:, None] * D + d[None, :], acc, mask=(g < GROUP)[:, None])
            tl.store(lse_ptr + slot * 2, m, mask=g < GROUP)
            tl.store(lse_ptr + slot * 2 + 1, den, mask=g < GROUP)

    @triton.jit
    def merge(part_ptr, lse_ptr, o_ptr, so_b, so_h, HEADS: tl.constexpr, D: tl.constexpr, SPLITS: tl.constexpr):
        b = tl.program_id(0).to(tl.int64)
        head = tl.program_id(1)
        d = tl.arange(0, D)
        i = tl.arange(0, SPLITS)
        slot = (b * HEADS + head) * SPLITS + i
        m = tl.load(lse_ptr + slot * 2)
        den = tl.load(lse_ptr + slot * 2 + 1)
        top = tl.max(m, 0)
        w = tl.exp2(m - top)
        part = tl.load(part_ptr + slot[:, None] * D + d[None, :])
        out = tl.sum(part * w[:, None], 0) / tl.sum(den * w, 0)
        tl.store(o_ptr + b * so_b + head * so_h + d, out.to(o_ptr.dtype.element_ty))

    return attend, merge


def available(device: Any, dim: int, heads: int, kv_heads: int) -> str | None:
    """None when the kernel can run for this device and head shape, else why not."""
    if getattr(device, "type", str(device)) != "cuda":
        return "the Triton decode attention runs on CUDA devices only"
    if dim < 16 or dim & (dim - 1) or heads % kv_heads:
        return f"the Triton decode attention needs a power-of-two head size >= 16 (this model: {dim})"
    try:
        import triton  # noqa: F401
    except ImportError:
        return "Triton is not installed"
    return None


def launch_config(batch: int, kv_heads: int, cache_len: int) -> tuple[int, int, int, int]:
    """(splits, block, warps, stages) for a batch. Measured on an H200 (one layer, 16/8 heads of 128, 200 of 256
    slots filled): 64-slot blocks, 2 warps, 2 stages were the fastest of 28 configurations at batch 256 (0.100 ms,
    masked SDPA 0.095) and 1024 (0.241 ms, 73 % of 4.8 TB/s; SDPA 0.269); splitting the cache only slowed those,
    so it is kept for batches too small to give every multiprocessor a few programs."""
    programs = batch * kv_heads
    splits = 1 if programs >= 1024 else min(8, 1024 // programs, max(1, cache_len // 256))
    return 1 << (splits.bit_length() - 1), 64, 2, 2  # a power of two: the merge kernel's arange


def decode_attention(query: Any, key: Any, value: Any, allowed: Any, pos: Any, lo: Any, scale: float,
                     scratch: dict[str, Any] | None = None) -> Any:
    """query (B, H, 1, D); key, value (B, H_kv, L, D) (any strides with a unit last one); allowed (B, L) uint8;
    pos (1,) the last attended slot; lo (B,) int32 each row's first allowed slot. Returns
    (B, 1, H, D) in the query's dtype. `scratch` holds the split buffers across calls (a captured graph's)."""
    import torch

    attend, merge = _kernels()
    batch, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    group = heads // kv_heads
    splits, block, warps, stages = launch_config(batch, kv_heads, length)
    out = torch.empty((batch, 1, heads, dim), dtype=query.dtype, device=query.device)
    if splits > 1:
        shape = (batch * heads * splits, dim)
        if scratch is None or scratch.get("shape") != shape:
            scratch = {} if scratch is None else scratch
            scratch.update(shape=shape, part=torch.empty(shape, dtype=torch.float32, device=query.device),
                           lse=torch.empty((shape[0], 2), dtype=torch.float32, device=query.device))
        part, lse = scratch["part"], scratch["lse"]
    else:
        part = lse = out
    gp = max(16, 1 << (group - 1).bit_length())
    attend[(batch, kv_heads, splits)](
        query, key, value, allowed, pos, lo, out, part, lse,
        query.stride(0), query.stride(1), key.stride(0), key.stride(1), key.stride(2),
        value.stride(0), value.stride(1), value.stride(2), allowed.stride(0), out.stride(0), out.stride(2),
        scale * 1.4426950408889634, GROUP=group, GP=gp, D=dim, BLOCK_N=block, SPLITS=splits,
        num_warps=warps, num_stages=stages)
    if splits > 1:
        merge[(batch, heads)](part, lse, out, out.stride(0), out.stride(2), HEADS=heads, D=dim, SPLITS=splits,
                              num_warps=4)
    return out


def check(device: Any, dtype: Any, heads: int, kv_heads: int, dim: int) -> str | None:
    """None when the kernel computes, on this device, what masked SDPA computes (random left-padded rows, every
    split count, to within bf16 rounding), else why not: it is used only where it agrees."""
    import torch
    import torch.nn.functional as F

    if (why := available(device, dim, heads, kv_heads)) is not None:
        return why
    try:
        g = torch.Generator(device=device).manual_seed(0)
        worst = 0.0
        for batch, length, filled in ((6, 64, 40), (3, 512, 300), (600, 64, 64)):
            q = torch.randn(batch, heads, 1, dim, generator=g, device=device).to(dtype)
            key = torch.randn(batch, kv_heads, length, dim, generator=g, device=device).to(dtype)
            value = torch.randn(batch, kv_heads, length, dim, generator=g, device=device).to(dtype)
            pad = torch.randint(0, filled // 2, (batch,), generator=g, device=device)
            pad[0] = 0
            slots = torch.arange(length, device=device)[None]
            allowed = slots >= pad[:, None]
            ref = F.scaled_dot_product_attention(q, key[:, :, :filled], value[:, :, :filled],
                                                 attn_mask=allowed[:, None, None, :filled],
                                                 enable_gqa=heads != kv_heads).transpose(1, 2)
            pos = torch.tensor([filled - 1], device=device)
            out = decode_attention(q, key, value, allowed.view(torch.uint8), pos, pad.to(torch.int32), dim ** -0.5)
            worst = max(worst, (out.float() - ref.float()).abs().max().item())
        return None if worst <= 2e-2 else f"the Triton decode attention disagreed with SDPA by {worst:.3g}"
    except Exception as e:  # noqa: BLE001 - no compiler for this device, an unsupported dtype: masked SDPA
        return f"the Triton decode attention is unavailable ({type(e).__name__}: {str(e).splitlines()[0][:100]})"
