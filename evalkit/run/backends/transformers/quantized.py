"""Quantized (compressed-tensors) models on the static decoders' fast path, computing exactly what the library does.

compressed-tensors replaces each quantized Linear's ``forward`` with a wrapper (`set_forward_quantized`) that
fake-quantizes what its scheme asks for, then calls ``Linear.forward``. evalkit loads checkpoints with
``dequantize=True`` (weights decompressed once at load), so at decode time the wrapper does one of two things:

- nothing (W4A16, W8A16: weights already hold their quantized values): a pass-through, which the decoders unwrap so
  that ``torch.compile`` sees a plain Linear (the wrapper's ``patch_attr`` broke the compiled graph into pieces:
  W4A16 ran 4x slower compiled than captured);
- dynamic per-token int8 activation quantization (W8A8): about 25 small kernels per Linear, one of which copies a
  host scalar to the GPU (``torch.tensor(eps, device=...)`` in `calculate_qparams`), which makes CUDA-graph capture
  fail. `fake_quant_int8_token` computes the same values with 11 kernels and device-resident constants, and the
  projections that read one input (q/k/v, gate/up) quantize it once (`_SharedInput`).

Every other scheme keeps the library's wrapper; `device_resident_scalars` makes its host scalars device tensors
created before capture, so it captures too. What could not be put on the fast path is reported (`note`).

compressed-tensors also wraps every module of a model it loads for offloading (its parameters behind an
`OffloadCache` mapping, its forward behind a wrapper that moves inputs), even when everything lives on one device.
Where that moves nothing, `Unoffloaded` lifts it for the length of a call: plain parameter dicts holding the same
tensors, the modules' own forwards (Python overhead on every call, and what torch.compile could not trace whole).
``tests/unit/run/test_static.py`` checks `fake_quant_int8_token` bit for bit against the library.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

__all__ = ["QuantizedModules", "Unoffloaded", "device_resident_scalars", "fake_quant_int8_token"]


def _scheme(module: Any) -> Any:
    return getattr(module, "quantization_scheme", None)


def _is_wrapped(module: Any) -> bool:
    return _scheme(module) is not None and "forward" in vars(module)


def _weights_are_static(module: Any) -> bool:
    """The wrapper leaves the weight alone: no weight scheme, or already compressed/decompressed at load."""
    from compressed_tensors.quantization import QuantizationStatus

    scheme, status = _scheme(module), getattr(module, "quantization_status", None)
    return scheme.weights is None or (status is not None and status >= QuantizationStatus.COMPRESSED)


def _kind(module: Any) -> str:
    """'passthrough', 'int8_token' or 'library' (see the module docstring)."""
    import torch

    scheme = _scheme(module)
    if not isinstance(module, torch.nn.Linear) or not getattr(module, "quantization_enabled", True) or \
            scheme.output_activations is not None or not _weights_are_static(module):
        return "library"
    a = scheme.input_activations
    if a is None:
        return "passthrough"
    strategy = str(getattr(a.strategy, "value", a.strategy))
    if (str(a.type), a.num_bits, a.symmetric, strategy, a.dynamic, a.group_size) == ("int", 8, True, "token", True,
                                                                                    None) and \
            getattr(module, "input_global_scale", None) is None:
        return "int8_token"
    return "library"


class _Constants:
    """The library's own constants for int8 on one device/dtype, as device tensors made once (never during capture)."""

    def __init__(self, args: Any, device: Any, dtype: Any) -> None:
        import torch
        from compressed_tensors.quantization.utils.helpers import _get_dtype_eps, calculate_range

        self.q_min, self.q_max = calculate_range(args, device)
        self.half_range = (self.q_max - self.q_min).to(dtype) / 2  # calculate_qparams: bit_range.to(dtype) / 2
        self.eps = torch.tensor(_get_dtype_eps(dtype), dtype=dtype, device=device)
        self.zero = torch.zeros((), dtype=dtype, device=device)  # the symmetric zero point, in x's dtype


def fake_quant_int8_token(x: Any, c: _Constants) -> Any:
    """compressed-tensors' dynamic symmetric per-token int8 fake quantization of a (batch, tokens, features) input, op
    for op on the same values (`compute_dynamic_scales_and_zp`, `calculate_qparams`, `_quantize_dequantize`):

    - scale = max|x| / 127.5 per token (the library's max(|min(x, 0)|, |max(x, 0)|) is the same number), an exact zero
      replaced by the dtype's eps;
    - q = round(clamp(x / scale + 0, -128, 127)); out = (q - 0) * scale, the zero point's + 0 and - 0 kept because
      they turn -0.0 into +0.0 exactly where the library does.
    """
    import torch

    scale = x.abs().amax(dim=-1, keepdim=True) / c.half_range
    scale = torch.where(scale == 0, c.eps, scale)
    q = torch.round(torch.clamp(x / scale + c.zero, c.q_min, c.q_max))
    return (q - c.zero) * scale


class _SharedInput:
    """The last input a sibling group (q/k/v of one attention, gate/up of one MLP) quantized, and its result."""

    __slots__ = ("x", "xq")

    def __init__(self) -> None:
        self.x: Any = None
        self.xq: Any = None


_CONSTANTS: dict[tuple[Any, ...], _Constants] = {}  # one set per (scheme, device, dtype), shared by every module


def constants(args: Any, device: Any, dtype: Any) -> _Constants:
    key = (args.num_bits, str(args.type), args.symmetric, str(device), dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = _Constants(args, device, dtype)
    return _CONSTANTS[key]


def _fast_forward(module: Any, shared: _SharedInput | None, original: Any, quant: Any) -> Any:
    import torch.nn.functional as F

    args = _scheme(module).input_activations

    def forward(self: Any, x: Any) -> Any:
        if x.dim() != 3:  # the library reduces a 2D input per tensor, not per token: its own path
            return original(x)
        if shared is not None and shared.x is x:
            xq = shared.xq
        else:
            xq = quant(x, constants(args, x.device, x.dtype))
            if shared is not None:
                shared.x, shared.xq = x, xq
        return F.linear(xq, self.weight, self.bias)

    return types.MethodType(forward, module)


class QuantizedModules:
    """The fast forwards of one model's compressed-tensors Linears, made once (stable objects, so a compiled decode
    step is not recompiled each batch) and installed only inside `installed`."""

    def __init__(self, model: Any, *, share_inputs: bool, quant: Any = None, accelerate: bool = True) -> None:
        self.originals: dict[Any, Any] = {}
        self.fast: dict[Any, Any] = {}
        self.kinds: dict[str, int] = {}
        groups: dict[str, _SharedInput] = {}
        for name, module in model.named_modules():
            if not _is_wrapped(module):
                continue
            kind = _kind(module) if accelerate else "library"
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if kind == "library":
                continue
            self.originals[module] = vars(module)["forward"]
            if kind == "passthrough":
                self.fast[module] = types.MethodType(type(module).forward, module)
            else:
                parent = name.rsplit(".", 1)[0]
                shared = groups.setdefault(parent, _SharedInput()) if share_inputs else None
                self.fast[module] = _fast_forward(module, shared, self.originals[module],
                                                  quant or fake_quant_int8_token)
        self._groups = list(groups.values())

    def note(self) -> str | None:
        """Why part of the model is not on the fast path (the run record's fallback), or None."""
        n = self.kinds.get("library", 0)
        return f"{n} quantized modules kept compressed-tensors' own forward (scheme not accelerated)" if n else None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        try:
            for module, fast in self.fast.items():
                module.forward = fast
            yield
        finally:
            for module, original in self.originals.items():
                module.forward = original
            for g in self._groups:
                g.x = g.xq = None


class _ScalarCachingTorch:
    """Stands in for ``torch`` inside compressed-tensors' helpers: ``torch.tensor(<python number>, device=<cuda>)``
    returns a device tensor made once (on the warm-up before capture), so capture copies nothing from the host."""

    def __init__(self, torch: Any, cache: dict[Any, Any]) -> None:
        self._torch, self._cache = torch, cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._torch, name)

    def tensor(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        device = kwargs.get("device")
        if args or device is None or not isinstance(data, (int, float)) or self._torch.device(device).type != "cuda":
            return self._torch.tensor(data, *args, **kwargs)
        key = (type(data), data, kwargs.get("dtype"), str(device), kwargs.get("requires_grad", False))
        if key not in self._cache:
            self._cache[key] = self._torch.tensor(data, **kwargs)
        return self._cache[key]


@contextlib.contextmanager
def device_resident_scalars(cache: dict[Any, Any]) -> Iterator[None]:
    """Within the block, compressed-tensors' quantization helpers take their host scalars from `cache` (kept by the
    caller as long as its graphs live; the values are never written to)."""
    try:
        from compressed_tensors.quantization.utils import helpers
    except ImportError:
        yield
        return
    import torch

    saved = helpers.torch
    helpers.torch = _ScalarCachingTorch(torch, cache)
    try:
        yield
    finally:
        helpers.torch = saved


def _device(d: Any) -> Any:
    import torch

    d = torch.device(d)
    return torch.device(d.type, 0) if d.type == "cuda" and d.index is None else d


class Unoffloaded:
    """compressed-tensors' offloading of one model, lifted inside `installed` where it moves nothing (module
    docstring); `offloaded` says whether some module really lives elsewhere (then nothing is lifted)."""

    def __init__(self, model: Any) -> None:
        self.items: list[tuple[Any, Any, Any, dict[str, Any], dict[str, Any], Any]] = []
        self.offloaded = False
        try:
            from compressed_tensors.offload.cache.base import OffloadCache
        except ImportError:
            return
        for module in model.modules():
            params, buffers = module._parameters, module._buffers
            if not isinstance(params, OffloadCache):
                continue
            caches = [c for c in (params, buffers) if isinstance(c, OffloadCache)]
            if any(str(c.offload_device) == "disk" or _device(c.onload_device) != _device(c.offload_device)
                   for c in caches):
                self.offloaded, self.items = True, []
                return
            plain = [{k: c.onload(v) for k, v in c.offloaded_values.items()} if isinstance(c, OffloadCache) else c
                     for c in (params, buffers)]  # the same tensors: onloading to the device they are on
            original = getattr(module, "_original_forward_func", None)  # the module's forward under the wrapper
            own = None if original is None or original is type(module).forward else original.__get__(module)
            self.items.append((module, params, buffers, plain[0], plain[1], own))

    def note(self) -> str | None:
        return "the model is offloaded by compressed-tensors: decoded through its offloading" if self.offloaded \
            else None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        saved: list[tuple[Any, Any]] = []
        try:
            for module, _, _, params, buffers, own in self.items:
                saved.append((module, vars(module).get("forward")))
                module._parameters, module._buffers = params, buffers
                if own is None:
                    vars(module).pop("forward", None)
                else:
                    module.forward = own
            yield
        finally:
            for (module, params, buffers, _, _, _), (_, forward) in zip(self.items, saved):
                module._parameters, module._buffers = params, buffers
                if forward is not None:
                    module.forward = forward
