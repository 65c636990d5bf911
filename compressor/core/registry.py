"""One registry helper for every set of named choices (targets, methods, devices, ...)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import CompressError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names mapped to objects; an unknown name is an error that lists the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise RuntimeError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda item: self.add(name, item)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise CompressError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)


def check_choice(kind: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Validate a config field against fixed choices, with the same message as a registry."""
    if value not in choices:
        raise CompressError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")
    return value
