"""Walking a chain of links (a model's parents, a zoo variant's build sources): the one implementation.

>>> parents = {"v": "p", "p": "root", "root": None}.get
>>> lineage("v", parents)
['v', 'p', 'root']
>>> with_ancestors(["v", "p"], parents)
['root', 'p', 'v']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from evalkit.errors import CycleError

__all__ = ["lineage", "with_ancestors"]

Link = Callable[[str], "str | None"]


def lineage(name: str, link: Link) -> list[str]:
    """`name`, its link, its link's link, ... until a name links to None; a loop raises `CycleError`."""
    chain = [name]
    while (nxt := link(chain[-1])) is not None:
        if nxt in chain:
            raise CycleError(nxt)
        chain.append(nxt)
    return chain


def with_ancestors(names: Iterable[str], link: Link) -> list[str]:
    """`names` and everything their chains reach, each chain root first, every name once."""
    out: list[str] = []
    for name in names:
        out += [n for n in reversed(lineage(name, link)) if n not in out]
    return out
