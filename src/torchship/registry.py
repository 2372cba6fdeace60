"""A small named registry for plug-ins (datasets, models, optimizers, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from torchship.errors import TorchshipError

T = TypeVar("T")


class Registry(Generic[T]):
    """Map names to objects; a miss names every choice.

    Example:
        >>> shapes = Registry("shape")
        >>> @shapes.register("square")
        ... def square(n): return n * n
        >>> shapes.get("square")(3)
        9
    """

    def __init__(self, kind: str, error: type[TorchshipError] = TorchshipError):
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise self._error(
                f"unknown {self.kind} {name!r}", fix=f"choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))
