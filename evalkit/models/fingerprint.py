"""Content hash of a model folder: the cache key of every result and the identity shown in reports.

Two folders with the same weights, config, tokenizer, chat template and generation config behave the same under
greedy decoding, so they share a fingerprint; change any of those (a lost eos token, an edited chat template, one
corrupted scale) and the fingerprint changes. Files that do not change behaviour (README, provenance notes,
licences) are left out, so documenting a model never invalidates its cached results.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["fingerprint", "fingerprint_files", "combine"]

_SCHEME = b"evalkit-fingerprint-v1"
_CHUNK = 1 << 20

# Suffixes of files that decide behaviour: weights in every format (pickles too, so a pickle-only folder still gets
# an honest key even though it is refused at load time), configs, tokenizer files and chat templates.
_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".json", ".jinja", ".model", ".txt", ".tiktoken",
             ".yaml")
# Files with those suffixes that only describe the model.
_IGNORED = frozenset({"provenance.json", "README.md", "LICENSE.txt", "license.txt", "requirements.txt",
                      "trainer_state.json", "training_args.json", "all_results.json", "train_results.json",
                      "eval_results.json"})


def fingerprint_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files of a model folder that enter its fingerprint, sorted by relative path.

    Nested folders count too (e.g. an adapter stored in a subfolder); hidden files and folders do not.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"model folder {root} does not exist (or is not a folder)")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or name in _IGNORED or not name.endswith(_SUFFIXES):
                continue
            found.append(Path(dirpath, name))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def fingerprint(path: str | os.PathLike[str]) -> str:
    """Stable hex digest (sha256) of a model folder's behaviour-deciding files.

    The digest covers each file's relative path and bytes, so renaming a shard or editing one byte changes it,
    while moving the whole folder elsewhere does not. Cost is one read of the files (~0.1 s for 50 MB).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "config.json").write_text('{"model_type": "qwen3"}')
    >>> _ = (d / "README.md").write_text("notes do not count")
    >>> a = fingerprint(d)
    >>> len(a), a == fingerprint(d)
    (64, True)
    >>> _ = (d / "generation_config.json").write_text('{"eos_token_id": 2}')
    >>> fingerprint(d) != a
    True
    """
    root = Path(path)
    digest = hashlib.sha256(_SCHEME)
    files = fingerprint_files(root)
    if not files:
        raise FileNotFoundError(f"model folder {root} holds no model files (config, weights, tokenizer)")
    for file in files:
        digest.update(b"\0" + file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(_file_digest(file))
    return digest.hexdigest()


def combine(*fingerprints: str) -> str:
    """One fingerprint for a model assembled from several folders (an adapter on its base), order-sensitive.

    >>> combine("ab", "cd") == combine("ab", "cd") != combine("cd", "ab")
    True
    """
    digest = hashlib.sha256(_SCHEME + b"+combine")
    for fp in fingerprints:
        digest.update(b"\0" + fp.encode())
    return digest.hexdigest()


# Re-hashing unchanged files is the only cost worth avoiding: a session fingerprints the same zoo many times.
_memo: dict[tuple[str, int, int, int], bytes] = {}


def _file_digest(file: Path) -> bytes:
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    cached = _memo.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    with open(file, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    _memo[key] = h.digest()
    return _memo[key]
