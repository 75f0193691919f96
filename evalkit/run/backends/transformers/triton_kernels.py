"""RMSNorm and rotary embedding as one Triton kernel each, for the CUDA-graph decoder on a GPU.

Why: measured on an H200 at batch 1024 (docs/benchmarks/), the exact inductor fusions of `kernels` still cost
RMSNorm three kernels (a float32 square written to memory, eager's mean, the tail) and rotary embedding two: 138 ms
of a 360 ms prefill and 2.2 ms of an 11.5 ms decode step, against the 31 ms a single pass over the bytes takes.

- `rope`: q and k of one token in one program, eager's arithmetic exactly (each product rounded to the input dtype
  before the sum, as eager's separate ops round; then the sum rounded): bit for bit eager's (`Fusions.probe` checks).
  Compiled without floating-point fusion (``enable_fp_fusion=False``, as inductor does to emulate eager): with it,
  the products' rounding was lost and a quarter of the elements differed on an H200. 16-bit inputs only.
- `rms_norm`: one pass per row, float32 throughout as eager, but the sum of squares in Triton's reduction order, not
  ATen's: the variance can differ in its last bit, so an output element can differ by one rounding step of its
  dtype. `Fusions.probe` bounds that (`RMS_TOLERANCE`) and the zoo tests check greedy tokens against eager decoding.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["RMS_TOLERANCE", "rms_norm", "rope"]

RMS_TOLERANCE = 1  # ulps of the output dtype an element may differ from eager's RMSNorm by


@functools.cache
def _kernels() -> tuple[Any, Any]:
    import triton
    import triton.language as tl

    @triton.jit
    def rms(x_ptr, w_ptr, o_ptr, rows, stride_x, stride_o, eps, N: tl.constexpr, BLOCK: tl.constexpr,
            ROWS: tl.constexpr):
        r = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
        c = tl.arange(0, BLOCK)
        inside = (r < rows)[:, None] & (c < N)[None, :]
        x = tl.load(x_ptr + r[:, None] * stride_x + c[None, :], mask=inside, other=0.0)
        xf = x.to(tl.float32)
        variance = tl.sum(xf * xf, 1) / N
        y = (xf * tl.rsqrt(variance + eps)[:, None]).to(x.dtype)  # eager: .to(input_dtype) before the weight
        w = tl.load(w_ptr + c, mask=c < N, other=0.0)
        out = w[None, :].to(tl.float32) * y.to(tl.float32)
        tl.store(o_ptr + r[:, None] * stride_o + c[None, :], out.to(o_ptr.dtype.element_ty), mask=inside)

    @triton.jit
    def rotary(q_ptr, k_ptr, cos_ptr, sin_ptr, qo_ptr, ko_ptr, S,
               sq_b, sq_h, sq_s, sk_b, sk_h, sk_s, sqo_b, sqo_h, sqo_s, sko_b, sko_h, sko_s, sc_b, sc_s,
               HQ: tl.constexpr, HK: tl.constexpr, HP: tl.constexpr, HALF: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)
        b = pid // S
        s = pid % S
        d = tl.arange(0, HALF)
        h = tl.arange(0, HP)
        c1 = tl.load(cos_ptr + b * sc_b + s * sc_s + d)[None, :].to(tl.float32)
        c2 = tl.load(cos_ptr + b * sc_b + s * sc_s + HALF + d)[None, :].to(tl.float32)
        s1 = tl.load(sin_ptr + b * sc_b + s * sc_s + d)[None, :].to(tl.float32)
        s2 = tl.load(sin_ptr + b * sc_b + s * sc_s + HALF + d)[None, :].to(tl.float32)
        for which in tl.static_range(2):
            if which == 0:
                src, dst, heads = q_ptr + b * sq_b + s * sq_s, qo_ptr + b * sqo_b + s * sqo_s, HQ
                sh, dh = sq_h, sqo_h
            else:
                src, dst, heads = k_ptr + b * sk_b + s * sk_s, ko_ptr + b * sko_b + s * sko_s, HK
                sh, dh = sk_h, sko_h
            m = (h < heads)[:, None]
            x1 = tl.load(src + h[:, None] * sh + d[None, :], mask=m, other=0.0)
            x2 = tl.load(src + h[:, None] * sh + HALF + d[None, :], mask=m, other=0.0)
            t = x1.dtype
            f1, f2 = x1.to(tl.float32), x2.to(tl.float32)
            # eager: q * cos + cat(-q2, q1) * sin, each product and the sum rounded to the input dtype
            o1 = ((f1 * c1).to(t).to(tl.float32) - (f2 * s1).to(t).to(tl.float32)).to(t)
            o2 = ((f2 * c2).to(t).to(tl.float32) + (f1 * s2).to(t).to(tl.float32)).to(t)
            tl.store(dst + h[:, None] * dh + d[None, :], o1, mask=m)
            tl.store(dst + h[:, None] * dh + HALF + d[None, :], o2, mask=m)

    return rms, rotary


def _on_device(t: Any) -> bool:
    return bool(t.is_cuda)


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def rms_norm(x: Any, weight: Any, eps: float) -> Any | None:
    """``weight * (x.float() * rsqrt(mean(x.float()^2) + eps)).to(x.dtype)`` over the last axis, or None where the
    kernel does not apply (a last axis that is not contiguous, a weight of another size): the caller runs eager's."""
    import torch

    n = x.shape[-1]
    if x.stride(-1) != 1 or weight.shape != (n,) or not _on_device(x) or x.numel() == 0:
        return None
    try:
        flat = x.view(-1, n)
    except RuntimeError:
        return None
    out = torch.empty(x.shape, dtype=torch.result_type(weight, x), device=x.device)
    block = _pow2(n)
    rows_per = max(1, min(64, 4096 // block))
    rms, _ = _kernels()
    rms[(-(-flat.shape[0] // rows_per),)](flat, weight, out, flat.shape[0], flat.stride(0), n, eps, N=n, BLOCK=block,
                                          ROWS=rows_per, num_warps=4, enable_fp_fusion=False)
    return out


def rope(q: Any, k: Any, cos: Any, sin: Any) -> tuple[Any, Any] | None:
    """transformers' ``apply_rotary_pos_emb(q, k, cos, sin)`` (q, k: (B, H, S, D); cos, sin: (B or 1, S, D)), or
    None where the kernel does not apply: the caller runs eager's."""
    import torch

    if q.dtype not in (torch.bfloat16, torch.float16) or k.dtype != q.dtype or cos.dtype != q.dtype or \
            sin.dtype != q.dtype or q.dim() != 4 or cos.dim() != 3 or not _on_device(q):
        return None
    batch, _, seq, dim = q.shape
    if dim % 2 or dim & (dim - 1) or k.shape[0] != batch or k.shape[2] != seq or cos.shape != sin.shape or \
            cos.shape[-2:] != (seq, dim) or cos.shape[0] not in (1, batch) or cos.stride() != sin.stride() or \
            any(t.stride(-1) != 1 for t in (q, k, cos, sin)):
        return None
    # contiguous (B, H, S, D) outputs: the prefill's K is then copied into the static cache as whole blocks
    qo = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    ko = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    _, rotary = _kernels()
    cb = cos.stride(0) if cos.shape[0] > 1 else 0
    rotary[(batch * seq,)](q, k, cos, sin, qo, ko, seq, *q.stride()[:3], *k.stride()[:3], *qo.stride()[:3],
                           *ko.stride()[:3], cb, cos.stride(1), HQ=q.shape[1], HK=k.shape[1],
                           HP=_pow2(max(q.shape[1], k.shape[1])), HALF=dim // 2, num_warps=4,
                           enable_fp_fusion=False)  # with fusion on, the products' rounding was lost (no longer eager's)
    return qo, ko
