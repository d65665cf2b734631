"""The default inner transport: the library's own, and the environment's proxies.

httpx turns environment proxies off whenever a client is given a transport,
so ``httpx.Client(transport=ResilientTransport())`` would silently stop using
``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY``. The default inner
transport therefore does what httpx's client does with ``trust_env=True``:
requests go through the proxy the environment names for their scheme, unless
``NO_PROXY`` exempts their host. The variables are read with the standard
library's own reading (:func:`urllib.request.getproxies_environment`,
upper and lower case alike) when the transport is built, as httpx reads them
when its client is built.
"""

from __future__ import annotations

import functools
import urllib.request
from types import ModuleType
from typing import Any

__all__ = ["default_transport"]


def _environment() -> dict[str, str]:
    found = urllib.request.getproxies_environment()
    return {k: v for k, v in found.items() if k in ("http", "https", "all") and v}


def default_transport(lib: ModuleType, *, asynchronous: bool, trust_env: bool = True) -> Any:
    """The library's ``HTTPTransport`` (or ``AsyncHTTPTransport``), routed through
    the environment's proxies when ``trust_env`` and the environment names any."""
    plain = lib.AsyncHTTPTransport if asynchronous else lib.HTTPTransport
    proxies = _environment() if trust_env else {}
    if not proxies:
        return plain()
    router: Any = _router(lib, asynchronous)
    return router(plain, proxies)


@functools.lru_cache(maxsize=256)
def _bypassed(host: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``host`` (the standard library's reading)."""
    return bool(urllib.request.proxy_bypass(host))


@functools.cache
def _router(lib: ModuleType, asynchronous: bool) -> type:
    """A transport class of ``lib`` sending each request the way the environment says."""
    base: type = lib.AsyncBaseTransport if asynchronous else lib.BaseTransport

    class _Routes:
        def __init__(self, plain: Any, proxies: dict[str, str]) -> None:
            self._proxies = proxies
            self._direct = plain()
            self._via = {url: plain(proxy=url) for url in set(proxies.values())}

        def _pick(self, request: Any) -> Any:
            host = request.url.host
            if host and _bypassed(host):
                return self._direct
            url = self._proxies.get(request.url.scheme) or self._proxies.get("all")
            return self._direct if url is None else self._via[url]

        def _all(self) -> list[Any]:
            return [self._direct, *self._via.values()]

    if asynchronous:

        class AsyncEnvironmentProxies(_Routes, base):  # type: ignore[misc]
            """Each request through the proxy the environment names for it."""

            async def handle_async_request(self, request: Any) -> Any:
                return await self._pick(request).handle_async_request(request)

            async def aclose(self) -> None:
                for transport in self._all():
                    await transport.aclose()

        return AsyncEnvironmentProxies

    class EnvironmentProxies(_Routes, base):  # type: ignore[misc]
        """Each request through the proxy the environment names for it."""

        def handle_request(self, request: Any) -> Any:
            return self._pick(request).handle_request(request)

        def close(self) -> None:
            for transport in self._all():
                transport.close()

    return EnvironmentProxies
