"""transformers' load report as an error: a checkpoint whose tensors do not match the model it declares.

transformers 5 initializes missing and size-mismatched tensors randomly and drops unexpected ones, and only logs a
table; `evalkit.models.loading` asks for the report (``output_loading_info=True``) and passes it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.errors import ModelLoadError

__all__ = ["check_load_report"]


def check_load_report(root: Path, report: dict[str, Any]) -> None:
    """A checkpoint whose tensors do not match the model it declares is an error naming the keys: transformers
    initializes missing and size-mismatched tensors randomly and drops unexpected ones, and only logs it.

    >>> check_load_report(Path("m"), {"missing_keys": {"model.norm.weight"}, "unexpected_keys": set(),
    ...                                "mismatched_keys": set()})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    evalkit.errors.ModelLoadError: m: the weights do not match config.json: missing (randomly initialized): model.norm.weight...
    """
    problems = []
    for label, keys in (("missing (randomly initialized)", report.get("missing_keys")),
                        ("unexpected (ignored)", report.get("unexpected_keys"))):
        if keys:
            problems.append(f"{label}: {_keys(sorted(keys))}")
    mismatched = sorted(report.get("mismatched_keys") or ())
    if mismatched:
        problems.append("size mismatch: " + _keys([f"{k} (checkpoint {tuple(a)}, model {tuple(b)})"
                                                   for k, a, b in mismatched]))
    if problems:
        raise ModelLoadError(f"{root}: the weights do not match config.json: {'; '.join(problems)}. Re-save the "
                             "model with `save_pretrained` from the model it came from, or restore config.json.")


def _keys(keys: list[str], shown: int = 4) -> str:
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")
