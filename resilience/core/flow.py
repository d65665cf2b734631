"""The retry loop, written once and carried out by each shell.

A call starts with :func:`admit` (idempotency key, region, deadline, circuit
breaker, rate limit) and one request; a first answer under 400 ends it there
(:meth:`FirstAttempt.succeeded`), with no further per-call state. Otherwise
:func:`retry_flow` takes over: like httpx's ``Auth.auth_flow``, it yields
commands (send this request, read this body, discard this response, sleep,
done) and receives their results. The requests adapter and the httpx
transports only carry them out, synchronously (:func:`drive`) or
asynchronously (:func:`drive_async`). All decisions come from
:class:`~resilience.core.engine.CallState`.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from resilience.core.classification import Category, Classification
from resilience.core.classifier import Classifier
from resilience.core.engine import UNSAFE_METHODS, Action, Attempt, CallState, ErrorKind, RetryEvent
from resilience.core.policy import Policy
from resilience.core.redact import redact_url
from resilience.core.response import ResponseView
from resilience.errors import CircuitOpen, RateLimited, ResilienceError
from resilience.regions import JsonField, RegionLocator
from resilience.strategies.breaker import Circuits
from resilience.strategies.budget import Budget
from resilience.strategies.rate_limit import RateLimiter
from resilience.strategies.shared import SharedBreakerState, SharedBudgetState

__all__ = [
    "ATTEMPTS_KEY",
    "Core",
    "FirstAttempt",
    "History",
    "Wire",
    "admit",
    "drive",
    "drive_async",
    "refuse_coroutine_functions",
    "retry_flow",
]

_log = logging.getLogger("resilience")

#: Where the attempt history is kept on a response.
ATTEMPTS_KEY = "resilience.attempts"

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class Wire(Protocol[Req, Resp]):  # type: ignore[misc]
    """What the flow needs to know about one HTTP library's objects (no I/O)."""

    def method(self, request: Req) -> str: ...
    def url(self, request: Req) -> str: ...
    def host(self, request: Req) -> str | None: ...
    def header(self, request: Req, name: str) -> str | None: ...
    def set_header(self, request: Req, name: str, value: str) -> None: ...
    def replayable(self, request: Req) -> bool: ...
    def parts(self, request: Req) -> Any: ...
    def rebuild(self, request: Req, parts: Any) -> Req: ...
    def status(self, response: Resp) -> int: ...
    def response_header(self, response: Resp, name: str) -> str | None: ...
    def response_headers(self, response: Resp) -> Any: ...
    def view(self, response: Resp, body: bytes | None, request: Req) -> ResponseView: ...
    def error_kind(self, error: BaseException) -> ErrorKind | None: ...
    def not_sent(
        self, request: Req, classification: Classification, base: type[ResilienceError]
    ) -> BaseException:
        """A ``base`` error that is also the library's connection error."""

    def attach(self, response: Resp, history: History) -> None: ...


@dataclass(slots=True)
class Send(Generic[Req]):
    """Send ``request``; reply with the response or the exception raised."""

    request: Req


@dataclass(slots=True)
class Read(Generic[Resp]):
    """Read at most 64 KiB of ``response``; reply with ``(response, body or None)``,
    or with the exception the read raised."""

    response: Resp


@dataclass(slots=True)
class Discard(Generic[Resp]):
    """Drain (bounded) and close ``response``, which will not be returned."""

    response: Resp


@dataclass(slots=True)
class Sleep:
    """Tell ``on_retry`` about ``event`` (if any), then wait ``seconds``."""

    seconds: float
    event: RetryEvent | None = None


@dataclass(slots=True)
class Done(Generic[Resp]):
    """Return ``response``, or raise ``error`` when it is set."""

    response: Resp | None
    error: BaseException | None


# The commands are slotted but not frozen: they live for one step of one call,
# and a frozen dataclass's __init__ costs several times more on the hot path.
Command = Send[Any] | Read[Any] | Discard[Any] | Sleep | Done[Any]


class FirstAttempt:
    """One call's first attempt: what is settled before it is sent, and, when it
    succeeds, the call's whole history.

    The success path records only what it already holds; the :class:`Attempt`
    and its classification are made when :func:`attempts` asks for them.
    Everything else a call needs is made by :func:`retry_flow`, once the first
    attempt has failed.
    """

    __slots__ = (
        "circuit",
        "core",
        "headers",
        "pace_key",
        "paced",
        "region",
        "replayable",
        "request",
        "started",
        "status",
        "wire",
    )

    def __init__(
        self,
        core: Core,
        wire: Wire[Any, Any],
        request: Any,
        started: float,
        region: str | None,
        replayable: bool,
    ) -> None:
        self.core = core
        self.wire = wire
        self.request = request
        self.started = started
        self.region = region
        self.replayable = replayable
        self.circuit: tuple[str | None, str | None] = (None, None)
        self.pace_key = ""
        self.paced = 0.0
        self.status = 0
        self.headers: Any = None

    def succeeded(self, response: Any) -> bool:
        """Whether ``response`` ends the call as a success; if so, record it."""
        wire = self.wire
        status = wire.status(response)
        if status >= 400:
            return False
        # No body read, no parsing, no per-call state beyond this object.
        core = self.core
        if core.budget is not None:
            core.budget.record_success()
        if core.breaker is not None:
            core.breaker.record(self.circuit, False, core.monotonic())
        headers = wire.response_headers(response)
        if core.limiter is not None:
            core.limiter.on_success(self.pace_key, core.monotonic(), headers, wall_now=core.wall())
        self.status = status
        self.headers = headers
        wire.attach(response, self)
        return True

    def resolve(self) -> tuple[Attempt, ...]:
        """The one-attempt history of a call that ended on its first attempt."""
        c = self.core.classifier.success(
            self.status, self.wire.host(self.request), self.headers.get("x-request-id")
        )
        return (Attempt(1, self.status, None, 0.0, self.region, c),)


#: What a response carries: its attempts, or a success to expand on demand.
History = tuple[Attempt, ...] | FirstAttempt


class Core:
    """What one transport shares between its calls: policy, classifier, budget.

    Args:
        policy: the policy.
        monotonic: the clock for deadlines.
        wall: the wall clock for ``Retry-After`` HTTP-dates.
    """

    __slots__ = (
        "breaker",
        "budget",
        "classifier",
        "limiter",
        "locator",
        "monotonic",
        "policy",
        "wall",
    )

    def __init__(
        self,
        policy: Policy,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.classifier = Classifier(policy.vendor, policy.vendor_hosts, policy.detectors)
        store = policy.store
        self.budget: Budget | None = None
        if policy.retry_budget is not None:
            self.budget = (
                policy.retry_budget.new_state()
                if store is None
                else SharedBudgetState(policy.retry_budget, store)
            )
        self.breaker: Circuits | None = None
        if policy.circuit_breaker is not None:
            self.breaker = (
                policy.circuit_breaker.new_state()
                if store is None
                else SharedBreakerState(policy.circuit_breaker, store)
            )
        self.limiter: RateLimiter | None = (
            policy.rate_limit.new_limiter(policy.store) if policy.rate_limit is not None else None
        )
        self.locator: RegionLocator = policy.region_locator or JsonField("location")
        self.monotonic = monotonic
        self.wall = wall


def _carries_key(wire: Wire[Any, Any], request: Any) -> bool:
    """Whether a POST/PATCH carries an idempotency key (header or body ``id``)."""
    if wire.header(request, "idempotency-key") or wire.header(request, "x-idempotency-key"):
        return True
    # Gameye: POST /session carries the session's own "id", so repeating it
    # cannot start a second session (a duplicate answers 409).
    if wire.url(request).split("?", 1)[0].rstrip("/").endswith("/session"):
        parts = wire.parts(request)
        return JsonField("id").region_of(parts) is not None
    return False


def _log_retry(event: RetryEvent) -> None:
    if not _log.isEnabledFor(logging.WARNING):
        return
    c = event.classification
    what = f"{c.status} {c.code or c.category.value}" if c is not None else event.error
    _log.warning(
        "%s %s: %s; %s in %.3fs%s (vendor %s, trace id %s)",
        event.method,
        event.url,
        what,
        "failing over" if event.reason == "failover" else "retrying",
        event.delay,
        f" to {event.next_region}" if event.reason == "failover" else "",
        c.vendor if c is not None else "-",
        (c.trace_id if c is not None else None) or "-",
    )


def admit(core: Core, wire: Wire[Req, Resp], request: Req) -> FirstAttempt:
    """Settle what a call needs before its first request: the idempotency key,
    the region, whether the body can be replayed, the start of the deadline,
    and whether the circuit breaker and the rate limit let it go.

    Raises:
        CircuitOpen: the circuit is open (also the library's connection error).
        RateLimited: the rate limit cannot pace the call in time (likewise).
    """
    policy = core.policy
    if (
        policy.idempotency_key
        and wire.method(request) in UNSAFE_METHODS
        and wire.header(request, "idempotency-key") is None
        and wire.header(request, "x-idempotency-key") is None
    ):
        wire.set_header(request, "Idempotency-Key", str(uuid.uuid4()))
    region = core.locator.region_of(wire.parts(request)) if policy.regions else None
    # Whether the body can be replayed is asked before sending: sending may read it.
    first = FirstAttempt(core, wire, request, core.monotonic(), region, wire.replayable(request))
    breaker = core.breaker
    if breaker is not None:
        first.circuit = (wire.host(request), region)
        if not breaker.allow(first.circuit, first.started):
            raise wire.not_sent(request, _open_circuit(core, first.circuit), CircuitOpen)
    limiter = core.limiter
    if limiter is not None:
        first.pace_key = limiter.key_for(wire.host(request) or "")
        paced = _pace(core, limiter, first.pace_key, first.started, 0.0)
        if paced < 0:
            local = _local_limit(core, limiter, first.pace_key, wire.host(request))
            _log.warning(
                "%s %s: not sent: %s",
                wire.method(request),
                redact_url(wire.url(request)),
                local.message,
            )
            raise wire.not_sent(request, local, RateLimited)
        first.paced = paced
    return first


def retry_flow(first: FirstAttempt, outcome: Any) -> Generator[Command, Any, None]:
    """The rest of a call whose first attempt did not succeed (see the module
    docstring); ``outcome`` is that attempt's response or exception."""
    core = first.core
    wire = first.wire
    request = first.request
    policy = core.policy
    method = wire.method(request)
    breaker = core.breaker
    limiter = core.limiter
    circuit = first.circuit
    pace_key = first.pace_key
    host = wire.host(request)
    call = CallState(
        policy,
        method=method,
        url=redact_url(wire.url(request)),
        started=first.started,
        region=first.region,
        replayable=first.replayable,
        idempotent=lambda: _carries_key(wire, request),
        budget=core.budget,
    )
    if first.paced:
        call.add_wait(first.paced)
    while True:
        broken: BaseException | None = None
        if isinstance(outcome, BaseException):
            kind = wire.error_kind(outcome)
            if kind is None:
                yield Done(None, outcome)
                return
            if breaker is not None and kind is not ErrorKind.FATAL:
                breaker.record(circuit, True, core.monotonic())
            decision = call.on_error(kind, type(outcome).__name__, core.monotonic())
            if decision.action is not Action.RETRY:
                # The error's class only: its text may quote the URL's credentials.
                _log.debug(
                    "%s %s: %s, giving up: %s",
                    method,
                    call.url,
                    type(outcome).__name__,
                    decision.reason,
                )
                yield Done(None, outcome)
                return
        else:
            response: Any = outcome
            status = wire.status(response)
            if status < 400:
                if breaker is not None:
                    breaker.record(circuit, False, core.monotonic())
                c = core.classifier.success(
                    status, host, wire.response_header(response, "x-request-id")
                )
                call.on_response(c, 0.0)
                wire.attach(response, tuple(call.attempts))
                yield Done(response, None)
                return
            read = yield Read(response)
            if isinstance(read, BaseException):
                # The body broke off after the status arrived: the status alone
                # decides; if that ends the call, the library's error does.
                broken, body = read, None
            else:
                response, body = read
            view = wire.view(response, body, request)
            classification = core.classifier.classify_view(view, core.wall())
            if breaker is not None:
                failed = classification.category is Category.TRANSIENT
                breaker.record(circuit, failed, core.monotonic())
            if limiter is not None:
                if classification.category is Category.RATE_LIMITED:
                    limiter.on_throttled(
                        pace_key,
                        core.monotonic(),
                        classification.retry_after,
                        view.headers,
                        wall_now=core.wall(),
                    )
                else:
                    limiter.on_success(
                        pace_key, core.monotonic(), view.headers, wall_now=core.wall()
                    )
            decision = call.on_response(classification, core.monotonic())
            if decision.action is not Action.RETRY:
                if decision.action is Action.GIVE_UP:
                    _log.debug(
                        "%s %s: %s, giving up: %s", method, call.url, status, decision.reason
                    )
                if broken is not None:
                    yield Discard(response)
                    yield Done(None, broken)
                    return
                wire.attach(response, tuple(call.attempts))
                yield Done(response, None)
                return
            yield Discard(response)
        event = decision.event
        assert event is not None  # a RETRY decision always carries its event
        _log_retry(event)
        yield Sleep(decision.delay, event)
        if event.next_region != event.region and event.next_region is not None:
            request = wire.rebuild(
                request, core.locator.with_region(wire.parts(request), event.next_region)
            )
            circuit = (wire.host(request), event.next_region)
        stop = None
        if breaker is not None and not breaker.allow(circuit, core.monotonic()):
            stop = "circuit open; not retried"
        elif limiter is not None:
            now = core.monotonic()
            paced = _pace(core, limiter, pace_key, call.started, now - call.started)
            if paced < 0:
                stop = "local rate limit would wait too long; not retried"
            elif paced > 0:
                call.add_wait(paced)
                yield Sleep(paced)
        if stop is not None:
            # Stop with what we have: the last answer (or error).
            _log.warning("%s %s: %s", method, call.url, stop)
            call.abandon(stop)
            if isinstance(outcome, BaseException):
                yield Done(None, outcome)
            elif broken is not None:
                yield Done(None, broken)
            else:
                wire.attach(response, tuple(call.attempts))
                yield Done(response, None)
            return
        outcome = yield Send(request)


def _open_circuit(core: Core, circuit: tuple[str | None, str | None]) -> Classification:
    host, region = circuit
    detector = core.classifier.known_detector(host)
    where = f"{host}" + (f" ({region})" if region else "")
    return Classification.of(
        detector.name if detector is not None else "generic",
        Category.TRANSIENT,
        0,
        code="circuit_open",
        message=f"circuit open for {where}: not sent",
    )


def _pace(core: Core, limiter: RateLimiter, key: str, started: float, elapsed: float) -> float:
    """Seconds to wait before sending (reserved), or -1 when the wait is too long.

    Too long: past ``retry_after_max``, or past what is left of the deadline.
    """
    policy = core.policy
    max_wait = policy.retry_after_max
    if policy.deadline is not None:
        max_wait = min(max_wait, max(0.0, policy.deadline - elapsed))
    wait = limiter.acquire(key, core.monotonic(), max_wait=max_wait)
    return -1.0 if wait is None else wait


def _local_limit(core: Core, limiter: RateLimiter, key: str, host: str | None) -> Classification:
    detector = core.classifier.known_detector(host)
    wait = limiter.would_wait(key, core.monotonic())
    return Classification.of(
        detector.name if detector is not None else "generic",
        Category.RATE_LIMITED,
        0,
        code="local_rate_limit",
        message=f"local rate limit for {key}: the next slot is {wait:.3g}s away; not sent",
        retry_after=wait,
    )


class SyncIO(Protocol):
    """The blocking operations of a synchronous shell."""

    def send(self, request: Any) -> Any: ...
    def read(self, response: Any) -> tuple[Any, bytes | None]: ...
    def discard(self, response: Any) -> None: ...


class AsyncIO(Protocol):
    """The awaitable operations of an asynchronous shell."""

    def send(self, request: Any) -> Awaitable[Any]: ...
    async def read(self, response: Any) -> tuple[Any, bytes | None]: ...
    async def discard(self, response: Any) -> None: ...


def _refuse_awaitable(result: object, name: str) -> None:
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise TypeError(f"{name} returned an awaitable: use AsyncResilientTransport for async")


def refuse_coroutine_functions(policy: Policy) -> None:
    """A sync shell cannot await: reject async ``on_retry``/``sleep`` up front."""
    for name in ("on_retry", "sleep"):
        value = getattr(policy, name)
        if value is not None and inspect.iscoroutinefunction(value):
            raise TypeError(f"{name} is a coroutine function: use AsyncResilientTransport")


def drive(
    core: Core,
    wire: Wire[Any, Any],
    request: Any,
    io: SyncIO,
    sleep: Callable[[float], Any],
) -> Any:
    """Send ``request`` and carry out its retries synchronously; return the
    final response or raise the final error."""
    first = admit(core, wire, request)
    if first.paced > 0:
        _refuse_awaitable(sleep(first.paced), "sleep")
    try:
        outcome = io.send(request)
    except Exception as exc:
        outcome = exc
    else:
        if first.succeeded(outcome):
            return outcome
    on_retry = core.policy.on_retry
    flow = retry_flow(first, outcome)
    command = next(flow)
    while True:
        result: Any = None
        if type(command) is Send:
            try:
                result = io.send(command.request)
            except Exception as exc:
                result = exc
        elif type(command) is Read:
            try:
                result = io.read(command.response)
            except Exception as exc:
                result = exc
        elif type(command) is Discard:
            io.discard(command.response)
        elif type(command) is Sleep:
            if on_retry is not None and command.event is not None:
                _refuse_awaitable(on_retry(command.event), "on_retry")
            if command.seconds > 0:
                _refuse_awaitable(sleep(command.seconds), "sleep")
        else:
            assert type(command) is Done
            flow.close()
            if command.error is not None:
                raise command.error
            return command.response
        command = flow.send(result)


async def drive_async(
    core: Core,
    wire: Wire[Any, Any],
    request: Any,
    io: AsyncIO,
    sleep: Callable[[float], Awaitable[Any]],
) -> Any:
    """The asynchronous counterpart of :func:`drive`."""
    first = admit(core, wire, request)
    if first.paced > 0:
        await _maybe_await(sleep(first.paced))
    try:
        outcome = await io.send(request)
    except Exception as exc:
        outcome = exc
    else:
        if first.succeeded(outcome):
            return outcome
    on_retry = core.policy.on_retry
    flow = retry_flow(first, outcome)
    command = next(flow)
    while True:
        result: Any = None
        if type(command) is Send:
            try:
                result = await io.send(command.request)
            except Exception as exc:
                result = exc
        elif type(command) is Read:
            try:
                result = await io.read(command.response)
            except Exception as exc:
                result = exc
        elif type(command) is Discard:
            await io.discard(command.response)
        elif type(command) is Sleep:
            if on_retry is not None and command.event is not None:
                await _maybe_await(on_retry(command.event))
            if command.seconds > 0:
                await _maybe_await(sleep(command.seconds))
        else:
            assert type(command) is Done
            flow.close()
            if command.error is not None:
                raise command.error
            return command.response
        command = flow.send(result)


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result
