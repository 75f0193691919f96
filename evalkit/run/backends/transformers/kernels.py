"""Fused elementwise kernels for the CUDA-graph decoder: the eager ops they replace, bit for bit or (RMSNorm's
Triton pass) within one rounding step, else not used at all.

Why: with K/V no longer copied, a decode step of a 0.6B model on an H200 is made of ~60 kernels per layer, most of
them elementwise on a few megabytes (RMSNorm alone is 8: cast, pow, mean, add, rsqrt, mul, cast, mul), and each
costs its launch gap however small it is. Fusing them is the remaining lever short of a hand-written model.

Only fusions that can be exact are made, compiled by inductor with eager's rounding emulated (every bf16 result
rounded where eager rounds it, IEEE division): RMSNorm keeps eager's ``mean`` (a sum's order decides its last bit)
and fuses what comes before and after it (8 kernels -> 3); rotary embedding is one kernel for q and k (10 -> 1-2);
compressed-tensors' int8 activation fake-quantization is one reduction and one pointwise kernel (11 -> 2; ``max`` is
exact in any order). `Fusions.probe` runs each fused kernel beside the eager ops on random inputs on the device and
keeps only those that agree bit for bit; a run that could not fuse says so in its record.

On top of those, where Triton runs (`evalkit.run.backends.transformers.triton_kernels`): rotary embedding as one
hand-written kernel, also bit for bit, and RMSNorm as one pass, within `triton_kernels.RMS_TOLERANCE` of eager's
(its sum order is not ATen's); they replace the inductor fusions where they probe. ``EVALKIT_FUSE=exact`` keeps only
the bit-exact kernels, ``EVALKIT_FUSE=0`` none.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

from evalkit.run.backends.transformers import triton_kernels

__all__ = ["Fusions", "inductor_exact"]

RMS_NORMS = ("Qwen3RMSNorm", "Qwen2RMSNorm", "LlamaRMSNorm", "MistralRMSNorm")  # w * (x * rsqrt(mean(x^2) + eps))
ROPE_MODULES = ("qwen3", "qwen2", "llama", "mistral")  # modeling_<name>.apply_rotary_pos_emb: q*cos + rot(q)*sin
_COMPILED: dict[tuple[Any, ...], Callable[..., Any]] = {}  # (kernel, argument dtypes) -> compiled
_BROKEN: dict[str, str] = {}  # fused kernel -> why it stopped being used (the eager ops run instead: same values)
_TRITON: set[str] = set()  # the hand-written Triton kernels in use inside `Fusions.installed` ("rms_norm", "rope")


def inductor_exact() -> Any:
    """A context in which inductor compiles with eager's numerics (the option names moved between torch versions)."""
    from torch._inductor import config

    names = set(config.get_config_copy())
    wanted = [n for n in ("emulate_precision_casts", "eager_numerics.division_rounding", "emulate_divison_rounding",
                          "emulate_division_rounding") if n in names]
    return config.patch(dict.fromkeys(wanted, True))


def _square(x: Any) -> Any:
    import torch

    return x.to(torch.float32).pow(2)


def _rms_tail(x: Any, variance: Any, weight: Any, eps: float) -> Any:
    import torch

    return weight * (x.to(torch.float32) * torch.rsqrt(variance + eps)).to(x.dtype)


def _rope(q: Any, k: Any, cos: Any, sin: Any) -> tuple[Any, Any]:
    import torch

    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = q.shape[-1] // 2

    def rot(t: Any) -> Any:
        return torch.cat((-t[..., half:], t[..., :half]), dim=-1)

    return (q * cos) + (rot(q) * sin), (k * cos) + (rot(k) * sin)


def _fq_int8(x: Any, c: Any) -> Any:
    from evalkit.run.backends.transformers.quantized import fake_quant_int8_token

    return fake_quant_int8_token(x, c)


def _compiled(name: str, fn: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """`fn` compiled once per kernel and argument dtypes, each on its own copy of `fn`'s code object: dynamo keeps
    its cache and its recompile limit (8) per code object, and one gate process meets many models (bf16 parents,
    fp32 re-saves, int8 activations); sharing one code object ran out of recompiles after a few models, and every
    later model lost its fused kernels mid-run."""
    key = (name, *(getattr(a, "dtype", type(a)) for a in args))  # on the prefill's path: no string formatting
    if key not in _COMPILED:
        import torch

        copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
        _COMPILED[key] = torch.compile(copy, dynamic=True, fullgraph=True)
    return _COMPILED[key]


def _run(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """The fused `fn` on `args`, or `fn` itself (eagerly: the same values) once its compiled form has failed, e.g. a
    recompile asked for during graph capture (`Fusions.capturing` forbids it) or the recompile limit reached."""
    if name not in _BROKEN:
        try:
            return _compiled(name, fn, *args)(*args)
        except Exception as err:  # noqa: BLE001 - raised before the compiled code launches anything
            _BROKEN[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
    return fn(*args)


def _fused_rms_forward(self: Any, x: Any) -> Any:
    if "rms_norm" in _TRITON and (out := triton_kernels.rms_norm(x, self.weight, self.variance_epsilon)) is not None:
        return out
    variance = _run("square", _square, x).mean(-1, keepdim=True)  # eager's reduction, eager's sum order
    return _run("rms_tail", _rms_tail, x, variance, self.weight, self.variance_epsilon)


def _fused_rope(q: Any, k: Any, cos: Any, sin: Any, unsqueeze_dim: int = 1) -> tuple[Any, Any]:
    if unsqueeze_dim != 1:
        raise ValueError("evalkit's fused rotary embedding expects unsqueeze_dim=1")
    if "rope" in _TRITON and (out := triton_kernels.rope(q, k, cos, sin)) is not None:
        return out
    return _run("rope", _rope, q, k, cos, sin)


def _within_ulps(a: Any, b: Any, ulps: int) -> bool:
    """Same shape and dtype, and every element within `ulps` representable steps of the other's (or equal)."""
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    steps = (a.flatten().view(ints).long() - b.flatten().view(ints).long()).abs()
    return bool(((steps <= ulps) | (a.flatten() == b.flatten())).all())


def _same(a: Any, b: Any) -> bool:
    import torch

    pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
    return all(x.shape == y.shape and x.dtype == y.dtype and torch.equal(x.flatten().view(torch.uint8),
                                                                         y.flatten().view(torch.uint8))
               for x, y in pairs)


class Fusions:
    """The fused kernels that apply to one model on one CUDA device, made once, installed only inside `installed`."""

    def __init__(self, model: Any, *, exact_only: bool = False) -> None:
        self.model, self.exact_only = model, exact_only  # exact_only: no kernel that may differ from eager's bits
        self.norms = [m for m in model.modules() if type(m).__name__ in RMS_NORMS and "forward" not in vars(m)
                      and hasattr(m, "variance_epsilon")]
        self.rope_module: Any = next((sys.modules.get(f"transformers.models.{n}.modeling_{n}") for n in ROPE_MODULES
                                      if type(model).__module__ == f"transformers.models.{n}.modeling_{n}"), None)
        self.fast_norms = {m: types.MethodType(_fused_rms_forward, m) for m in self.norms}
        self.enabled: dict[str, bool] = {}
        self.problems: list[str] = []

    def quant(self) -> Callable[..., Any] | None:
        """The fused int8 fake-quantization, when it probed exact (for `QuantizedModules`)."""
        if not self.enabled.get("int8_quant"):
            return None
        return lambda x, c: _run("fq_int8", _fq_int8, x, c)

    def probe(self, dtype: Any, quant_args: Any = None) -> None:
        """Compile each fusion and keep those equal to the eager ops on random inputs, bit for bit (the Triton
        RMSNorm: within its tolerance), at two shapes, so that the dynamic-shape kernels are the ones checked."""
        import torch

        device = next(self.model.parameters()).device
        g = torch.Generator(device=device).manual_seed(0)

        def randn(*shape: int) -> Any:
            return (torch.randn(shape, generator=g, device=device) * 3).to(dtype)

        checks: dict[str, Callable[[int], bool]] = {}
        widths = {m.weight.shape[0]: m for m in self.norms}  # the hidden size and the head size (q/k norms)
        if widths:
            def norm_check(b: int) -> bool:
                for width, norm in widths.items():
                    x = randn(b, 1, 2, width)
                    if not _same(type(norm).forward(norm, x), _fused_rms_forward(norm, x)):
                        return False
                return True
            checks["rms_norm"] = norm_check
        if self.rope_module is not None and hasattr(self.rope_module, "apply_rotary_pos_emb"):
            eager_rope = self.rope_module.apply_rotary_pos_emb

            def rope_check(b: int) -> bool:
                q, k, cos, sin = randn(b, 4, 3, 64), randn(b, 2, 3, 64), randn(b, 3, 64), randn(b, 3, 64)
                return _same(eager_rope(q, k, cos, sin), _fused_rope(q, k, cos, sin))
            checks["rope"] = rope_check
            if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16):  # 16-bit only (triton_kernels)
                from evalkit.run.backends.transformers.attention import head_shape

                heads, kv_heads, dim = head_shape(self.model)

                def triton_rope_check(b: int) -> bool:  # q, k as transformers makes them: (B, S, H, D) transposed
                    q, k = randn(b, 3, heads, dim).transpose(1, 2), randn(b, 3, kv_heads, dim).transpose(1, 2)
                    cos, sin = randn(b, 3, dim), randn(b, 3, dim)
                    out = triton_kernels.rope(q, k, cos, sin)
                    return out is not None and _same(eager_rope(q, k, cos, sin), out)
                checks["triton_rope"] = triton_rope_check
        if widths and device.type == "cuda" and not self.exact_only:
            def triton_norm_check(b: int) -> bool:
                for width, norm in widths.items():
                    x = randn(b, 1, 16, width)
                    out = triton_kernels.rms_norm(x, norm.weight, norm.variance_epsilon)
                    if out is None or not _within_ulps(out, type(norm).forward(norm, x), triton_kernels.RMS_TOLERANCE):
                        return False
                return True
            checks["triton_rms_norm"] = triton_norm_check
        if quant_args is not None:
            from evalkit.run.backends.transformers.quantized import constants, fake_quant_int8_token

            c = constants(quant_args, device, dtype)

            def quant_check(b: int) -> bool:
                x = randn(b, 3, 256)
                x[0, 0] = 0  # a row of zeros: the eps branch
                return _same(fake_quant_int8_token(x, c), _compiled("fq_int8", _fq_int8, x, c)(x, c))
            checks["int8_quant"] = quant_check
        with inductor_exact(), torch.inference_mode():
            for name, run in checks.items():
                try:
                    self.enabled[name] = run(5) and run(12)
                except Exception as err:  # noqa: BLE001 - no compiler, no Triton, an inductor bug: decode unfused
                    self.enabled[name] = False
                    self.problems.append(f"{name}: {type(err).__name__}: {str(err).splitlines()[0][:80]}")
                    continue
                if not self.enabled[name]:
                    self.problems.append(f"{name}: the fused kernel differed from eager on a probe")

    def note(self) -> str | None:
        """What could not be fused (the run record's fallback), or None."""
        problems = self.problems + [f"{name}: {why}" for name, why in _BROKEN.items()]
        return ("unfused: " + "; ".join(problems)) if problems else None

    @staticmethod
    def capturing() -> Any:
        """While a graph is captured: a fused kernel that would need compiling raises instead (and runs eagerly)."""
        import torch

        return torch.compiler.set_stance("fail_on_recompile")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        import torch._dynamo

        saved_rope = None
        names = set(torch._dynamo.config.get_config_copy())
        limits = {n: 64 for n in ("recompile_limit", "cache_size_limit") if n in names}  # shapes x ranks x dtypes
        with inductor_exact(), torch._dynamo.config.patch(limits):
            try:
                _TRITON.update(n for n in ("rms_norm", "rope") if self.enabled.get(f"triton_{n}"))
                if self.enabled.get("rms_norm") or "rms_norm" in _TRITON:
                    for m, fast in self.fast_norms.items():
                        m.forward = fast
                if (self.enabled.get("rope") or "rope" in _TRITON) and self.rope_module is not None:
                    saved_rope = getattr(self.rope_module, "apply_rotary_pos_emb")
                    setattr(self.rope_module, "apply_rotary_pos_emb", _fused_rope)
                yield
            finally:
                _TRITON.clear()
                for m in self.fast_norms:
                    vars(m).pop("forward", None)
                if saved_rope is not None and self.rope_module is not None:
                    setattr(self.rope_module, "apply_rotary_pos_emb", saved_rope)
