"""JSON that every reader can parse: no ``NaN`` or ``Infinity`` literals out, none let through on the way in.

Python's `json` writes a non-finite float as a bare ``NaN`` / ``Infinity``, which is not JSON: `jq`, JavaScript and
most other parsers refuse the file, and Python reads it back as a float NaN that then crashes whatever sorts, scales
or compares it (a chart's log axis did). Every document evalkit writes goes through `dumps`: a non-finite number
becomes ``null`` and, inside an object, a sibling ``<key>_reason`` says what it was, so an undefined value is explicit
and never confused with zero. Every document evalkit reads goes through `loads`, which turns the literals of older or
foreign files into ``None`` the same way.

>>> dumps({"kl_mean": float("nan"), "n": 3})
'{"kl_mean": null, "n": 3, "kl_mean_reason": "not a number (NaN): the value could not be computed"}'
>>> loads('{"kl": NaN, "ppl": Infinity, "big": 1e999}')
{'kl': None, 'ppl': None, 'big': None}
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "finite", "loads", "reason_of"]


def reason_of(value: float) -> str:
    """Why a non-finite float is no value: the text of its ``<key>_reason``.

    >>> reason_of(float("inf"))
    'infinite (+Infinity): the value overflowed or divided by zero'
    """
    if math.isnan(value):
        return "not a number (NaN): the value could not be computed"
    return f"infinite ({'+' if value > 0 else '-'}Infinity): the value overflowed or divided by zero"


def finite(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None (in objects: plus a ``<key>_reason`` unless one exists).

    Tuples become lists, as JSON would write them; everything else is returned as it is.

    >>> finite({"a": [1.0, float("-inf")], "b": float("nan"), "b_reason": "kept"})
    {'a': [1.0, None], 'b': None, 'b_reason': 'kept'}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        reasons: dict[str, str] = {}
        for key, value in obj.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
                if isinstance(key, str) and f"{key}_reason" not in obj:
                    reasons[f"{key}_reason"] = reason_of(value)
            else:
                out[key] = finite(value)
        out.update(reasons)
        return out
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, *, indent: int | None = None, sort_keys: bool = False, default: Any = None) -> str:
    """``json.dumps`` that never writes a NaN/Infinity literal (see `finite`); non-ASCII is kept as it is."""
    return json.dumps(finite(obj), indent=indent, sort_keys=sort_keys, ensure_ascii=False, allow_nan=False,
                      default=default)


def _no_constant(_name: str) -> None:
    return None


def _float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None  # 1e999 overflows to inf


def loads(text: str | bytes) -> Any:
    """``json.loads`` that reads ``NaN``, ``Infinity`` and ``-Infinity`` as None: an undefined value, never a float
    that poisons what reads it. Raises ``ValueError`` (``json.JSONDecodeError``) on text that is not JSON."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_float)
