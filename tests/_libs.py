"""The httpx family, httpx and httpx2, for tests run over both.

The ``lib`` fixture (``tests/conftest.py``) is each library's module in turn.
httpx2 is in the ``test`` extra; where it is not installed its tests are
skipped with a clear message, except in CI (the ``CI`` environment variable
is set), where a missing httpx2 fails them: CI must run them, not skip them.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from types import ModuleType
from typing import Any

import pytest

import resilience

__all__ = ["LIBRARIES", "derive", "lib_of", "load", "shells_of"]

LIBRARIES = ("httpx", "httpx2")


def load(name: str) -> ModuleType:
    """The module ``name``; skips the test (fails it in CI) when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f'{name} is not installed (pip install "resilience-transports[{name}]")'
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so the {name} tests must run", pytrace=False)
        pytest.skip(message)


def shells_of(lib: ModuleType) -> Any:
    """Where the transports and hooks for ``lib`` live: ``resilience`` or ``resilience.httpx2``."""
    if lib.__name__ == "httpx":
        return resilience
    return importlib.import_module(f"resilience.{lib.__name__}")


def lib_of(obj: object) -> ModuleType:
    """The library of an httpx or httpx2 object (a request, a response, an error)."""
    return sys.modules[type(obj).__module__.partition(".")[0]]


@functools.cache
def derive(cls: type, lib: ModuleType, base: str) -> type:
    """``cls`` over ``lib``'s class ``base`` (a test stream or transport of either library)."""
    return type(cls.__name__, (cls, getattr(lib, base)), {})
