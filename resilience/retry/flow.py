"""The retry loop, written once and carried out by each shell.

A call starts with :func:`admit` (the idempotency key, then the pipeline's
gates) and one request. :meth:`Call.succeeded` records an answer under 400 (the
one place success is recorded, for a first attempt and a retried one alike)
and ends the call with no further per-call state. Otherwise
:func:`retry_flow` takes over: like httpx's ``Auth.auth_flow``, it yields
commands (send this request, read this body, discard this response, sleep,
done) and receives their results. The shells only carry them out,
synchronously (:func:`drive`) or asynchronously (:func:`drive_async`), and
close in ``finally`` whatever they will not return, as httpx's
``_send_handling_auth`` does, cancellation included.

Decisions come from :class:`~resilience.retry.engine.CallState`; budgets,
breakers and limits from the strategies of the transport's
:class:`~resilience.strategies.Pipeline`; what a vendor means from its
detector's :class:`~resilience.detectors.VendorRules`.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from resilience.core.classification import Category, Classification
from resilience.core.records import UNSAFE_METHODS, Action, Attempt, ErrorKind, RetryEvent
from resilience.core.redact import redact_url
from resilience.core.response import ResponseView
from resilience.detectors.rules import VendorRules
from resilience.errors import ResilienceError
from resilience.instrumentation._events import AttemptEvent, CallEvent
from resilience.instrumentation._hooks import PROCESS, Instruments
from resilience.instrumentation._hooks import current as current_instruments
from resilience.regions import RegionLocator
from resilience.retry.classifier import Classifier
from resilience.retry.closing import aclose_quietly, close_quietly
from resilience.retry.engine import CallState
from resilience.retry.lazy import forget, lazy
from resilience.retry.policy import Policy
from resilience.retry.racing import Copies, Race
from resilience.retry.racing_tasks import race_async
from resilience.retry.racing_threads import HedgePool, race, race_inline
from resilience.retry.rounds import Round, unusable
from resilience.retry.testing_mode import MODE
from resilience.stores.memory import MemoryStore
from resilience.strategies.base import Outcome, Pipeline, Refusal

__all__ = [
    "ATTEMPTS_KEY",
    "ERROR_ATTEMPTS",
    "AsyncIO",
    "Call",
    "Core",
    "History",
    "Wire",
    "admit",
    "drive",
    "drive_async",
    "outcome_of",
    "refuse_coroutine_functions",
    "retry_flow",
    "SyncIO",
]

_log = logging.getLogger(__name__)

#: Where the attempt history is kept on a response.
ATTEMPTS_KEY = "resilience.attempts"
#: Where it is kept on the exception a call raises after its attempts.
ERROR_ATTEMPTS = "_resilience_attempts"

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class Wire(Protocol[Req, Resp]):  # type: ignore[misc]
    """An adapter over one HTTP library's request and response objects (no I/O)."""

    def method(self, request: Req) -> str: ...
    def url(self, request: Req) -> str: ...
    def host(self, request: Req) -> str | None: ...
    def header(self, request: Req, name: str) -> str | None: ...
    def set_header(self, request: Req, name: str, value: str) -> None: ...
    def replayable(self, request: Req) -> bool: ...
    def parts(self, request: Req) -> Any: ...
    def rebuild(self, request: Req, parts: Any) -> Req: ...
    def copy(self, request: Req) -> Req:
        """A copy of ``request`` to send alongside it (a hedge), its own timeouts included."""

    def status(self, response: Resp) -> int: ...
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
    """Send ``request`` within ``budget`` seconds (``None``: the client's own
    timeouts); reply with the response or the exception raised."""

    request: Req
    budget: float | None = None


@dataclass(slots=True)
class Read(Generic[Resp]):
    """Read at most 64 KiB of ``response``, stopping at the monotonic time
    ``until`` (``None``: no limit) with the client's own read timeout error;
    reply with ``(response, body or None)``, or with the exception raised."""

    response: Resp
    until: float | None = None


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


#: Seconds an attempt needs at least: with less left before the deadline, the
#: call ends with what it has instead of starting one bound to time out.
MIN_ATTEMPT = 0.005


def attempt_budget(policy: Policy, elapsed: float) -> float | None:
    """Seconds an attempt may take once ``elapsed`` seconds of its call have
    passed: ``attempt_timeout`` and what is left of the deadline, the smaller;
    ``None`` when neither is set."""
    budget = policy.attempt_timeout
    if policy.deadline is not None:
        left = policy.deadline - elapsed
        budget = left if budget is None else min(budget, left)
    # Never a zero or negative timeout: that is "no wait at all" to a socket.
    return None if budget is None else max(budget, MIN_ATTEMPT)


class Core:
    """What one transport shares between its calls: the policy, the classifier,
    the store and the strategy pipeline, and the clocks.

    Args:
        policy: the policy.
        monotonic: the clock for deadlines, waits and the store.
        wall: the wall clock, for ``Retry-After`` HTTP-dates and the breaker's
            buckets.
    """

    __slots__ = (
        "classifier",
        "first_budget",
        "first_wait",
        "generation",
        "instruments",
        "monotonic",
        "pipeline",
        "policy",
        "store",
        "timed",
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
        #: The transport's own hooks; ``None``: the process-wide ones, looked up per call.
        self.instruments = (
            Instruments(policy.instrumentation) if policy.instrumentation is not None else None
        )
        self.monotonic = monotonic
        self.wall = wall
        self.refresh()
        #: Whether attempts have a time budget (``deadline`` or ``attempt_timeout``).
        self.timed = policy.deadline is not None or policy.attempt_timeout is not None
        #: The time budget of a first attempt sent at once (:meth:`Call.budget`
        #: at the start of a call).
        self.first_budget = attempt_budget(policy, 0.0)
        #: The longest a gate may make a call wait before its first attempt
        #: (:meth:`Call.max_wait` at the start of a call).
        self.first_wait = (
            policy.retry_after_max
            if policy.deadline is None
            else min(policy.retry_after_max, policy.deadline)
        )

    def refresh(self) -> None:
        """(Re)build the store and the strategies: fresh state, unless the policy
        names a store (shared on purpose, and left alone)."""
        policy = self.policy
        # Without a store, this transport's own memory: the same algorithms.
        self.store = policy.store if policy.store is not None else MemoryStore()
        self.pipeline = Pipeline(
            [config.build(self.store, self.wall) for config in policy.strategies]
        )
        self.generation = MODE.generation


#: Methods whose copies may race: safe or idempotent (RFC 9110 §9.2.1-2).
HEDGEABLE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class Call:
    """One call: what the strategies may read about it (see
    :class:`~resilience.strategies.CallInfo`), and, when it ends on its first
    attempt, its whole history, expanded only when :func:`attempts` asks.

    A call that ends on its first attempt writes almost nothing: what it does
    not change stays at the class's defaults below, and the host, region and
    the answer's headers are read on first use (a success that no strategy
    asks about reads none of them).
    """

    #: Seconds a gate made the first attempt wait.
    paced: float = 0.0
    #: The status of the answer that ended the call as a success.
    status: int = 0
    #: The answer whose headers ``headers`` reads on first use.
    answer: Any = None
    #: Seconds from the last answer's ``Retry-After``, when classified.
    retry_after: float | None = None
    #: The per-call state, once the call goes beyond one plain attempt.
    state: CallState | None = None
    #: When the attempt now answered was sent (kept when hedging only).
    sent: float | None = None
    #: The copies of the last attempt, when it was raced against hedges.
    round: Round | None = None
    _parts: Any = None
    #: The region locator once settled (see :meth:`locator_for`).
    _locator: RegionLocator | None = None

    def __init__(self, core: Core, wire: Wire[Any, Any], request: Any, started: float) -> None:
        self.core = core
        self.wire = wire
        self.request = request
        self.started = started
        # Whether the body can be replayed is asked before sending: sending may read it.
        self.replayable = wire.replayable(request)
        #: The time budget of the first attempt (:meth:`budget` once any wait
        #: a gate asked for is over).
        self.first_budget = core.first_budget
        #: What strategies remember between their duties within this call.
        self.notes: dict[object, object] = {}

    # -- what strategies read -------------------------------------------------

    @lazy
    def host(self) -> str | None:
        """The request's host name, without port."""
        return self.wire.host(self.request)

    @lazy
    def region(self) -> str | None:
        """The region of the current attempt (``None`` when regions are not in use
        or no locator can read it)."""
        if self.core.policy.regions is None:
            return None
        locator = (
            self._locator
            or self.core.policy.region_locator
            or self.core.classifier.host_rules(self.host).region_locator
        )
        if locator is None:
            return None
        self._locator = locator
        return locator.region_of(self.parts)

    @lazy
    def headers(self) -> Mapping[str, str] | None:
        """The headers of the answer heard last (``None``: none, a network error)."""
        answer = self.answer
        return None if answer is None else self.wire.response_headers(answer)

    @property
    def vendor(self) -> str:
        """The vendor fixed for the host, else ``"generic"``."""
        return self.core.classifier.host_rules(self.host).vendor

    @property
    def repeatable(self) -> bool:
        """Whether the request may be sent twice (see :class:`~resilience.strategies.CallInfo`)."""
        if not self.replayable:
            return False
        if self.wire.method(self.request) in HEDGEABLE_METHODS:
            return True
        return self.carries_key(self.core.classifier.host_rules(self.host))

    # -- what the flow does with it -------------------------------------------

    def budget(self, now: float) -> float | None:
        """Seconds the next attempt may take: ``attempt_timeout`` and what is
        left of the deadline, the smaller; ``None`` when neither is set."""
        return attempt_budget(self.core.policy, now - self.started)

    def out_of_time(self, now: float) -> bool:
        """Whether the deadline leaves less than an attempt needs."""
        deadline = self.core.policy.deadline
        return deadline is not None and deadline - (now - self.started) < MIN_ATTEMPT

    def read_until(self) -> float | None:
        """When the library's own reads of error bodies must stop (the deadline)."""
        deadline = self.core.policy.deadline
        return None if deadline is None else self.started + deadline

    def max_wait(self, now: float) -> float:
        """The longest a gate may make this call wait now."""
        policy = self.core.policy
        if policy.deadline is None:
            return policy.retry_after_max
        left = policy.deadline - max(now - self.started, self.paced)
        return min(policy.retry_after_max, max(0.0, left))

    @property
    def parts(self) -> Any:
        """The request as plain values (:class:`~resilience.regions.RequestParts`), made once."""
        if self._parts is None:
            self._parts = self.wire.parts(self.request)
        return self._parts

    def carries_key(self, rules: VendorRules) -> bool:
        """Whether the request carries an idempotency key: a header, or the vendor's word."""
        wire, request = self.wire, self.request
        if wire.header(request, "idempotency-key") or wire.header(request, "x-idempotency-key"):
            return True
        return rules.safe_to_repeat(self.parts)

    def locator_for(self, rules: VendorRules) -> RegionLocator | None:
        """The region locator: the policy's, else the host's vendor's, else ``rules``'."""
        if self._locator is None:
            self._locator = self.core.policy.region_locator
            if self._locator is None and rules.region_locator is not None:
                self._locator = rules.region_locator
                forget(self, "region")  # read it again, where this vendor keeps it
        return self._locator

    def move(self, request: Any, region: str | None) -> None:
        """The next attempt goes to ``region`` with ``request``."""
        self.request = request
        self._parts = None
        forget(self, "host")
        self.region = region

    def instruments(self) -> Instruments:
        """The hooks observing this call: the transport's, else the process's."""
        return self.core.instruments or current_instruments()

    def report(
        self,
        c: Classification | None,
        error: str | None,
        reason: str,
        *,
        why: str | None = None,
        event: RetryEvent | None = None,
    ) -> None:
        """Tell the hooks how the last decided attempt ended and what follows."""
        state = self.state
        last = state.last if state is not None else None
        number, region = (last.number, last.region) if last is not None else (1, self.region)
        self._tell(
            number,
            region,
            reason,
            c=c,
            status=c.status if c is not None else None,
            error=error,
            delay=event.delay if event is not None else 0.0,
            next_region=event.next_region if event is not None else region,
            why=why,
        )

    def report_copy(
        self, number: int, status: int | None, error: str | None, reason: str, delay: float
    ) -> None:
        """Tell the hooks about a raced copy: sent as a hedge (``reason="hedge"``),
        or lost (``"cancelled"``, ``"superseded"``)."""
        region = self.region
        self._tell(
            number, region, reason, status=status, error=error, delay=delay, next_region=region
        )

    def _tell(
        self,
        number: int,
        region: str | None,
        reason: str,
        *,
        c: Classification | None = None,
        status: int | None,
        error: str | None,
        delay: float,
        next_region: str | None,
        why: str | None = None,
    ) -> None:
        instruments = self.instruments()
        if not instruments.hooks:
            return
        state = self.state
        instruments.attempt(
            AttemptEvent(
                attempt=number,
                method=self.wire.method(self.request),
                url=state.url if state else redact_url(self.wire.url(self.request)),
                vendor=c.vendor if c is not None else self.vendor,
                category=c.category if c is not None else None,
                status=status,
                error=error,
                delay=delay,
                region=region,
                next_region=next_region,
                reason=reason,
                why=why,
                trace_id=c.trace_id if c is not None else None,
                code=c.code if c is not None else None,
            )
        )

    def report_hedge(self, index: int, delay: float) -> None:
        """A hedged copy (``index`` of the current attempt) is being sent."""
        done = len(self.state.attempts) if self.state is not None else 0
        self.report_copy(done + 1 + index, None, None, "hedge", delay)

    def heard_loser(self, outcome: Any, sent: float, now: float) -> None:
        """A raced copy answered unusably while another was in flight: the
        strategies hear it as any failed attempt."""
        wire = self.wire
        if isinstance(outcome, BaseException):
            kind = wire.error_kind(outcome)
            if kind is None or kind is ErrorKind.FATAL:
                return
            self.headers, verdict = None, Outcome.FAILURE
        else:
            self.headers = wire.response_headers(outcome)
            verdict = unusable(wire.status(outcome)) or Outcome.FAILURE
        self.retry_after, self.sent = None, sent
        self.core.pipeline.record(self, verdict, now)

    def begin(self) -> CallState:
        """The per-call state of a call that goes beyond one plain attempt."""
        wire, request = self.wire, self.request
        state = self.state = CallState(
            MODE.policy(self.core.policy),
            method=wire.method(request),
            url=redact_url(wire.url(request)),
            started=self.started,
            region=self.region,
            replayable=self.replayable,
            idempotent=self.carries_key,
        )
        if self.paced:
            state.add_wait(self.paced)
        return state

    def settle_round(self) -> None:
        """Record the raced copies of the last attempt that did not win."""
        race, self.round = self.round, None
        if race is None:
            return
        state = self.state or self.begin()
        for lost in state.settle(race):
            self.report_copy(lost.number, lost.status, lost.error, lost.outcome, lost.delay)

    def ended(self, outcome: str, status: int | None, error: str | None, vendor: str) -> None:
        """Tell the hooks the call ended."""
        instruments = self.instruments()
        if not instruments.hooks:
            return
        state = self.state
        attempts = tuple(state.attempts) if state is not None else self.resolve()
        instruments.call(
            CallEvent(
                method=self.wire.method(self.request),
                url=state.url if state else redact_url(self.wire.url(self.request)),
                vendor=vendor,
                outcome=outcome,
                status=status,
                error=error,
                attempts=attempts,
                duration=self.core.monotonic() - self.started,
            )
        )

    def succeeded(self, response: Any) -> bool:
        """Whether ``response`` ends the call as a success; if so, record it.

        The one place success is recorded: no body read, no parsing, and on a
        first attempt no per-call state beyond this object.
        """
        wire = self.wire
        status = wire.status(response)
        if status >= 400:
            return False
        core = self.core
        self.status = status
        self.answer = response
        if self.state is not None or self.round is not None:
            # Earlier answers of this call were heard: ``headers`` holds theirs.
            self.headers = wire.response_headers(response)
        core.pipeline.record(self, Outcome.SUCCESS, core.monotonic())
        if self.round is not None:
            self.settle_round()
        state = self.state
        if state is None:
            wire.attach(response, self)
            instruments = core.instruments
            if instruments.successes if instruments is not None else PROCESS.successes:
                c = core.classifier.success(status, self.host, self.headers)
                self.report(c, None, "return")
                self.ended("success", status, None, c.vendor)
            # The response carries this call: no reference back (no cycle).
            self.answer = None
        else:
            c = core.classifier.success(status, self.host, self.headers)
            state.on_response(c, 0.0)
            wire.attach(response, tuple(state.attempts))
            self.report(c, None, "return")
            self.ended("success", status, None, c.vendor)
        return True

    def resolve(self, headers: Mapping[str, str] | None = None) -> tuple[Attempt, ...]:
        """The one-attempt history of a call that ended on its first attempt
        (``headers``: its answer's, when the call no longer holds the answer)."""
        if headers is None:
            headers = self.headers
        c = self.core.classifier.success(self.status, self.host, headers)
        return (Attempt(1, self.status, None, 0.0, self.region, c),)


#: What a response carries: its attempts, or a first-attempt success to expand on demand.
History = tuple[Attempt, ...] | Call


def outcome_of(c: Classification) -> Outcome:
    """What an answer tells the strategies."""
    if c.category is Category.TRANSIENT:
        return Outcome.FAILURE
    if c.category is Category.RATE_LIMITED:
        return Outcome.THROTTLED
    return Outcome.DEFERRED if c.retryable else Outcome.SUCCESS


def admit(core: Core, wire: Wire[Req, Resp], request: Req) -> Call:
    """Settle what a call needs before its first request: the idempotency key,
    whether the body can be replayed, the start of the deadline, and what the
    pipeline's gates say (go, wait: ``Call.paced``, or refuse).

    Raises:
        CircuitOpen, RateLimited: a gate refused (the error is also the
            library's connection error).
    """
    if core.generation != MODE.generation:
        core.refresh()  # the testing mode was switched: start afresh
    policy = core.policy
    if (
        policy.idempotency_key
        and wire.method(request) in UNSAFE_METHODS
        and wire.header(request, "idempotency-key") is None
        and wire.header(request, "x-idempotency-key") is None
    ):
        wire.set_header(request, "Idempotency-Key", str(uuid.uuid4()))
    call = Call(core, wire, request, core.monotonic())
    if not core.pipeline.gates:
        return call
    gate = core.pipeline.before_attempt(call, call.started, core.first_wait)
    if isinstance(gate, Refusal):
        _log.warning(
            "%s %s: not sent: %s",
            wire.method(request),
            redact_url(wire.url(request)),
            gate.classification.message,
        )
        raise wire.not_sent(request, gate.classification, gate.error)
    call.paced = gate
    if gate:
        call.first_budget = call.budget(call.started + gate)
    return call


def retry_flow(call: Call, outcome: Any) -> Generator[Command, Any, None]:
    """The rest of a call whose first attempt did not succeed (see the module
    docstring); ``outcome`` is that attempt's response or exception."""
    core = call.core
    wire = call.wire
    policy = core.policy
    pipeline = core.pipeline
    classifier = core.classifier
    method = wire.method(call.request)
    state = call.state or call.begin()
    response: Any = None
    while True:
        broken: BaseException | None = None
        call.settle_round()
        if isinstance(outcome, BaseException):
            kind = wire.error_kind(outcome)
            if kind is None:  # not a network error: the caller's to see
                yield Done(None, outcome)
                return
            call.headers = call.retry_after = None
            rules = classifier.host_rules(call.host)
            if kind is not ErrorKind.FATAL:
                pipeline.record(call, Outcome.FAILURE, core.monotonic())
            decision = state.on_error(kind, type(outcome).__name__, core.monotonic(), rules)
            if decision.action is not Action.RETRY:
                # The error's class only: its text may quote the URL's credentials.
                error = type(outcome).__name__
                call.report(None, error, "give_up", why=decision.reason)
                call.ended("error", None, error, call.vendor)
                yield Done(None, outcome)
                return
        else:
            response = outcome
            if call.succeeded(response):
                yield Done(response, None)
                return
            read = yield Read(response, call.read_until())
            if isinstance(read, BaseException):
                # The body broke off after the status arrived: the status alone
                # decides; if that ends the call, the library's error does.
                broken, body = read, None
            else:
                response, body = read
            view = wire.view(response, body, call.request)
            c = classifier.classify_view(view, core.wall())
            call.headers, call.retry_after = view.headers, c.retry_after
            rules = classifier.rules(c.vendor)
            if c.category is Category.CAPACITY and policy.regions is not None:
                state.failover = call.locator_for(rules) is not None
                state.locate(call.region)
            pipeline.record(call, outcome_of(c), core.monotonic())
            decision = state.on_response(c, core.monotonic(), rules)
            if decision.action is not Action.RETRY:
                final = decision.classification or c
                giving_up = decision.action is Action.GIVE_UP
                call.report(
                    final,
                    None,
                    "give_up" if giving_up else "return",
                    why=decision.reason if giving_up else None,
                )
                if broken is not None:
                    call.ended("error", view.status, type(broken).__name__, final.vendor)
                    yield Discard(response)
                    yield Done(None, broken)
                    return
                done = final.category in (Category.OK, Category.ALREADY_DONE)
                call.ended("success" if done else "failure", view.status, None, final.vendor)
                wire.attach(response, tuple(state.attempts))
                yield Done(response, None)
                return
        # A retry, unless a strategy refuses it.
        refused = pipeline.refuses_retry(call, core.monotonic())
        event = decision.event
        assert event is not None  # a RETRY decision always carries its event
        failed = type(outcome).__name__ if isinstance(outcome, BaseException) else None
        if refused is not None:
            call.report(event.classification, failed, "give_up", why=refused)
        else:
            call.report(event.classification, failed, event.reason, event=event)
            if not isinstance(outcome, BaseException):
                yield Discard(response)
            yield Sleep(decision.delay, event)
            if event.next_region != event.region and event.next_region is not None:
                locator = call.locator_for(rules)
                assert locator is not None  # failover needs a region, which needs a locator
                parts = locator.with_region(call.parts, event.next_region)
                call.move(wire.rebuild(call.request, parts), event.next_region)
            now = core.monotonic()
            gate = pipeline.before_attempt(call, now, call.max_wait(now))
            if isinstance(gate, Refusal):
                refused = gate.reason
            elif gate:
                state.add_wait(gate)
                yield Sleep(gate)
            now = core.monotonic()
            budget = call.budget(now)
            if refused is None and call.out_of_time(now):
                refused = "deadline reached: no time left for another attempt"
        if refused is not None:
            # Stop with what we have: the last answer (or error).
            _log.warning("%s %s: %s", method, state.url, refused)
            state.abandon(refused)
            last = event.classification
            vendor = last.vendor if last is not None else call.vendor
            if isinstance(outcome, BaseException):
                call.ended("error", None, failed, vendor)
                yield Done(None, outcome)
            elif broken is not None:
                call.ended("error", None, type(broken).__name__, vendor)
                yield Done(None, broken)
            else:
                call.ended("failure", last.status if last else None, None, vendor)
                wire.attach(response, tuple(state.attempts))
                yield Done(response, None)
            return
        outcome = yield Send(call.request, budget)


class SyncIO(Protocol):
    """The blocking operations of a synchronous shell.

    ``send`` cuts the request's timeouts to ``budget`` seconds when it is set;
    ``read`` stops at the monotonic time ``until`` with the client's own read
    timeout error.
    """

    def send(self, request: Any, budget: float | None) -> Any: ...
    def read(self, response: Any, until: float | None) -> tuple[Any, bytes | None]: ...
    def discard(self, response: Any) -> None: ...

    # Optional: ``cuts_sends``, true when a send honours the race's cut
    # (:class:`~resilience.retry.racing_threads.Cut`): a raced attempt's first copy
    # is then sent from the caller's thread.


class AsyncIO(Protocol):
    """The awaitable operations of an asynchronous shell (see :class:`SyncIO`);
    an async shell also cancels an attempt that outlives its budget."""

    def send(self, request: Any, budget: float | None) -> Awaitable[Any]: ...
    async def read(self, response: Any, until: float | None) -> tuple[Any, bytes | None]: ...
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
    pool: HedgePool | None = None,
) -> Any:
    """Send ``request`` and carry out its retries synchronously; return the
    final response or raise the final error. With ``pool`` (the transport's
    threads) and a pipeline that hedges, attempts race against their hedges.

    Whatever happens, cancellation and ``KeyboardInterrupt`` included, every
    response that is not returned is closed and the flow is closed.
    """
    call = admit(core, wire, request)
    if call.paced > 0:
        _refuse_awaitable(sleep(call.paced), "sleep")
    try:
        if pool is not None and core.pipeline.hedges:
            outcome = _raced(call, io, pool, request)
        else:
            outcome = io.send(request, call.first_budget)
    except Exception as exc:
        outcome = exc
    else:
        if call.succeeded(outcome):
            return outcome
    on_retry = core.policy.on_retry
    flow = retry_flow(call, outcome)
    live = None if isinstance(outcome, BaseException) else outcome
    try:
        command = next(flow)
        while True:
            result: Any = None
            if type(command) is Send:
                try:
                    if pool is not None and core.pipeline.hedges:
                        result = live = _raced(call, io, pool, command.request)
                    else:
                        result = live = io.send(command.request, command.budget)
                except Exception as exc:
                    result = exc
            elif type(command) is Read:
                try:
                    result = io.read(command.response, command.until)
                except Exception as exc:
                    result = exc
                else:
                    live = result[0]
            elif type(command) is Discard:
                live = None
                io.discard(command.response)
            elif type(command) is Sleep:
                if on_retry is not None and command.event is not None:
                    _refuse_awaitable(on_retry(command.event), "on_retry")
                if command.seconds > 0:
                    _refuse_awaitable(sleep(command.seconds), "sleep")
            else:
                assert type(command) is Done
                if command.error is not None:
                    raise _with_history(command.error, call)
                live = None
                return command.response
            command = flow.send(result)
    finally:
        flow.close()
        if live is not None:
            close_quietly(io.discard, live)


async def drive_async(
    core: Core,
    wire: Wire[Any, Any],
    request: Any,
    io: AsyncIO,
    sleep: Callable[[float], Awaitable[Any]],
) -> Any:
    """The asynchronous counterpart of :func:`drive`."""
    call = admit(core, wire, request)
    if call.paced > 0:
        await _maybe_await(sleep(call.paced))
    hedges = core.pipeline.hedges
    try:
        if hedges:
            outcome = await _araced(call, io, request)
        else:
            outcome = await io.send(request, call.first_budget)
    except Exception as exc:
        outcome = exc
    else:
        if call.succeeded(outcome):
            return outcome
    on_retry = core.policy.on_retry
    flow = retry_flow(call, outcome)
    live = None if isinstance(outcome, BaseException) else outcome
    try:
        command = next(flow)
        while True:
            result: Any = None
            if type(command) is Send:
                try:
                    if hedges:
                        result = live = await _araced(call, io, command.request)
                    else:
                        result = live = await io.send(command.request, command.budget)
                except Exception as exc:
                    result = exc
            elif type(command) is Read:
                try:
                    result = await io.read(command.response, command.until)
                except Exception as exc:
                    result = exc
                else:
                    live = result[0]
            elif type(command) is Discard:
                live = None
                await io.discard(command.response)
            elif type(command) is Sleep:
                if on_retry is not None and command.event is not None:
                    await _maybe_await(on_retry(command.event))
                if command.seconds > 0:
                    await _maybe_await(sleep(command.seconds))
            else:
                assert type(command) is Done
                if command.error is not None:
                    raise _with_history(command.error, call)
                live = None
                return command.response
            command = flow.send(result)
    finally:
        flow.close()
        if live is not None:
            await aclose_quietly(io.discard, live)


def _hedge_plan(call: Call, request: Any) -> Race | None:
    """The race of the attempt about to be sent with ``request``, if it is hedged."""
    core = call.core
    now = core.monotonic()
    call.sent = now
    delay = core.pipeline.hedge_delay(call, 1)
    if delay is None:
        return None
    state = call.state
    done = len(state.attempts) if state is not None else 0
    allowed = MODE.policy(core.policy).max_attempts - done
    return Race(call, delay, now, allowed) if allowed > 1 else None


def _budget_of(call: Call) -> Callable[[float], float | None]:
    if call.core.timed:
        return call.budget
    return lambda now: None


def _raced(call: Call, io: SyncIO, pool: HedgePool, request: Any) -> Any:
    """Send one attempt, raced against its hedges when the pipeline hedges it;
    return the answer, or raise the error, that ended it."""
    plan = _hedge_plan(call, request)
    budget = _budget_of(call)
    if plan is None:
        return io.send(request, budget(call.sent or 0.0))
    runner = race_inline if getattr(io, "cuts_sends", False) else race
    outcome = runner(plan, pool, Copies(request, io.send, io.discard, call.wire.copy, budget))
    call.round = plan.round()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def _araced(call: Call, io: AsyncIO, request: Any) -> Any:
    """The asynchronous counterpart of :func:`_raced` (a task per copy)."""
    plan = _hedge_plan(call, request)
    budget = _budget_of(call)
    if plan is None:
        return await io.send(request, budget(call.sent or 0.0))
    outcome = await race_async(plan, Copies(request, io.send, io.discard, call.wire.copy, budget))
    call.round = plan.round()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _with_history(error: BaseException, call: Call) -> BaseException:
    """``error``, carrying the attempts of the call (see :func:`attempts`)."""
    if call.state is not None:
        # An exception class with __slots__ takes no attribute: no history then.
        with contextlib.suppress(AttributeError, TypeError):
            setattr(error, ERROR_ATTEMPTS, tuple(call.state.attempts))
    return error


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result
