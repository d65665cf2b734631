"""Event hooks that turn vendor errors into typed exceptions.

``httpx.Client(event_hooks=httpx_event_hooks())``,
``httpx.AsyncClient(event_hooks=async_httpx_event_hooks())`` and
``session.hooks["response"].append(requests_response_hook())`` classify each
response and raise the error of its category (see :mod:`resilience.errors`)
unless it is ``OK``, ``ALREADY_DONE`` or in ``ignore``. Placed after a
resilient transport, they raise once the retries are over.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import ModuleType
from typing import Any, TypedDict

import httpx
import requests
from typing_extensions import Unpack

from resilience.core.classification import Category, Classification
from resilience.core.response import MAX_BODY, ResponseView, content_length
from resilience.detectors import Detector
from resilience.errors import raise_for
from resilience.retry.classifier import Classifier
from resilience.shells.history import attempts

__all__ = [
    "HookOptions",
    "async_event_hooks_for",
    "async_httpx_event_hooks",
    "event_hooks_for",
    "httpx_event_hooks",
    "requests_response_hook",
]

_PASS = frozenset({Category.OK, Category.ALREADY_DONE})


class HookOptions(TypedDict, total=False):
    """The keyword arguments of every event hook factory.

    Attributes:
        vendor: pin the vendor.
        vendor_hosts: host name (without port) -> vendor name.
        detectors: detectors to use instead of the registered chain.
        business_codes: read small JSON 2xx bodies for Playwave business
            results (default ``True``).
        ignore: categories not to raise (default none).
    """

    vendor: str | None
    vendor_hosts: Mapping[str, str] | None
    detectors: Iterable[Detector] | None
    business_codes: bool
    ignore: Iterable[Category | str]


class _Judge:
    """What the hooks share: classify, decide whether to raise."""

    __slots__ = ("business_codes", "classifier", "passing")

    def __init__(
        self,
        *,
        vendor: str | None = None,
        vendor_hosts: Mapping[str, str] | None = None,
        detectors: Iterable[Detector] | None = None,
        business_codes: bool = True,
        ignore: Iterable[Category | str] = (),
    ) -> None:
        self.classifier = Classifier(vendor, vendor_hosts, detectors)
        self.business_codes = business_codes
        self.passing = _PASS | {Category(c) for c in ignore}

    def wants_body(
        self, status: int, host: str | None, headers: Any, *, any_length: bool = False
    ) -> bool:
        """Whether the body should be read before classifying.

        Args:
            status: the response status.
            host: the request's host.
            headers: the response headers.
            any_length: read a body of unknown length too (the client is about
                to read it whole anyway).
        """
        if status < 300:
            if not (self.business_codes and self.classifier.reads_success_body(host)):
                return False
            content_type = headers.get("content-type") or ""
            if "json" not in content_type:
                return False
        elif status < 400:
            return False
        # A body of unknown length is not read here: it may be huge, or a
        # stream the caller means to consume. The status then decides (behind
        # a resilient transport, its bounded read has already classified it).
        if headers.get("content-length") is None:
            return any_length
        length = content_length(headers)
        return length is not None and length <= MAX_BODY

    def settle(
        self,
        response: Any,
        body: bytes | None,
        where: tuple[str | None, str | None, str | None],
        library_error: type[Exception],
    ) -> None:
        """Raise the error of ``response``'s category unless it passes.

        Args:
            response: the response.
            body: its body, when read.
            where: the request's host, method and path.
            library_error: the library's own status error, a base of the one raised.
        """
        c = self.decided(response)
        if c is None:
            host, method, path = where
            view = ResponseView(
                status=response.status_code,
                headers=response.headers,
                body=body if body is not None and len(body) <= MAX_BODY else None,
                host=host,
                method=method,
                path=path,
            )
            c = self.classifier.classify_view(view, time.time())
        if c.category not in self.passing:
            raise_for(c, response, attempts(response), library_error)

    @staticmethod
    def decided(response: Any) -> Classification | None:
        """The resilient transport's verdict on an error response, if it gave one.

        It knows what a fresh look cannot: a Gameye 409 that answers the retry
        of an attempt whose answer was lost means the session was created.
        """
        if response.status_code < 400:
            return None
        history = attempts(response)
        if history:
            c = history[-1].classification
            if c is not None and c.category is not Category.OK:
                return c
        return None


class _HttpxJudge(_Judge):
    """A judge of the responses of one library of the httpx family (its module)."""

    __slots__ = ("lib",)

    def __init__(self, lib: ModuleType, options: HookOptions) -> None:
        super().__init__(**options)
        self.lib = lib

    def where(self, response: httpx.Response) -> tuple[str | None, str | None, str | None]:
        request = response.request
        return request.url.host or None, request.method, request.url.path

    def wants(self, response: httpx.Response) -> bool:
        """Whether to read the body before :meth:`settle`."""
        if self.decided(response) is not None:
            return False
        return self.wants_body(response.status_code, self.where(response)[0], response.headers)

    def done(self, response: httpx.Response, body: bytes | None) -> None:
        self.settle(response, body, self.where(response), self.lib.HTTPStatusError)


def event_hooks_for(lib: ModuleType, options: HookOptions) -> dict[str, list[Callable[[Any], Any]]]:
    """The event hooks of a ``Client`` of ``lib`` (``httpx`` or ``httpx2``)."""
    judge = _HttpxJudge(lib, options)

    def on_response(response: httpx.Response) -> None:
        body = None
        if judge.wants(response):
            with contextlib.suppress(lib.HTTPError):
                body = response.read()
        judge.done(response, body)

    return {"request": [], "response": [on_response]}


def async_event_hooks_for(
    lib: ModuleType, options: HookOptions
) -> dict[str, list[Callable[[Any], Awaitable[Any]]]]:
    """The event hooks of an ``AsyncClient`` of ``lib`` (``httpx`` or ``httpx2``)."""
    judge = _HttpxJudge(lib, options)

    async def on_response(response: httpx.Response) -> None:
        body = None
        if judge.wants(response):
            with contextlib.suppress(lib.HTTPError):
                body = await response.aread()
        judge.done(response, body)

    return {"request": [], "response": [on_response]}


def httpx_event_hooks(**options: Unpack[HookOptions]) -> dict[str, list[Callable[[Any], Any]]]:
    """Event hooks for ``httpx.Client(event_hooks=...)``.

    Args:
        **options: ``vendor``, ``vendor_hosts``, ``detectors``,
            ``business_codes`` and ``ignore``, typed and described by
            :class:`~resilience.hooks.HookOptions`.
    """
    return event_hooks_for(httpx, options)


def async_httpx_event_hooks(
    **options: Unpack[HookOptions],
) -> dict[str, list[Callable[[Any], Awaitable[Any]]]]:
    """Event hooks for ``httpx.AsyncClient(event_hooks=...)`` (see :func:`httpx_event_hooks`)."""
    return async_event_hooks_for(httpx, options)


def requests_response_hook(**options: Unpack[HookOptions]) -> Callable[..., None]:
    """A hook for ``session.hooks["response"]`` (see :func:`httpx_event_hooks`)."""
    from urllib.parse import urlsplit

    judge = _Judge(**options)

    def on_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        try:
            split = urlsplit(request.url or "")
            host, path = split.hostname, split.path
        except ValueError:
            host = path = None
        body = None
        # Without stream=True, requests reads the whole body right after the
        # hooks: reading it here first costs nothing more.
        any_length = not kwargs.get("stream", False)
        if judge.decided(response) is None and judge.wants_body(
            response.status_code, host, response.headers, any_length=any_length
        ):
            try:
                body = response.content
            except requests.RequestException:
                body = None
        judge.settle(response, body, (host, request.method, path), requests.HTTPError)

    return on_response
