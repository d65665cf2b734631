"""Event hooks that turn vendor errors into typed exceptions.

``httpx.Client(event_hooks=httpx_event_hooks())``,
``httpx.AsyncClient(event_hooks=async_httpx_event_hooks())`` and
``session.hooks["response"].append(requests_response_hook())`` classify each
response and raise the error of its category (see :mod:`resilience.errors`)
unless it is ``OK``, ``ALREADY_DONE`` or in ``ignore``. Placed after a
resilient transport, they raise once the retries are over.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpx
import requests

from resilience.core.classification import Category, Classification
from resilience.core.classifier import Classifier
from resilience.core.response import MAX_BODY, ResponseView, content_length
from resilience.detectors import Detector
from resilience.errors import raise_for
from resilience.shells.history import attempts

__all__ = ["async_httpx_event_hooks", "httpx_event_hooks", "requests_response_hook"]

_PASS = frozenset({Category.OK, Category.ALREADY_DONE})


class _Judge:
    """What the three hooks share: classify, decide whether to raise."""

    __slots__ = ("business_codes", "classifier", "passing")

    def __init__(
        self,
        vendor: str | None,
        vendor_hosts: Mapping[str, str] | None,
        detectors: Iterable[Detector] | None,
        business_codes: bool,
        ignore: Iterable[Category | str],
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

    def classify(
        self,
        status: int,
        headers: Any,
        body: bytes | None,
        host: str | None,
        method: str | None,
        path: str | None,
    ) -> Classification:
        view = ResponseView(
            status=status,
            headers=headers,
            body=body if body is not None and len(body) <= MAX_BODY else None,
            host=host,
            method=method,
            path=path,
        )
        return self.classifier.classify_view(view, time.time())

    def check(self, c: Classification, response: Any, library_error: type[Exception]) -> None:
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


def _httpx_judge_args(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    request = response.request
    return request.url.host or None, request.method, request.url.path


def httpx_event_hooks(
    *,
    vendor: str | None = None,
    vendor_hosts: Mapping[str, str] | None = None,
    detectors: Iterable[Detector] | None = None,
    business_codes: bool = True,
    ignore: Iterable[Category | str] = (),
) -> dict[str, list[Callable[[Any], Any]]]:
    """Event hooks for ``httpx.Client(event_hooks=...)``.

    Args:
        vendor: pin the vendor.
        vendor_hosts: host name (without port) -> vendor name.
        detectors: detectors to use instead of the registered chain.
        business_codes: read small JSON 2xx bodies for Playwave business results.
        ignore: categories not to raise.
    """
    judge = _Judge(vendor, vendor_hosts, detectors, business_codes, ignore)

    def on_response(response: httpx.Response) -> None:
        decided = judge.decided(response)
        if decided is not None:
            judge.check(decided, response, httpx.HTTPStatusError)
            return
        host, method, path = _httpx_judge_args(response)
        body = None
        if judge.wants_body(response.status_code, host, response.headers):
            try:
                body = response.read()
            except httpx.HTTPError:
                body = None
        c = judge.classify(response.status_code, response.headers, body, host, method, path)
        judge.check(c, response, httpx.HTTPStatusError)

    return {"request": [], "response": [on_response]}


def async_httpx_event_hooks(
    *,
    vendor: str | None = None,
    vendor_hosts: Mapping[str, str] | None = None,
    detectors: Iterable[Detector] | None = None,
    business_codes: bool = True,
    ignore: Iterable[Category | str] = (),
) -> dict[str, list[Callable[[Any], Awaitable[Any]]]]:
    """Event hooks for ``httpx.AsyncClient(event_hooks=...)`` (see :func:`httpx_event_hooks`)."""
    judge = _Judge(vendor, vendor_hosts, detectors, business_codes, ignore)

    async def on_response(response: httpx.Response) -> None:
        decided = judge.decided(response)
        if decided is not None:
            judge.check(decided, response, httpx.HTTPStatusError)
            return
        host, method, path = _httpx_judge_args(response)
        body = None
        if judge.wants_body(response.status_code, host, response.headers):
            try:
                body = await response.aread()
            except httpx.HTTPError:
                body = None
        c = judge.classify(response.status_code, response.headers, body, host, method, path)
        judge.check(c, response, httpx.HTTPStatusError)

    return {"request": [], "response": [on_response]}


def requests_response_hook(
    *,
    vendor: str | None = None,
    vendor_hosts: Mapping[str, str] | None = None,
    detectors: Iterable[Detector] | None = None,
    business_codes: bool = True,
    ignore: Iterable[Category | str] = (),
) -> Callable[..., None]:
    """A hook for ``session.hooks["response"]`` (see :func:`httpx_event_hooks`)."""
    from urllib.parse import urlsplit

    judge = _Judge(vendor, vendor_hosts, detectors, business_codes, ignore)

    def on_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        decided = judge.decided(response)
        if decided is not None:
            judge.check(decided, response, requests.HTTPError)
            return
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
        if judge.wants_body(response.status_code, host, response.headers, any_length=any_length):
            try:
                body = response.content
            except requests.RequestException:
                body = None
        c = judge.classify(response.status_code, response.headers, body, host, request.method, path)
        judge.check(c, response, requests.HTTPError)

    return on_response
