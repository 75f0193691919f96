"""The dtypes a model can be loaded in: checked by name without importing torch (the validation pass before a run),
and turned into torch's dtype when the model loads."""

from __future__ import annotations

from typing import Any

from evalkit.errors import ModelLoadError

__all__ = ["DTYPES", "check_dtype", "torch_dtype"]


DTYPES = ("float32", "bfloat16", "float16", "float64", "float", "half", "double")
"""The load dtypes a model can be evaluated in (by name, with or without ``torch.``), besides "auto"."""


def check_dtype(dtype: str | None) -> None:
    """Refuse a dtype name that is not a floating dtype evalkit loads, without importing torch.

    >>> check_dtype("torch.bfloat16"), check_dtype(None)
    (None, None)
    >>> check_dtype("float33")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    evalkit.errors.ModelLoadError: dtype 'float33' is not a torch dtype evalkit loads; use auto, float32, ...
    """
    if dtype is None or dtype == "auto" or (isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES):
        return
    raise ModelLoadError(f"dtype {dtype!r} is not a torch dtype evalkit loads; use auto, {', '.join(DTYPES)} "
                         "(or leave it out to keep the checkpoint's own)")


def torch_dtype(dtype: Any) -> Any:
    """The torch dtype (or "auto") a model is loaded in, from its name; torch is imported only for a name."""
    if dtype is None or dtype == "auto":
        return "auto"
    if isinstance(dtype, str):
        import torch

        check_dtype(dtype)
        return getattr(torch, dtype.removeprefix("torch."))
    return dtype
