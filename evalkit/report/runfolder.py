"""Where a run folder may be written, and how, so that nothing on disk is lost and no two runs ever mix.

What went wrong before: model names that sanitize alike (``x/y`` and ``x_y``, any two all-non-ASCII names, ``.`` and
``..``) shared one results folder, and a 300-byte name crashed with ENAMETOOLONG after the whole evaluation; a rerun
into an existing folder replaced run.json at once, verdicts.json only at the end and never removed stale results;
two runs into one ``--out`` both exited 0 with one index lost; an unrelated run.json was overwritten; an
unwritable ``--out`` was found only after every model had run. The rules here:

- `folder_name`: each model (and task) name maps to its own folder name, at most `MAX_NAME_BYTES` bytes: a name
  that is already a plain file name is kept, any other gets a short hash of the exact name.
- `check_target` (no side effects) decides before anything runs: a new or empty folder is written in place; a
  folder holding an earlier evalkit run (its run.json, and only files evalkit writes) is **replaced when the new
  run ends**; anything else (a file, a symbolic link, a folder with other files, a run.json evalkit did not write,
  the working directory or one of its ancestors when it would have to be replaced) is refused with one line.
- `Claim`: the folder being written holds an exclusive lock (``.evalkit.lock``, released by the kernel when the
  process dies), so a second run into the same ``--out`` is refused while the first is alive; a replacing run is
  written into a hidden sibling (``.<name>.<run id>.partial``) and swapped in by rename when it ends, complete or
  interrupted, so the folder holds exactly one run at every moment.

>>> folder_name("base_gptq_w4g64"), folder_name("x/y"), folder_name("x_y")
('base_gptq_w4g64', 'x_y-bd3c9047d6', 'x_y')
>>> folder_name("模型") != folder_name("量化"), folder_name(".") != folder_name(".."), len(folder_name("m" * 300))
(True, True, 64)
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from evalkit.core import jsonsafe
from evalkit.errors import RunError

__all__ = ["Claim", "LOCK", "MAX_NAME_BYTES", "RUN_FILES", "Target", "check_target", "folder_name", "foreign_file",
           "new_run_id"]

MAX_NAME_BYTES = 64
"""Longest folder or file stem evalkit makes from a name (file systems allow 255 bytes; paths stay readable)."""
LOCK = ".evalkit.lock"
REPORT_FILES = ("metrics_summary.csv", "report.md", "report.html")
RUN_FILES = frozenset({"run.json", "run.json.tmp", "verdicts.json", "run.log", "results", "drift", "lm_eval", LOCK,
                       *REPORT_FILES})
"""Everything evalkit writes at the top of a run folder; a folder holding anything else is never replaced."""

_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_HASHED = re.compile(r".*-[0-9a-f]{10}")


def folder_name(name: str) -> str:
    """A file-system name for a model or task name, unique per exact name and at most `MAX_NAME_BYTES` bytes.

    A name made only of ``A-Za-z0-9._+-`` (not starting or ending with ``.`` or ``_``, and not itself of the hashed
    form) is kept as it is, so ordinary run folders read naturally; every other name becomes its sanitized prefix
    and the first 10 hex digits of the SHA-256 of the exact name, so no two names share a folder.
    """
    plain = _SAFE.sub("_", name).strip("._")
    if plain == name and len(name) <= MAX_NAME_BYTES and not _HASHED.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    prefix = plain[: MAX_NAME_BYTES - 11].rstrip("._-") or "model"
    return f"{prefix}-{digest}"


def new_run_id() -> str:
    """A run's id: when it started (UTC) and 8 random hex digits, e.g. ``20250101T120000Z-1f2e3d4c``."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"


def foreign_file(folder: Path) -> str | None:
    """The first entry of a run folder that evalkit did not write (relative path), or None when there is none."""
    try:
        for entry in sorted(folder.iterdir()):
            if entry.name not in RUN_FILES and not entry.name.startswith(".tmp-"):
                return entry.name
            if entry.name in ("results", "drift", "lm_eval"):
                if entry.is_symlink() or not entry.is_dir():
                    return entry.name
                for sub in sorted(entry.rglob("*")):
                    if sub.is_symlink() or (sub.is_file() and not sub.name.endswith((".json", ".jsonl", ".tmp"))):
                        return sub.relative_to(folder).as_posix()
    except OSError as err:
        return f"{err.filename or folder} (unreadable: {err.strerror})"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a run goes, decided by `check_target`."""

    path: Path
    state: Literal["new", "empty", "run"]  # "run": it holds an earlier evalkit run, replaced when this one ends
    previous: str | None = None  # the earlier run's id


def check_target(path: str | os.PathLike[str], *, flag: str = "--out") -> Target:
    """Decide how a run folder can be written, without touching the disk; `RunError` naming the fix otherwise."""
    p = Path(path)
    long = [part for part in p.parts if len(part.encode()) > 255]
    if long:
        raise RunError(f"{flag}: the folder name {long[0][:40]!r}... is {len(long[0].encode())} bytes; file systems "
                       "allow 255; pass a shorter --out")
    if p.is_symlink():
        raise RunError(f"{flag} {p} is a symbolic link; pass the folder it points to, or a new folder")
    if p.exists() and not p.is_dir():
        raise RunError(f"{flag} {p} is a file, not a folder; pass a new or empty folder for the run")
    if not p.exists():
        ancestor = next((a for a in p.absolute().parents if a.exists()), Path("/"))
        if not ancestor.is_dir():
            raise RunError(f"{flag} {p}: {ancestor} is a file, so the folder cannot be created; pass another --out")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise RunError(f"{flag} {p}: cannot create it, {ancestor} is not writable; pass a folder you can write")
        return Target(p, "new")
    if not os.access(p, os.R_OK | os.W_OK | os.X_OK):
        raise RunError(f"{flag} {p} is not writable; pass a folder you can write")
    try:
        entries = sorted(e.name for e in p.iterdir())
    except OSError as err:
        raise RunError(f"{flag} {p} cannot be listed ({err.strerror}); pass a folder you can write") from None
    if not entries:
        return Target(p, "empty")
    manifest = p / "run.json"
    if not manifest.is_file():
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise RunError(f"{flag} {p} already holds files that are not an evalkit run ({shown}); they are never "
                       "overwritten: pass a new or empty folder")
    doc = _read_manifest(manifest)
    if doc is None:
        raise RunError(f"{flag} {p}: its run.json was not written by evalkit (no schema 'evalkit.run'); it is never "
                       "overwritten: pass a new or empty folder")
    foreign = foreign_file(p)
    if foreign is not None:
        raise RunError(f"{flag} {p} holds an earlier run and {foreign}, which evalkit did not write; move it out or "
                       "pass another folder (a rerun replaces the whole folder)")
    here = Path.cwd().resolve()
    if p.resolve() == here or p.resolve() in here.parents:
        raise RunError(f"{flag} {p} is the working directory or one of its ancestors, which a rerun cannot "
                       "replace; run from elsewhere or pass another folder")
    if not os.access(p.absolute().parent, os.W_OK | os.X_OK):
        raise RunError(f"{flag} {p} holds an earlier run, and replacing it needs its parent {p.absolute().parent} "
                       "to be writable; pass another folder")
    previous = doc.get("run_id")
    return Target(p, "run", previous if isinstance(previous, str) else None)


def _read_manifest(file: Path) -> dict[str, Any] | None:
    try:
        doc = jsonsafe.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == "evalkit.run" else None


class Claim:
    """The folder a run writes while it runs, locked; `finish` puts it in place (see the module docstring)."""

    def __init__(self, target: Target, run_id: str, *, flag: str = "--out") -> None:
        self.target, self.run_id, self.flag = target, run_id, flag
        self._locks: list[IO[str]] = []
        p = target.path
        try:
            if target.state == "new":
                p.mkdir(parents=True)
            if target.state == "run":
                self._lock(p)  # no second run may start replacing it, nor write into it
                self.folder = p.absolute().parent / f".{p.name}.{run_id}.partial"
                self.folder.mkdir()
            else:
                self.folder = p
            self._lock(self.folder)
        except FileExistsError:
            self.release()
            raise RunError(f"{flag} {p} was created by someone else just now; pass another folder") from None
        except OSError as err:
            self.release()
            raise RunError(f"{flag} {p}: cannot write the run folder ({err.strerror}); pass a folder you can "
                           "write") from None

    def _lock(self, folder: Path) -> None:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no cross-process lock
            return
        fh = open(folder / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the run's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            self.release()
            raise RunError(f"{self.flag} {self.target.path}: another evalkit run ({holder}) is writing into this "
                           "folder; wait for it to end or pass another folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, run {self.run_id}\n")
        fh.flush()
        self._locks.append(fh)

    def finish(self) -> Path:
        """Swap a replacing run into place (the earlier one is deleted only if it still holds nothing but evalkit's
        files) and release the locks; returns the run folder."""
        p = self.target.path
        try:
            if self.folder != p:
                trash = p.absolute().parent / f".{p.name}.{self.target.previous or 'previous'}.replaced"
                os.rename(p, trash)
                os.rename(self.folder, p)
                foreign = foreign_file(trash)
                if foreign is None:
                    shutil.rmtree(trash, ignore_errors=True)
                else:
                    warnings.warn(f"the run this one replaced in {p} gained {foreign} while it ran; it is kept in "
                                  f"{trash}", stacklevel=2)
                self.folder = p
        finally:
            self.release()
        return p

    def release(self) -> None:
        for fh in self._locks:
            fh.close()
        self._locks.clear()
