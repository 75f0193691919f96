"""Where evalkit reads what it ships and writes what it makes: the one home of every default path.

An evalkit installed from a wheel lives in site-packages, which a user's run must never write into, and the folders
of a checkout (``fixtures/``, ``docs/``, ``scripts/``) are not there. So defaults are decided here, once:

- what evalkit *ships* (the fixture zoo's manifest and parents, the guides) is read from the checkout when evalkit
  runs from one (a clone, or an editable install), else from the package data the wheel carries
  (``evalkit/_fixtures``, ``evalkit/_docs``; see setup.py);
- what evalkit *writes* goes to the working directory (run folders, the generation cache: relative defaults such as
  ``runs/gate`` and ``.evalkit/cache``) or, for what serves every project alike (the zoo's built variants), to the
  user's cache folder (``$EVALKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/evalkit``, else ``~/.cache/evalkit``); a
  checkout keeps its own ``.evalkit/zoo``, git-ignored, as before.

>>> doc("gate.md").name, data_dir().joinpath("zoo.toml").is_file()
('gate.md', True)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PACKAGE", "checkout", "data_dir", "doc", "user_cache_dir", "zoo_cache_dir"]

PACKAGE = Path(__file__).resolve().parents[1]
"""The installed ``evalkit`` package folder (read-only for a user: never a default place to write)."""


def checkout() -> Path | None:
    """The source checkout evalkit runs from (a clone or an editable install), or None when it was installed."""
    root = PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "fixtures" / "zoo.toml").is_file() else None


def data_dir() -> Path:
    """The folder holding the fixture zoo's manifest (``zoo.toml``) and committed parents (``zoo/``)."""
    root = checkout()
    return root / "fixtures" if root is not None else PACKAGE / "_fixtures"


def doc(name: str) -> Path:
    """A guide by file name (``gate.md``): the checkout's ``docs/``, or the copy the wheel ships."""
    root = checkout()
    return (root / "docs" if root is not None else PACKAGE / "_docs") / name


def user_cache_dir() -> Path:
    """evalkit's folder in the user's cache: ``$EVALKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/evalkit``, else
    ``~/.cache/evalkit``."""
    explicit = os.environ.get("EVALKIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "evalkit"


def zoo_cache_dir() -> Path:
    """Where the zoo's variants are built: ``$EVALKIT_ZOO_CACHE``, else the checkout's ``.evalkit/zoo``, else
    ``zoo/`` in the user's cache folder (shared by every project of the user; builds are keyed and locked)."""
    explicit = os.environ.get("EVALKIT_ZOO_CACHE")
    if explicit:
        return Path(explicit)
    root = checkout()
    return root / ".evalkit" / "zoo" if root is not None else user_cache_dir() / "zoo"
