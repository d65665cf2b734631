"""Attributes computed on first read: :class:`lazy`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

__all__ = ["forget", "lazy"]

T = TypeVar("T")


class lazy(Generic[T]):
    """An attribute computed by the decorated method on first read, then kept in
    the instance's ``__dict__`` (where it may also be assigned): unlike a
    property, later reads cost no call at all.

    A non-data descriptor, as :func:`functools.cached_property` is, without the
    lock that one takes on Python 3.11.
    """

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> lazy[T]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object | None, owner: type) -> lazy[T] | T:
        if obj is None:
            return self
        value = self.fn(obj)
        # setattr, not ``obj.__dict__[...]``: asking for ``__dict__`` would
        # make a real dict of the instance's inline attribute values.
        setattr(obj, self.name, value)
        return value


def forget(obj: object, *names: str) -> None:
    """Drop the kept values of ``obj``'s lazy attributes ``names``: the next
    read computes them again."""
    kept = obj.__dict__
    for name in names:
        kept.pop(name, None)
