"""The small JSON files of a model or run folder (config.json, provenance.json, run documents): one reader.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "config.json").write_text('{"model_type": "qwen3"}')
>>> read_json_object(folder / "config.json"), read_json_object(folder / "absent.json")
({'model_type': 'qwen3'}, None)
>>> _ = (folder / "broken.json").write_text("{")
>>> try_read_json(folder / "broken.json") is None
True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["JSONFileError", "read_json_object", "try_read_json"]


class JSONFileError(ValueError):
    """A JSON file that exists but is not readable as one JSON object; callers turn it into their own error."""


def read_json_object(file: Path) -> dict[str, Any] | None:
    """The JSON object in `file`; None when the file does not exist; `JSONFileError` when it is not an object."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise JSONFileError(f"not readable ({err})") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise JSONFileError(f"not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise JSONFileError(f"expected a JSON object, got {type(data).__name__}")
    return data


def try_read_json(file: Path) -> dict[str, Any] | None:
    """The JSON object in `file`, or None when it is missing or unreadable (for descriptions that may guess)."""
    try:
        return read_json_object(file)
    except JSONFileError:
        return None
