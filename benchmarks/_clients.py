"""The contenders: how each one is built, with the same retry settings for all.

Every contender is a client (a ``requests.Session``, an ``httpx.Client`` or an
``httpx.AsyncClient``) plus, for the libraries that wrap calls rather than the
transport (tenacity, stamina), a decorated function around it, written the way
their documentation shows. Third-party contenders are imported when built; a
missing one is skipped with a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import importlib
import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

import resilience
from benchmarks._settings import (
    ATTEMPTS,
    BACKOFF,
    BACKOFF_MAX,
    FORCELIST,
    MULTIPLIER,
    REGIONS,
    RETRY_METHODS,
)

__all__ = [
    "CONTENDERS",
    "Client",
    "Contender",
    "Skip",
    "Target",
    "Tuning",
    "build",
    "in_process_resilient_adapter",
    "missing",
]

#: Body of the canned in-process answer.
CANNED_BODY = b'{"ok":true}'


class Skip(Exception):
    """This contender cannot run in this setting; the message says why."""


@dataclass(frozen=True)
class Contender:
    """One way to make HTTP calls.

    Attributes:
        key: short identifier (JSON key).
        label: name in the tables.
        family: ``"requests"``, ``"httpx"`` or ``"httpx-async"``; ratios are to
            the bare client of the same family.
        role: ``"bare"``, ``"peer"`` or ``"resilience"``.
        stack: what sits under the session or client: ``"plain"``,
            ``"urllib3"``, ``"httpx-retries"`` or ``"resilience"``.
        wrapper: ``None``, ``"tenacity"`` or ``"stamina"``.
        requires: the module it needs beyond requests/httpx.
    """

    key: str
    label: str
    family: str
    role: str
    stack: str = "plain"
    wrapper: str | None = None
    requires: str | None = None

    @property
    def is_async(self) -> bool:
        """Whether its calls are coroutines."""
        return self.family == "httpx-async"


CONTENDERS: tuple[Contender, ...] = (
    Contender("requests", "requests (bare)", "requests", "bare"),
    Contender("requests+urllib3", "requests + urllib3 Retry", "requests", "peer", "urllib3"),
    Contender(
        "requests+tenacity",
        "requests + tenacity",
        "requests",
        "peer",
        wrapper="tenacity",
        requires="tenacity",
    ),
    Contender(
        "requests+stamina",
        "requests + stamina",
        "requests",
        "peer",
        wrapper="stamina",
        requires="stamina",
    ),
    Contender(
        "requests+resilience",
        "requests + ResilientAdapter",
        "requests",
        "resilience",
        "resilience",
    ),
    Contender("httpx", "httpx (bare)", "httpx", "bare"),
    Contender(
        "httpx+httpx-retries",
        "httpx + httpx-retries",
        "httpx",
        "peer",
        "httpx-retries",
        requires="httpx_retries",
    ),
    Contender(
        "httpx+tenacity",
        "httpx + tenacity",
        "httpx",
        "peer",
        wrapper="tenacity",
        requires="tenacity",
    ),
    Contender(
        "httpx+stamina",
        "httpx + stamina",
        "httpx",
        "peer",
        wrapper="stamina",
        requires="stamina",
    ),
    Contender(
        "httpx+resilience", "httpx + ResilientTransport", "httpx", "resilience", "resilience"
    ),
    Contender("httpx-async", "httpx async (bare)", "httpx-async", "bare"),
    Contender(
        "httpx-async+httpx-retries",
        "httpx async + httpx-retries",
        "httpx-async",
        "peer",
        "httpx-retries",
        requires="httpx_retries",
    ),
    Contender(
        "httpx-async+tenacity",
        "httpx async + tenacity",
        "httpx-async",
        "peer",
        wrapper="tenacity",
        requires="tenacity",
    ),
    Contender(
        "httpx-async+stamina",
        "httpx async + stamina",
        "httpx-async",
        "peer",
        wrapper="stamina",
        requires="stamina",
    ),
    Contender(
        "httpx-async+resilience",
        "httpx async + AsyncResilientTransport",
        "httpx-async",
        "resilience",
        "resilience",
    ),
)

#: How each contender is configured, for the tables.
CONFIG_NOTES: dict[str, str] = {
    "plain": "no retries",
    "urllib3": (
        "Retry(total=3, status_forcelist=409/420/429/5xx, POST allowed, "
        "backoff_factor=B/2, respect_retry_after_header=True, raise_on_status=False)"
    ),
    "httpx-retries": (
        "Retry(total=3, status_forcelist=409/420/429/5xx, POST allowed, "
        "backoff_factor=B/2, backoff_jitter=1, respect_retry_after_header=True)"
    ),
    "tenacity": (
        "@retry(stop_after_attempt(4), wait_random_exponential(multiplier=B), "
        "retry on 409/420/429/5xx or a network error; hand-written Retry-After wait)"
    ),
    "stamina": (
        "@retry(attempts=4, wait_initial=B/2, wait_jitter=B/2, timeout=None; "
        "raise on 409/420/429/5xx, hand-written Retry-After as the hook's wait)"
    ),
    "resilience": (
        "max_attempts=4, backoff_initial=B, jitter='full', conflict_delay=B, "
        "respect_retry_after=True"
    ),
}


def config_note(contender: Contender) -> str:
    """How ``contender`` is set up, in one line."""
    if contender.wrapper is not None:
        return CONFIG_NOTES[contender.wrapper]
    return CONFIG_NOTES[contender.stack]


def missing(contender: Contender) -> str | None:
    """Why ``contender`` cannot run here (its module is missing), or ``None``."""
    if contender.requires is None:
        return None
    try:
        importlib.import_module(contender.requires)
    except ImportError as exc:
        return f"{contender.requires} is not installed ({exc})"
    return None


@dataclass(frozen=True)
class Target:
    """Where calls go: ``"inproc"`` (no socket) or ``"loopback"`` (a simulator).

    ``httpx_client`` and ``httpx_transport`` are extra keyword arguments of
    the httpx clients and of their network transports (``limits`` goes to the
    transport: a client given a transport ignores its own). ``headers`` go with
    every request of every client (an ``X-Sim-Key`` lets the simulator count a
    contender's requests apart from the others').
    """

    kind: str
    base: str = "http://vendor.invalid"
    httpx_client: tuple[tuple[str, Any], ...] = ()
    httpx_transport: tuple[tuple[str, Any], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Tuning:
    """The retry settings of one scenario.

    Attributes:
        backoff: initial backoff of every contender (resilience's
            ``conflict_delay`` too).
        budget: resilience's retry budget on (the default) or off.
        regions: resilience fails over between :data:`REGIONS` on Gameye's 420
            (``capacity_retries=0``: a region without capacity is not retried).
        defaults: resilience with every default (overrides the rest).
        on_retry: resilience's ``on_retry`` (the fault mix records the waits).
        hedge: resilience's ``hedge=resilience.Hedge(delay=hedge)`` (seconds
            or ``"p95"``); ``None``: no hedging, the library's default.
    """

    backoff: float = BACKOFF
    budget: bool = True
    regions: bool = False
    defaults: bool = False
    on_retry: Callable[[Any], Any] | None = None
    hedge: float | str | None = None


@dataclass
class Client:
    """A built contender.

    Attributes:
        get: ``get(url)``: the call timed on the success path.
        request: ``request(method, url, headers, json)``: any call.
        close: closes the client (a coroutine function for async clients).
        is_async: whether ``get``, ``request`` and ``close`` are coroutine functions.
        status: the status of a response.
    """

    get: Callable[[str], Any]
    request: Callable[[str, str, dict[str, str] | None, Any], Any]
    close: Callable[[], Any]
    is_async: bool

    @staticmethod
    def status(response: Any) -> int:
        """The HTTP status of a requests or httpx response."""
        code: int = response.status_code
        return code


# -- Retry-After, as a user of tenacity or stamina would parse it ---------------


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delay-seconds, fractional or not, or a date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = (when - dt.datetime.now(dt.timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(60.0, max(0.0, seconds))


def _retryable_response(response: Any) -> bool:
    return response.status_code in FORCELIST


class RetryableStatus(Exception):
    """Raised inside a stamina-decorated call for a status the peers retry."""

    def __init__(self, response: Any) -> None:
        super().__init__(response.status_code)
        self.response = response


# -- in-process answers ------------------------------------------------------------


def _canned_httpx(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=[("content-type", "application/json")], content=CANNED_BODY)


def canned_requests_response(
    adapter: HTTPAdapter, request: requests.PreparedRequest
) -> requests.Response:
    """What ``HTTPAdapter.send`` would return for a 200, built without a socket."""
    response = requests.Response()
    response.status_code = 200
    response.reason = "OK"
    response.headers = CaseInsensitiveDict(
        {"Content-Type": "application/json", "Content-Length": str(len(CANNED_BODY))}
    )
    response.raw = io.BytesIO(CANNED_BODY)
    response.url = request.url or ""
    response.request = request
    response.connection = adapter
    return response


class InProcessAdapter(HTTPAdapter):
    """An HTTPAdapter whose ``send`` answers 200 without a socket."""

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        """Answer ``request`` with the canned 200."""
        return canned_requests_response(self, request)


class InProcessResilientAdapter(resilience.ResilientAdapter):
    """A ResilientAdapter whose inner send is in-process.

    ``ResilientAdapter.send`` runs unchanged; it calls ``HTTPAdapter.send``
    through the library's ``_RequestsIO``, which
    :func:`in_process_resilient_adapter` swaps for a subclass that answers
    adapters of this class in-process.
    """


@contextlib.contextmanager
def in_process_resilient_adapter() -> Iterator[None]:
    """Within this block, :class:`InProcessResilientAdapter` sends without a socket.

    Raises:
        Skip: the library's requests adapter no longer has ``_RequestsIO``.
    """
    from resilience.shells import requests_adapter as module

    original = getattr(module, "_RequestsIO", None)
    if original is None or not callable(getattr(original, "send", None)):
        raise Skip("resilience.shells.requests_adapter._RequestsIO changed; no in-process hook")
    base: Any = original

    class _InProcessIO(original):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def send(
            self, request: requests.PreparedRequest, budget: float | None = None
        ) -> requests.Response:
            adapter = self._adapter
            if type(adapter) is InProcessResilientAdapter:
                return canned_requests_response(adapter, request)
            response: requests.Response = base.send(self, request, budget)
            return response

    setattr(module, "_RequestsIO", _InProcessIO)  # noqa: B010 (a class, not a value)
    try:
        yield
    finally:
        setattr(module, "_RequestsIO", original)  # noqa: B010


# -- builders ------------------------------------------------------------------------


def _hedge(delay: float | str) -> Any:
    """``resilience.Hedge(delay=delay)``.

    Raises:
        Skip: this version of the library has no hedging.
    """
    hedge = getattr(resilience, "Hedge", None)
    if hedge is None:
        raise Skip("this version of resilience has no Hedge")
    return hedge(delay=delay)


def resilience_options(tuning: Tuning) -> dict[str, Any]:
    """The keyword arguments of the resilience transports for ``tuning``.

    Raises:
        Skip: ``tuning`` hedges and this version of the library cannot.
    """
    hedge = {} if tuning.hedge is None else {"hedge": _hedge(tuning.hedge)}
    if tuning.defaults:
        return hedge
    options: dict[str, Any] = {
        **hedge,
        "on_retry": tuning.on_retry,
        "max_attempts": ATTEMPTS,
        "backoff_initial": tuning.backoff,
        "backoff_multiplier": MULTIPLIER,
        "backoff_max": BACKOFF_MAX,
        "jitter": "full",
        "respect_retry_after": True,
        "conflict_delay": tuning.backoff,
    }
    if not tuning.budget:
        options["retry_budget"] = None
    if tuning.regions:
        options["regions"] = list(REGIONS)
        options["capacity_retries"] = 0
    return options


def _urllib3_retry(tuning: Tuning) -> Any:
    from urllib3.util.retry import Retry

    return Retry(
        total=ATTEMPTS - 1,
        backoff_factor=tuning.backoff / 2,
        backoff_max=BACKOFF_MAX,
        status_forcelist=FORCELIST,
        allowed_methods=RETRY_METHODS,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def _httpx_retries(tuning: Tuning) -> Any:
    from httpx_retries import Retry

    return Retry(
        total=ATTEMPTS - 1,
        backoff_factor=tuning.backoff / 2,
        backoff_jitter=1.0,
        max_backoff_wait=BACKOFF_MAX,
        status_forcelist=FORCELIST,
        allowed_methods=RETRY_METHODS,
        respect_retry_after_header=True,
    )


def _requests_session(contender: Contender, target: Target, tuning: Tuning) -> Client:
    inproc = target.kind == "inproc"
    adapter: HTTPAdapter
    if contender.stack == "urllib3":
        if inproc:
            raise Skip(
                "n/a in-process: urllib3's Retry runs inside its connection pool, "
                "below any in-process adapter (see the loopback table)"
            )
        adapter = HTTPAdapter(max_retries=_urllib3_retry(tuning))
    elif contender.stack == "resilience":
        options = resilience_options(tuning)
        resilient = InProcessResilientAdapter if inproc else resilience.ResilientAdapter
        adapter = resilient(**options)
    else:
        adapter = InProcessAdapter() if inproc else HTTPAdapter()
    session = requests.Session()
    session.headers.update(dict(target.headers))
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    def request(method: str, url: str, headers: dict[str, str] | None, body: Any) -> Any:
        return session.request(method, url, headers=headers, json=body)

    return Client(session.get, request, session.close, is_async=False)


def _httpx_client(contender: Contender, target: Target, tuning: Tuning) -> Client:
    inproc = target.kind == "inproc"
    network = dict(target.httpx_transport)
    if inproc:
        inner: Any = httpx.MockTransport(_canned_httpx)
    elif contender.is_async:
        inner = httpx.AsyncHTTPTransport(**network)
    else:
        inner = httpx.HTTPTransport(**network)
    transport: Any = inner
    if contender.stack == "httpx-retries":
        from httpx_retries import RetryTransport

        transport = RetryTransport(transport=inner, retry=_httpx_retries(tuning))
    elif contender.stack == "resilience":
        options = resilience_options(tuning)
        if contender.is_async:
            transport = resilience.AsyncResilientTransport(transport=inner, **options)
        else:
            transport = resilience.ResilientTransport(transport=inner, **options)
    options = dict(target.httpx_client)
    if target.headers:
        options["headers"] = dict(target.headers)
    if contender.is_async:
        aclient = httpx.AsyncClient(transport=transport, **options)

        async def arequest(method: str, url: str, headers: dict[str, str] | None, body: Any) -> Any:
            return await aclient.request(method, url, headers=headers, json=body)

        return Client(aclient.get, arequest, aclient.aclose, is_async=True)
    client = httpx.Client(transport=transport, **options)

    def request(method: str, url: str, headers: dict[str, str] | None, body: Any) -> Any:
        return client.request(method, url, headers=headers, json=body)

    return Client(client.get, request, client.close, is_async=False)


def _network_errors(contender: Contender) -> tuple[type[BaseException], ...]:
    if contender.family == "requests":
        return (requests.ConnectionError, requests.Timeout)
    return (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _tenacity(contender: Contender, client: Client, tuning: Tuning) -> Client:
    import tenacity

    fallback = tenacity.wait_random_exponential(multiplier=tuning.backoff, max=BACKOFF_MAX)

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            seconds = retry_after_seconds(outcome.result().headers.get("retry-after"))
            if seconds is not None:
                return seconds
        return float(fallback(state))

    def last_outcome(state: tenacity.RetryCallState) -> Any:
        assert state.outcome is not None
        return state.outcome.result()

    decorate = tenacity.retry(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=wait,
        retry=(
            tenacity.retry_if_result(_retryable_response)
            | tenacity.retry_if_exception_type(_network_errors(contender))
        ),
        retry_error_callback=last_outcome,
        reraise=True,
    )
    if client.is_async:
        inner_get, inner_request = client.get, client.request

        @decorate
        async def aget(url: str) -> Any:
            return await inner_get(url)

        @decorate
        async def arequest(method: str, url: str, headers: Any, body: Any) -> Any:
            return await inner_request(method, url, headers, body)

        return Client(aget, arequest, client.close, is_async=True)
    return Client(decorate(client.get), decorate(client.request), client.close, is_async=False)


def _stamina(contender: Contender, client: Client, tuning: Tuning) -> Client:
    import stamina

    errors = _network_errors(contender)

    def on(exc: Exception) -> bool | float:
        if isinstance(exc, RetryableStatus):
            seconds = retry_after_seconds(exc.response.headers.get("retry-after"))
            return True if seconds is None else seconds
        return isinstance(exc, errors)

    decorate = stamina.retry(
        on=on,
        attempts=ATTEMPTS,
        timeout=None,
        wait_initial=tuning.backoff / 2,
        wait_max=BACKOFF_MAX,
        wait_jitter=tuning.backoff / 2,
        wait_exp_base=MULTIPLIER,
    )
    inner_get, inner_request = client.get, client.request
    if client.is_async:

        @decorate
        async def aget_once(url: str) -> Any:
            response = await inner_get(url)
            if response.status_code in FORCELIST:
                raise RetryableStatus(response)
            return response

        @decorate
        async def arequest_once(method: str, url: str, headers: Any, body: Any) -> Any:
            response = await inner_request(method, url, headers, body)
            if response.status_code in FORCELIST:
                raise RetryableStatus(response)
            return response

        async def aget(url: str) -> Any:
            try:
                return await aget_once(url)
            except RetryableStatus as exc:
                return exc.response

        async def arequest(method: str, url: str, headers: Any, body: Any) -> Any:
            try:
                return await arequest_once(method, url, headers, body)
            except RetryableStatus as exc:
                return exc.response

        return Client(aget, arequest, client.close, is_async=True)

    @decorate
    def get_once(url: str) -> Any:
        response = inner_get(url)
        if response.status_code in FORCELIST:
            raise RetryableStatus(response)
        return response

    @decorate
    def request_once(method: str, url: str, headers: Any, body: Any) -> Any:
        response = inner_request(method, url, headers, body)
        if response.status_code in FORCELIST:
            raise RetryableStatus(response)
        return response

    def get(url: str) -> Any:
        try:
            return get_once(url)
        except RetryableStatus as exc:
            return exc.response

    def request(method: str, url: str, headers: Any, body: Any) -> Any:
        try:
            return request_once(method, url, headers, body)
        except RetryableStatus as exc:
            return exc.response

    return Client(get, request, client.close, is_async=False)


def build(contender: Contender, target: Target, tuning: Tuning | None = None) -> Client:
    """Build ``contender`` for ``target`` with ``tuning``.

    Raises:
        Skip: it cannot run here (module missing, or not measurable in-process).
    """
    why = missing(contender)
    if why is not None:
        raise Skip(why)
    tuning = tuning or Tuning()
    if contender.family == "requests":
        client = _requests_session(contender, target, tuning)
    else:
        client = _httpx_client(contender, target, tuning)
    if contender.wrapper == "tenacity":
        return _tenacity(contender, client, tuning)
    if contender.wrapper == "stamina":
        return _stamina(contender, client, tuning)
    return client


def close(client: Client, loop: asyncio.AbstractEventLoop | None) -> None:
    """Close ``client`` (on ``loop`` when it is async)."""
    if client.is_async:
        assert loop is not None
        loop.run_until_complete(client.close())
    else:
        client.close()


def close_all(clients: Iterable[Client], loop: asyncio.AbstractEventLoop | None) -> None:
    """Close every client; one that fails to close does not keep the others open."""
    for client in clients:
        with contextlib.suppress(Exception):
            close(client, loop)


def describe(contender: Contender) -> dict[str, Any]:
    """The fields every result row starts with: who the contender is and its set-up."""
    return {
        "key": contender.key,
        "label": contender.label,
        "family": contender.family,
        "role": contender.role,
        "config": config_note(contender),
    }
