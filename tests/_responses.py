"""Finished responses of either library, for classification tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
import requests
from requests.structures import CaseInsensitiveDict

LIBRARIES = ["requests", "httpx"]


class Respond(Protocol):
    def __call__(
        self,
        status: int,
        payload: Any = None,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = ...,
        url: str = ...,
    ) -> Any: ...


def _requests_response(
    status: int, body: bytes, headers: Mapping[str, str], method: str, url: str
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers = CaseInsensitiveDict(headers)
    response.request = requests.Request(method, url).prepare()
    return response


def _httpx_response(
    status: int, body: bytes, headers: Mapping[str, str], method: str, url: str
) -> httpx.Response:
    return httpx.Response(
        status, content=body, headers=dict(headers), request=httpx.Request(method, url)
    )


def responder(library: str, *, url: str, method: str = "POST") -> Respond:
    """A builder of finished ``library`` responses (JSON ``payload`` or raw ``body``)."""
    build = _requests_response if library == "requests" else _httpx_response
    default_url, default_method = url, method

    def respond(
        status: int,
        payload: Any = None,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = default_method,
        url: str = default_url,
    ) -> Any:
        if body is None:
            body = b"" if payload is None else json.dumps(payload).encode()
        return build(status, body, headers or {}, method, url)

    return respond
