"""The numeric platform a gate runs on: the key under which non-reproducible expectations are stored.

Greedy decoding is deterministic on one machine, but the last bits of a bf16 forward pass depend on the kernels that
compute it: on a CPU, ATen's vector width (``torch.backends.cpu.get_cpu_capability()``, capped by
``ATEN_CPU_CAPABILITY``) and the path a bf16 matrix product takes (oneDNN with AMX, AVX-512 BF16, AVX-512 or AVX2
kernels, capped by ``ONEDNN_MAX_CPU_ISA``; ATen's own GEMM where oneDNN is not used for bf16); on a GPU, the card
(cuBLAS picks kernels per device: an H100 and an H200 differ in 2 of the zoo's 136 CUDA expectations). A healthy
model's replies do not move under that noise; a broken model's chaotic replies do. Snapshots therefore store what is
reproducible once per device flavour and what is not under `platform_key`, the way transformers' quantization tests
keep expected outputs per device type and compute capability.

Measured on the zoo (docs/snapshots.md): OMP thread counts (1 or 2) change nothing; the oneDNN ISA does.

>>> platform_key("cpu").startswith("cpu-")
True
"""

from __future__ import annotations

import functools
import os
import re

__all__ = ["flavour", "platform_key"]

# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA) from lowest to highest; a cap admits every level at or below it.
_ONEDNN_LEVELS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
                  "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16")
# The bf16 GEMM paths that give different bits, best first, each with the oneDNN level it needs.
_GEMM_PATHS = (("amx", "AVX512_CORE_AMX"), ("avx512_bf16", "AVX512_CORE_BF16"), ("avx512", "AVX512_CORE"),
               ("avx2", "AVX2"))


def flavour(device: str) -> str:
    """The snapshot flavour of a torch device string: ``cuda`` for any CUDA device, else ``cpu``.

    >>> flavour("cuda:1"), flavour("cpu")
    ('cuda', 'cpu')
    """
    return "cuda" if device.startswith("cuda") else "cpu"


def platform_key(device: str) -> str:
    """``cpu-<ATen capability>-<bf16 GEMM path>`` or ``cuda-<device name>``, e.g. ``cpu-avx512-onednn_avx512_bf16``,
    ``cpu-avx2-aten_gemm``, ``cuda-nvidia_h100_80gb_hbm3``."""
    if flavour(device) == "cuda":
        return _cuda_key(device)
    return _cpu_key(os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "",
                    os.environ.get("ATEN_CPU_CAPABILITY") or "")


@functools.cache
def _cuda_key(device: str) -> str:
    import torch

    return "cuda-" + _slug(torch.cuda.get_device_name(torch.device(device)))


@functools.cache
def _cpu_key(onednn_cap: str, aten_cap: str) -> str:  # the environment is part of the cache key: it caps the ISA
    import torch

    aten = torch.backends.cpu.get_cpu_capability().lower()
    cpu = torch.cpu
    supported = {"amx": cpu._is_amx_tile_supported(), "avx512_bf16": cpu._is_avx512_bf16_supported(),
                 "avx512": cpu._is_avx512_supported(), "avx2": cpu._is_avx2_supported()}
    if not supported["avx512"]:  # torch sends bf16 matmuls to oneDNN only on AVX-512 hardware (its bf16 device check)
        return f"cpu-{aten}-aten_gemm"
    cap = onednn_cap.upper()
    ceiling = _ONEDNN_LEVELS.index(cap) if cap in _ONEDNN_LEVELS else len(_ONEDNN_LEVELS)
    for name, level in _GEMM_PATHS:
        if supported[name] and _ONEDNN_LEVELS.index(level) <= ceiling:
            return f"cpu-{aten}-onednn_{name}"
    return f"cpu-{aten}-onednn_{cap.lower() or 'default'}"


def _slug(text: str) -> str:
    """
    >>> _slug("NVIDIA H100 80GB HBM3")
    'nvidia_h100_80gb_hbm3'
    """
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
