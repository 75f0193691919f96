"""Generation cache: a rerun of an unchanged model reads its generations instead of decoding again.

Only generations are cached (the expensive part); extraction, diagnosis and scoring are recomputed on every run, so
a fix in `evalkit.core.extract` or `evalkit.core.metrics` applies to cached models too. The key covers everything that can
change a generation: the model's fingerprint (weights, config, tokenizer, chat template), the task's rows, the
exact prompt texts and token ids (prompt wording, system prompt, template, enable_thinking), the generation config,
the backend (device, dtype, decoder) and the versions of torch, transformers and evalkit's generation code.

One JSON file per key under ``<root>/generations/``; writes are atomic (temp file, then rename), so parallel test
workers never read half a file. A corrupt entry is reported, ignored and overwritten; so is an entry that parses
but holds the wrong replies (another count or order of items than the prompts it is read for, or fields of the
wrong type), which would otherwise fail the model on every rerun. The cache is a speed-up, never a reason to fail:
a write that fails (read-only or full disk, a file where the folder should be) is a warning, once per cache.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from evalkit.core import jsonsafe
from evalkit.core.types import FinishReason
from evalkit.core.versions import library_versions
from evalkit.run.generation import Generation, GenerationConfig, GenerationRun, Phases, Prompt

__all__ = ["CACHE_PACKAGES", "Cache", "cache_versions", "key_parts", "make_key"]

CACHE_FORMAT = 2  # bump when the stored layout changes (2: each generation keeps its token ids, for drift)
GENERATION_CODE_VERSION = 2  # bump when evalkit.run.generation changes what it produces for the same inputs
# 2: runs carry per-phase timings (Phases), which the slow-kernel check needs: entries without them are regenerated
DEFAULT_CACHE_DIR = Path(".evalkit") / "cache"
CACHE_PACKAGES = ("torch", "transformers", "compressed-tensors", "peft", "bitsandbytes")
"""The libraries whose numerics decide generations: their versions are part of every cache key."""


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    return tuple({"evalkit_generation": str(GENERATION_CODE_VERSION), **library_versions(CACHE_PACKAGES)}.items())


def cache_versions() -> dict[str, str]:
    """Versions of the libraries whose numerics decide generations (plus evalkit's generation code)."""
    return dict(_versions())


def key_parts(*, fingerprint: str, task_name: str, task_digest: str, prompts: Sequence[Prompt],
              config: GenerationConfig, backend: Mapping[str, str]) -> dict[str, Any]:
    """The inputs of a cache key, kept human-readable (they are stored beside the entry for debugging)."""
    h = hashlib.sha256()
    for p in prompts:
        h.update(json.dumps([p.item_id, p.text, list(p.token_ids), p.mode]).encode())
    return {
        "fingerprint": fingerprint,
        "task": task_name,
        "rows": task_digest,
        "prompts": h.hexdigest(),
        "config": config.to_dict(),
        "backend": dict(backend),
        "versions": cache_versions(),
    }


def make_key(parts: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `parts`.

    >>> make_key({"a": 1, "b": [2]}) == make_key({"b": [2], "a": 1})
    True
    """
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Cache:
    """A folder of cached generation runs.

    >>> import tempfile
    >>> cache = Cache(tempfile.mkdtemp())
    >>> cache.get("0" * 64) is None
    True
    """

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_CACHE_DIR) -> None:
        self.root = Path(root).absolute()
        self._warned = False  # a failed write is warned about once, not once per (model, task)

    def path(self, key: str) -> Path:
        return self.root / "generations" / key[:2] / f"{key}.json"

    def get(self, key: str, *, expect: Sequence[str] | None = None) -> GenerationRun | None:
        """The cached run for `key`, or None (missing, unreadable or malformed: the last two are warned about).

        expect: the item ids the run must hold, in this order; an entry with other ids (a count or order that
        does not match the prompts) is warned about and treated as a miss, so it is regenerated and overwritten.
        """
        path = self.path(key)
        try:
            data = jsonsafe.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):  # no entry (a file where the cache folder should be: none)
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            warnings.warn(f"evalkit cache: ignoring unreadable entry {path} ({err}); it will be regenerated",
                          stacklevel=2)
            return None
        try:
            if data["format"] != CACHE_FORMAT or data["key"] != key:
                return None
            gens = tuple(_generation(g) for g in data["generations"])
            phases = Phases.from_dict(data["phases"]) if data.get("phases") else None
            run = GenerationRun(gens, float(data["seconds"]), {str(k): str(v) for k, v in data["backend"].items()},
                                phases)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            warnings.warn(f"evalkit cache: ignoring malformed entry {path} ({err!r}); it will be regenerated",
                          stacklevel=2)
            return None
        ids = [g.item_id for g in gens]
        if expect is not None and ids != list(expect):
            problem = (f"{len(ids)} replies for {len(expect)} prompts" if len(ids) != len(expect) else
                       "replies for other items or in another order than the prompts")
            warnings.warn(f"evalkit cache: ignoring entry {path}: it holds {problem}; it will be regenerated",
                          stacklevel=2)
            return None
        return run

    def put(self, key: str, run: GenerationRun, parts: Mapping[str, Any]) -> Path | None:
        """Store `run` under `key` atomically; returns the entry's path, or None when it could not be written (a
        warning, once per cache: the generations are still used, only the next run cannot reuse them)."""
        path = self.path(key)
        payload = {
            "format": CACHE_FORMAT,
            "key": key,
            "parts": parts,
            "seconds": run.seconds,
            "backend": run.backend,
            "phases": run.phases.to_dict() if run.phases is not None else None,
            "generations": [g.to_dict() for g in run.generations],
        }
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(jsonsafe.dumps(payload))
            os.replace(tmp, path)
        except OSError as err:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if not self._warned:
                self._warned = True
                warnings.warn(f"evalkit cache: could not write to {self.root} ({err.strerror or err}); generations "
                              "are not cached, so a rerun generates them again", stacklevel=2)
            return None
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise
        return path


_TYPES: dict[str, type] = {"item_id": str, "prompt": str, "raw_text": str, "text": str, "prompt_tokens": int,
                          "output_tokens": int, "finish_reason": str}
_FINISH_REASONS = get_args(FinishReason)


def _generation(row: Any) -> Generation:
    """One stored generation, its fields checked: a hand-edited or foreign entry is refused, never half-used. The
    field names come from `Generation` itself, so a field added there is required here without an edit."""
    names = {f.name for f in dataclasses.fields(Generation)}
    if not isinstance(row, dict) or set(row) != names:
        raise ValueError(f"a generation needs exactly the fields {sorted(names)}")
    for name, kind in _TYPES.items():
        if not isinstance(row[name], kind) or isinstance(row[name], bool):
            raise ValueError(f"generation field {name!r} is {row[name]!r}")
    if row["finish_reason"] not in _FINISH_REASONS:
        raise ValueError(f"finish_reason {row['finish_reason']!r} is not one of {_FINISH_REASONS}")
    ids = row["token_ids"]
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValueError("generation field 'token_ids' is not a list of token ids")
    return Generation.from_dict(row)
