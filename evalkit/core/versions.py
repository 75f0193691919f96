"""Versions of installed libraries, for the records that must say what produced them (cache keys, provenance).

>>> library_versions(("surely-not-installed-package",))
{'surely-not-installed-package': 'absent'}
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["EVALKIT_VERSION", "library_versions"]

EVALKIT_VERSION = "0.1.0"
"""evalkit's own version (`evalkit.__version__`); keep it equal to pyproject.toml's."""


def library_versions(packages: Iterable[str]) -> dict[str, str]:
    """``{package: version}`` for each distribution name, ``"absent"`` for one that is not installed."""
    from importlib import metadata

    out: dict[str, str] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out
