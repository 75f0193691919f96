"""Generation cache: a rerun of an unchanged model reads its generations instead of decoding again.

Only generations are cached (the expensive part); extraction, diagnosis and scoring are recomputed on every run, so
a fix in `evalkit.core.extract` or `evalkit.core.metrics` applies to cached models too. The key covers everything that can
change a generation: the model's fingerprint (weights, config, tokenizer, chat template), the task's rows, the
exact prompt texts and token ids (prompt wording, system prompt, template, enable_thinking), the generation config,
the backend (device, dtype, decoder) and the versions of torch, transformers and evalkit's generation code.

One JSON file per key under ``<root>/generations/``; writes are atomic (temp file, then rename), so parallel test
workers never read half a file. A corrupt entry is reported, ignored and overwritten.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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

    def path(self, key: str) -> Path:
        return self.root / "generations" / key[:2] / f"{key}.json"

    def get(self, key: str) -> GenerationRun | None:
        """The cached run for `key`, or None (missing or unreadable: an unreadable entry is warned about)."""
        path = self.path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            warnings.warn(f"evalkit cache: ignoring unreadable entry {path} ({err}); it will be regenerated",
                          stacklevel=2)
            return None
        try:
            if data["format"] != CACHE_FORMAT or data["key"] != key:
                return None
            gens = tuple(Generation.from_dict(g) for g in data["generations"])
            phases = Phases.from_dict(data["phases"]) if data.get("phases") else None
            return GenerationRun(gens, float(data["seconds"]), dict(data["backend"]), phases)
        except (KeyError, TypeError, ValueError) as err:
            warnings.warn(f"evalkit cache: ignoring malformed entry {path} ({err!r}); it will be regenerated",
                          stacklevel=2)
            return None

    def put(self, key: str, run: GenerationRun, parts: Mapping[str, Any]) -> Path:
        """Store `run` under `key` atomically; returns the entry's path."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": CACHE_FORMAT,
            "key": key,
            "parts": parts,
            "seconds": run.seconds,
            "backend": run.backend,
            "phases": run.phases.to_dict() if run.phases is not None else None,
            "generations": [g.to_dict() for g in run.generations],
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
