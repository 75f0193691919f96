"""Which device a run uses: ``"auto"`` resolved once, here (torch is imported only to ask), and a device that cannot
be used refused up front, as one line, instead of as torch's error once per model."""

from __future__ import annotations

import re

from evalkit.errors import ConfigError

__all__ = ["check_device", "resolve_device"]

_FORMS = "cpu, cuda, cuda:N or auto"
_DEVICE = re.compile(r"(auto|cpu|cuda)(:(\d+))?")


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a CUDA device is visible, else "cpu"; anything else as given.

    >>> resolve_device("cpu")
    'cpu'
    """
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str, *, what: str = "--device") -> str:
    """`device` resolved, after checking it names a device this machine has; `ConfigError` otherwise.

    Only a CUDA device imports torch (to ask whether one is visible); cpu and auto never do.

    >>> check_device("cpu")
    'cpu'
    >>> check_device("gpu")
    Traceback (most recent call last):
    evalkit.errors.ConfigError: --device 'gpu' is not a device evalkit runs on; use cpu, cuda, cuda:N or auto
    """
    match = _DEVICE.fullmatch(device) if isinstance(device, str) else None
    if match is None or (match.group(2) and match.group(1) != "cuda"):
        raise ConfigError(f"{what} {device!r} is not a device evalkit runs on; use {_FORMS}")
    if match.group(1) != "cuda":
        return device
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"{what} {device!r}: no CUDA GPU is visible here (torch.cuda.is_available() is False); use "
                          "--device cpu, or auto to take a GPU only when there is one")
    index = int(match.group(3) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"{what} {device!r}: this machine has {count} visible GPU(s) (cuda:0 to cuda:{count - 1})")
    return device
