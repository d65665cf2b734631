"""The transports and event hooks for httpx2, the maintained successor of httpx.

httpx2 has httpx's API under another import name, and its client accepts only
its own transports: ``httpx2.Client(transport=resilience.ResilientTransport())``
fails. Use these instead::

    import httpx2
    import resilience.httpx2

    client = httpx2.Client(
        transport=resilience.httpx2.ResilientTransport(),
        event_hooks=resilience.httpx2.httpx_event_hooks(),
    )

They are the httpx ones built over httpx2 (one implementation serves both,
see :mod:`resilience.shells.httpx_transport`); :func:`resilience.classify`
and :func:`resilience.attempts` take httpx2 responses as they are, and an error
raised from these hooks is also an ``httpx2.HTTPStatusError``.

httpx2 is an optional extra: ``pip install "resilience-transports[httpx2]"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, ClassVar

try:
    import httpx2
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        'resilience.httpx2 needs httpx2: pip install "resilience-transports[httpx2]"'
    ) from exc
from typing_extensions import Unpack

from resilience.shells.hooks import HookOptions, async_event_hooks_for, event_hooks_for
from resilience.shells.httpx_transport import AsyncShell, SyncShell

__all__ = [
    "AsyncResilientTransport",
    "ResilientTransport",
    "async_httpx_event_hooks",
    "httpx_event_hooks",
]


class ResilientTransport(
    SyncShell[httpx2.BaseTransport, httpx2.Request, httpx2.Response], httpx2.BaseTransport
):
    """:class:`resilience.ResilientTransport` for ``httpx2.Client``: it wraps
    ``httpx2.HTTPTransport()`` unless ``transport`` (any ``httpx2.BaseTransport``)
    is given, and takes the same policy keywords."""

    library: ClassVar[ModuleType] = httpx2


class AsyncResilientTransport(
    AsyncShell[httpx2.AsyncBaseTransport, httpx2.Request, httpx2.Response],
    httpx2.AsyncBaseTransport,
):
    """:class:`resilience.AsyncResilientTransport` for ``httpx2.AsyncClient``: it
    wraps ``httpx2.AsyncHTTPTransport()`` unless ``transport`` is given."""

    library: ClassVar[ModuleType] = httpx2


def httpx_event_hooks(**options: Unpack[HookOptions]) -> dict[str, list[Callable[[Any], Any]]]:
    """Event hooks for ``httpx2.Client(event_hooks=...)`` (see
    :func:`resilience.httpx_event_hooks`); their errors are also ``httpx2.HTTPStatusError``."""
    return event_hooks_for(httpx2, options)


def async_httpx_event_hooks(
    **options: Unpack[HookOptions],
) -> dict[str, list[Callable[[Any], Awaitable[Any]]]]:
    """Event hooks for ``httpx2.AsyncClient(event_hooks=...)`` (see
    :func:`resilience.async_httpx_event_hooks`)."""
    return async_event_hooks_for(httpx2, options)
