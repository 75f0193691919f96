"""Which device a run uses: ``"auto"`` resolved once, here (torch is imported only to ask)."""

from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a CUDA device is visible, else "cpu"; anything else as given.

    >>> resolve_device("cpu")
    'cpu'
    """
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
