"""`Registry`: the one way an extension point (tasks, metrics, loader formats, checks, backends, recipes, zoo
variants and breakages, synthetic families) names its entries.

A registry maps a name to an entry, in registration order; registering a name twice is an error, and looking up
an unknown name raises the registry's error class with one uniform message that names the value and lists the
known ones (the same sentence a manifest check or the command line prints).

>>> colours = Registry[str]("colour")
>>> colours.register("red", "#f00")
'#f00'
>>> colours.names(), "red" in colours, colours.get("red")
(('red',), True, '#f00')
>>> colours.get("green")
Traceback (most recent call last):
evalkit.errors.UnknownNameError: unknown colour 'green'; known colours: red

Entries that are functions register with a decorator:

>>> shouts = Registry[Callable[[str], str]]("shout")
>>> @shouts.register("loud")
... def loud(text: str) -> str:
...     return text.upper()
>>> shouts.get("loud")("hi")
'HI'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, cast, overload

from evalkit.errors import EvalkitError, UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")
E = TypeVar("E")


class Registry(Generic[T]):
    """Name -> entry, in registration order (see the module docstring)."""

    def __init__(self, kind: str, *, plural: str | None = None, error: type[EvalkitError] = UnknownNameError) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.error = error
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[E], E]: ...

    @overload
    def register(self, name: str, entry: T) -> T: ...

    def register(self, name: str, entry: object = None) -> object:
        """Add `entry` under `name`; without an entry, a decorator that registers what it decorates."""
        if entry is None:
            def decorator(obj: E) -> E:
                self._add(name, cast(T, obj))  # the decorated object is the entry
                return obj

            return decorator
        self._add(name, cast(T, entry))
        return entry

    def _add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise self.error(f"{self.kind} {name!r} is registered twice; each {self.kind} has one entry")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry called `name`; an unknown name raises the registry's error, listing the known names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.error(f"unknown {self.kind} {name!r}; known {self.plural}: {', '.join(self._entries)}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def values(self) -> tuple[T, ...]:
        return tuple(self._entries.values())

    def items(self) -> tuple[tuple[str, T], ...]:
        return tuple(self._entries.items())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
