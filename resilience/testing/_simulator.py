"""The embedded vendor simulator: scripted faults over a real loopback HTTP server."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from resilience.testing._faults import Fault, FaultMix
from resilience.testing._replies import Reply
from resilience.testing._server import HOST, SimulatorServer
from resilience.testing._throttle import Throttle, Window, format_retry_after
from resilience.testing._vendors import business_body, make_vendors
from resilience.testing._wire import VENDORS, Request, Response, json_response


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the simulator received.

    Attributes:
        method: Request method, upper case.
        path: Path without the query string (``/gameye/session``).
        query: Query string without ``?`` (empty when none).
        headers: Headers with lower-case names.
        body: Body bytes, cut at 1 MiB.
        key: Value of the ``X-Sim-Key`` header, or ``None``.
        at: ``time.monotonic()`` when the request was read.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    key: str | None
    at: float

    def json(self) -> Any:
        """Parse the body as JSON.

        Returns:
            The parsed body.

        Raises:
            ValueError: The body is not JSON.
        """
        return json.loads(self.body)


Source = Literal["rate_limit", "fail_all", "script", "mix"]
"""What chose an answer: the rate limit, :meth:`VendorSimulator.fail_all`, a
script (:meth:`~VendorSimulator.script`, :meth:`~VendorSimulator.script_route`)
or the fault mix and normal behaviour (:meth:`~VendorSimulator.serve_faults`)."""


@dataclass(frozen=True, slots=True)
class Served:
    """A request the simulator answered, as reported to ``on_served``.

    Attributes:
        method: Request method, upper case.
        path: Path without the query string.
        status: Status sent, ``None`` when the connection was closed unanswered.
        source: What chose the answer.
        fault: The fault a :class:`FaultMix` drew (``"normal"`` when it drew
            none, or when no mix is served); ``None`` when ``source`` is not
            ``"mix"``.
        at: ``time.time()`` when the answer was ready.
        seconds: Time from reading the request to the answer being ready.
    """

    method: str
    path: str
    status: int | None
    source: Source
    fault: Fault | None
    at: float
    seconds: float


class _Script:
    """A queue of replies, consumed one per matching request."""

    __slots__ = ("repeat", "replies")

    def __init__(self, replies: Iterable[Reply], repeat: bool) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.repeat = repeat

    def _advance(self) -> None:
        if not (self.repeat and len(self.replies) == 1):
            self.replies.popleft()

    def take(self, req: Request) -> Reply | None:
        """Return the reply for ``req`` and consume it, or ``None`` for normal behaviour.

        Args:
            req: The request answered.

        Returns:
            The reply to render, or ``None``.
        """
        replies = self.replies
        if not replies:
            return None
        head = replies[0]
        if head.kind == "when":
            if req.region() != head.region:
                if head.consume:
                    self._advance()
                return None
            self._advance()
            return head.then
        self._advance()
        return head


def _check_replies(replies: Iterable[Reply]) -> list[Reply]:
    if isinstance(replies, Reply):
        raise TypeError("replies must be an iterable of Reply, not a single Reply")
    checked = list(replies)
    for reply in checked:
        if not isinstance(reply, Reply):
            raise TypeError(f"replies must hold Reply objects, not {type(reply).__name__}")
    return checked


class VendorSimulator:
    """An HTTP/1.1 server on 127.0.0.1 speaking the Gameye, 8bitedge and Playwave APIs.

    Routes live under ``/gameye``, ``/8bitedge`` and ``/playwave`` (see
    :meth:`base`); ``GET /ping`` answers ``{"ok": true}``. Faults are scripted
    with :class:`Reply` objects, chosen in this order: :meth:`fail_all`, then
    the script of the request's ``X-Sim-Key`` header (:meth:`script`), then the
    script of its method and path for requests without a key
    (:meth:`script_route`), then a random :class:`FaultMix`
    (:meth:`serve_faults`), then the endpoint's normal behaviour. A rate limit
    (:meth:`enforce_rate_limit`) sits in front of all of them, as a vendor's
    gateway does.

    The routes and their normal behaviour (``HEAD`` is served as ``GET``;
    anything else answers 404 in the vendor's envelope)::

        GET    /ping                             {"ok": true}
        POST   /gameye/session                   start a session: {"id", "location", "image"};
                                                 201, or 409 if the id exists
        GET    /gameye/session                   {"sessions": [...]}
        GET    /gameye/session/{id}              the session, or 404
        DELETE /gameye/session/{id}              204, or 404
        GET    /8bitedge/api/v1/me               organization, plan, quota used
        POST   /8bitedge/api/v1/games/batch      {"items": [...]} (at most 50); an
                                                 Idempotency-Key replays, 409 while in
                                                 progress, 422 reused with another body
        POST   /playwave/verify                  {"ott"} -> {"success": true, "sessionId"}
        POST   /playwave/heartbeat               {"sessionId"} -> result "OK"; 404, 410 ended
        POST   /playwave/session/end             {"sessionId"} -> success; 404, 409 ended

    Example:
        >>> with VendorSimulator() as sim:  # doctest: +SKIP
        ...     sim.script("k1", [Reply.error(503)])
        ...     url = sim.base("gameye") + "/session"
    """

    def __init__(
        self,
        *,
        record: bool = True,
        host: str = HOST,
        port: int = 0,
        on_served: Callable[[Served], object] | None = None,
    ) -> None:
        """Create a stopped simulator.

        Args:
            record: Keep every request in :attr:`received`; turn it off for
                long load runs.
            host: Address to listen on. Keep the loopback default unless
                other machines must reach the simulator: it has no
                authentication.
            port: TCP port; ``0`` (the default) picks a free one at each
                :meth:`start`.
            on_served: Called with a :class:`Served` for every request
                answered (or closed unanswered), on the connection's thread,
                before the answer is written; an exception it raises is
                ignored, so that the answer is still sent.
        """
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
        self._record = record
        self._host = host
        self._port = port
        self._on_served = on_served
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._received: list[RecordedRequest] = []
        self._scripts: dict[str, _Script] = {}
        self._routes: dict[tuple[str, str], _Script] = {}
        self._fail_all: Reply | None = None
        self._throttle: Throttle | None = None
        self._faults: FaultMix | None = None
        self._random = random.Random()
        self._statuses: Counter[int] = Counter()
        self._fault_counts: Counter[str] = Counter()
        self._vendors = make_vendors()
        self._server: SimulatorServer | None = None
        self._stopping = threading.Event()
        self._url: str | None = None

    def __repr__(self) -> str:
        """Show the URL and whether the server runs."""
        state = "running" if self._server is not None else "stopped"
        return f"<VendorSimulator {self._url or 'never started'} {state}>"

    def __enter__(self) -> VendorSimulator:
        """Start the server.

        Returns:
            The simulator.
        """
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def start(self) -> VendorSimulator:
        """Start the server (nothing happens if it runs).

        A simulator stopped and started again keeps its scripts and state; on
        port ``0`` it gets a new port.

        Returns:
            The simulator.

        Raises:
            OSError: The address cannot be bound (the port is taken, ...).
        """
        with self._lifecycle:
            if self._server is None:
                self._stopping = threading.Event()
                server = SimulatorServer(self._dispatch, self._host, self._port)
                server.start()
                self._server = server
                host = f"[{self._host}]" if ":" in self._host else self._host
                self._url = f"http://{host}:{server.port}"
        return self

    def stop(self) -> None:
        """Stop the server and close every open connection (idempotent)."""
        with self._lifecycle:
            server = self._server
            if server is None:
                return
            self._server = None
            self._stopping.set()
            server.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the host listened on), without a trailing slash.

        Raises:
            RuntimeError: The simulator was never started.
        """
        if self._url is None:
            raise RuntimeError("the VendorSimulator has not been started")
        return self._url

    @property
    def port(self) -> int:
        """The TCP port the server listens on.

        Raises:
            RuntimeError: The simulator was never started.
        """
        return int(self.url.rpartition(":")[2])

    def base(self, vendor: str) -> str:
        """Return the base URL of a vendor's API.

        Args:
            vendor: ``"gameye"``, ``"8bitedge"`` or ``"playwave"``.

        Returns:
            ``f"{url}/{vendor}"``.

        Raises:
            ValueError: Unknown vendor.
        """
        if vendor not in VENDORS:
            raise ValueError(f"unknown vendor {vendor!r}; expected one of {', '.join(VENDORS)}")
        return f"{self.url}/{vendor}"

    def script(self, key: str, replies: Iterable[Reply], *, repeat: bool = False) -> None:
        """Script the replies to requests whose ``X-Sim-Key`` header is ``key``.

        Each matching request consumes one reply; once the script is used up
        the endpoint's normal behaviour applies. Scripting a key again replaces
        its queue.

        Args:
            key: Value of the ``X-Sim-Key`` header.
            replies: Replies, in order.
            repeat: Repeat the last reply forever instead of using it up.
        """
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        script = _Script(_check_replies(replies), repeat)
        with self._lock:
            self._scripts[key] = script

    def script_route(
        self,
        method: str,
        path: str,
        replies: Iterable[Reply],
        *,
        repeat: bool = False,
    ) -> None:
        """Script the replies to requests without ``X-Sim-Key`` to a method and path.

        Args:
            method: Request method (any case).
            path: Exact path without query string (``/gameye/session``).
            replies: Replies, in order.
            repeat: Repeat the last reply forever instead of using it up.
        """
        if not isinstance(path, str) or not path.startswith("/") or "?" in path:
            raise ValueError(f"path must start with '/' and hold no query string: {path!r}")
        script = _Script(_check_replies(replies), repeat)
        with self._lock:
            self._routes[(method.upper(), path)] = script

    def fail_all(self, reply: Reply | None) -> None:
        """Answer every request with ``reply`` (an outage); ``None`` ends it.

        The reply is never used up. A :meth:`Reply.when` reply only hits its
        region.

        Args:
            reply: The reply, or ``None``.
        """
        if reply is not None and not isinstance(reply, Reply):
            raise TypeError(f"reply must be a Reply or None, not {type(reply).__name__}")
        self._fail_all = reply

    def serve_faults(self, mix: FaultMix | None, *, seed: int | None = None) -> None:
        """Answer a random share of requests with faults; ``None`` ends it.

        Applies to requests to vendor routes that :meth:`fail_all` and the
        scripts leave alone (after them, before the normal behaviour; the rate
        limit still comes first). Each such request draws its fault from one
        ``random.Random(seed)`` under the simulator's lock, so requests sent
        one after another meet the same faults in the same order for the
        same seed (concurrent requests draw in the order they arrive). See
        :class:`FaultMix` for the bands.

        Args:
            mix: The shares of each fault, or ``None``.
            seed: Seed of the draws; ``None`` seeds from the system. Serving a
                mix again starts a new sequence.

        Raises:
            TypeError: ``mix`` is not a :class:`FaultMix` or ``None``, or
                ``seed`` is not an int or ``None``.
        """
        if mix is not None and not isinstance(mix, FaultMix):
            raise TypeError(f"mix must be a FaultMix or None, not {type(mix).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, not {type(seed).__name__}")
        with self._lock:
            self._faults = mix
            self._random = random.Random(seed)

    @property
    def faults(self) -> FaultMix | None:
        """The mix served by :meth:`serve_faults`, or ``None``."""
        return self._faults

    def count_fault(self, fault: Fault | None = None) -> int:
        """Count the requests a :meth:`serve_faults` mix drew a fault for.

        Counted since the start or the last :meth:`reset`, whether or not
        requests are recorded; ``"normal"`` counts requests the mix left alone.

        Args:
            fault: The fault; ``None`` counts every draw.

        Returns:
            The number of requests.
        """
        with self._lock:
            if fault is None:
                return sum(self._fault_counts.values())
            return self._fault_counts[fault]

    def enforce_rate_limit(
        self,
        limit: int | None,
        per: float = 60.0,
        *,
        key_header: str = "Authorization",
        window: Window = "sliding",
    ) -> None:
        """Admit at most ``limit`` requests per ``per`` seconds for each API key.

        Requests are counted per value of the ``key_header`` header, across
        every connection and client (8bitedge counts per API key, whatever
        worker sends); requests without that header share one count. A request
        over the limit is answered at once with a 429 in the envelope of the
        vendor whose route it hit (8bitedge: ``rate_limit_exceeded`` with
        ``details`` ``{"window": "minute", "limit": limit}``, the window named
        ``"second"``, ``"minute"``, ``"hour"``, ``"day"`` or in seconds such as
        ``"0.5s"``) and a ``Retry-After`` giving the seconds until the window
        frees a slot for its key, fractional, rounded up to the millisecond.

        The limit is checked before :meth:`fail_all` and the scripts: a refused
        request consumes no scripted reply and has no side effect. Only
        admitted requests count toward the limit. Counting happens under the
        simulator's lock. Setting a limit again starts from empty counts;
        :meth:`reset` ends it.

        Args:
            limit: Requests admitted per window and key; ``None`` ends the
                limit.
            per: Window length in seconds (``60``: per minute; a smaller value
                scales time down for tests and benchmarks).
            key_header: Header whose value is the key (any case).
            window: ``"sliding"``: no span of ``per`` seconds holds more than
                ``limit`` admitted requests, and a refused request waits until
                the oldest of them leaves the window. ``"fixed"``: windows of
                ``per`` seconds counted from this call, shared by every key;
                a refused request waits until the current window ends.

        Raises:
            TypeError: An argument has the wrong type.
            ValueError: ``limit < 1``, ``per`` not a finite number above 0, an
                invalid ``key_header`` or an unknown ``window``.
        """
        if limit is None:
            throttle = None
        else:
            throttle = Throttle(limit, per, key_header, window, time.monotonic())
        with self._lock:
            self._throttle = throttle

    @property
    def rate_limit(self) -> tuple[int, float, str, Window] | None:
        """The limit in force as ``(limit, per, key_header, window)``, or ``None``.

        ``key_header`` is given in lower case.
        """
        throttle = self._throttle
        if throttle is None:
            return None
        return throttle.limit, throttle.per, throttle.header, throttle.window

    def count_status(self, status: int | None = None) -> int:
        """Count the answers sent with a status since the start or the last :meth:`reset`.

        Counted whether or not requests are recorded (``record=False``), so
        long load runs can read how many 429s they were sent. A connection
        closed without an answer (:meth:`Reply.drop`) is not counted.

        Args:
            status: HTTP status; ``None`` counts every answer.

        Returns:
            The number of answers.
        """
        with self._lock:
            if status is None:
                return sum(self._statuses.values())
            return self._statuses[status]

    @property
    def received(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def count(
        self,
        key: str | None = None,
        path: str | None = None,
        method: str | None = None,
    ) -> int:
        """Count received requests; the filters are ANDed, ``None`` matches any.

        Args:
            key: ``X-Sim-Key`` value.
            path: Exact path without query string.
            method: Request method (any case).

        Returns:
            The number of matching requests.
        """
        wanted_method = method.upper() if method is not None else None
        with self._lock:
            return sum(
                1
                for seen in self._received
                if (key is None or seen.key == key)
                and (path is None or seen.path == path)
                and (wanted_method is None or seen.method == wanted_method)
            )

    def reset(self) -> None:
        """Clear scripts, :meth:`fail_all`, the rate limit, the fault mix, counts and vendor state.

        :attr:`received`, :meth:`count_status` and :meth:`count_fault` start
        again from zero, and :meth:`enforce_rate_limit` and
        :meth:`serve_faults` are ended.
        """
        with self._lock:
            self._scripts.clear()
            self._routes.clear()
            self._fail_all = None
            self._throttle = None
            self._faults = None
            self._received.clear()
            self._statuses.clear()
            self._fault_counts.clear()
        for vendor in self._vendors.values():
            vendor.reset()

    def _dispatch(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        began = time.monotonic()
        req = Request(method, path, query, headers, body)
        if self._record:
            seen = RecordedRequest(method, path, query, headers, body, req.key, began)
            with self._lock:
                self._received.append(seen)
        source: Source = "rate_limit"
        fault: Fault | None = None
        response = self._throttled(req) if self._throttle is not None else None
        if response is None:
            source = "fail_all"
            reply = self._fail_all
            if reply is None and (self._scripts or self._routes):
                source = "script"
                reply = self._take(req)
            if reply is None:
                source = "mix"
                fault = "normal"
                if self._faults is not None and req.vendor is not None:
                    fault, reply = self._draw(req)
            response = self._normal(req) if reply is None else self._render(reply, req)
        if not response.drop:
            if req.vendor == "8bitedge" and not response.has_header("x-request-id"):
                response.headers.append(("X-Request-Id", str(uuid.uuid4())))
            with self._lock:
                self._statuses[response.status] += 1
        on_served = self._on_served
        if on_served is not None:
            served = Served(
                method,
                path,
                None if response.drop else response.status,
                source,
                fault,
                time.time(),
                time.monotonic() - began,
            )
            with contextlib.suppress(Exception):
                on_served(served)
        return response

    def _draw(self, req: Request) -> tuple[Fault, Reply | None]:
        """Draw the fault of ``req`` from the mix served.

        Args:
            req: A request to a vendor route.

        Returns:
            The fault and the reply carrying it out (``None``: normal).
        """
        mix = self._faults
        # Only Gameye's 420 depends on the region: parse no other body, and
        # parse outside the lock.
        region = (
            req.region() if mix is not None and mix.capacity and req.vendor == "gameye" else None
        )
        with self._lock:
            mix = self._faults
            if mix is None:
                return "normal", None
            fault = mix.pick(self._random.random(), req.vendor, region)
            # A second draw for a tail answer's wait only, so that the
            # sequence of other mixes stays what their seeds gave before.
            wait = self._random.random() if fault == "tail" else 0.0
            self._fault_counts[fault] += 1
        return fault, mix.reply(fault, wait)

    def _throttled(self, req: Request) -> Response | None:
        """Count ``req`` against the rate limit; a 429 when it is over.

        Args:
            req: The request.

        Returns:
            The 429, or ``None`` when the request is admitted (or no limit is set).
        """
        with self._lock:
            throttle = self._throttle
            if throttle is None:
                return None
            wait = throttle.admit(throttle.key_of(req.headers), time.monotonic())
        if wait is None:
            return None
        vendor = self._vendors[req.vendor]
        message = None
        details = None
        if vendor.rate_limit_details is not None:
            # 8bitedge names the window it counts and its limit.
            details = {"window": throttle.label, "limit": throttle.limit}
            message = f"Rate limit exceeded for the {throttle.label} window."
        response = vendor.error(req, 429, message=message, details=details)
        response.headers.append(("Retry-After", format_retry_after(wait)))
        return response

    def _take(self, req: Request) -> Reply | None:
        with self._lock:
            if req.key is not None:
                script = self._scripts.get(req.key)
            else:
                script = self._routes.get((req.method, req.path))
            return None if script is None else script.take(req)

    def _normal(self, req: Request) -> Response:
        return self._vendors[req.vendor].handle(req)

    def _render(self, reply: Reply, req: Request) -> Response:
        kind = reply.kind
        status = reply.status or 200
        vendor = self._vendors[req.vendor]
        if kind == "error":
            details = reply.details
            if details is None and status == 429:
                details = vendor.rate_limit_details
            response = vendor.error(req, status, reply.code, reply.message, details)
        elif kind == "ok":
            if reply.body is not None:
                response = json_response(status, reply.body)
            else:
                response = self._normal(req)
                if 200 <= response.status < 300:
                    if reply.status is not None:
                        response.status = reply.status
                else:
                    response = json_response(status, vendor.success_body())
        elif kind == "when":
            if reply.then is not None and req.region() == reply.region:
                return self._render(reply.then, req)
            return self._normal(req)
        elif kind == "slow":
            self._stopping.wait(reply.seconds)
            return self._normal(req) if reply.then is None else self._render(reply.then, req)
        elif kind == "drop":
            return Response(0, drop=True)
        elif kind == "drop_after_processing":
            self._normal(req)
            return Response(0, drop=True)
        elif kind == "business":
            response = json_response(status, business_body(req, reply.reason, reply.result))
        elif kind == "huge":
            response = Response(status, content_type="text/plain; charset=utf-8", stream=reply.size)
        elif kind == "raw":
            response = Response(status, reply.raw_body)
        else:
            raise ValueError(f"unknown reply kind {kind!r}")
        if reply.retry_after is not None:
            response.headers.append(("Retry-After", reply.retry_after))
        for name, value in reply.headers:
            lower = name.lower()
            if lower == "content-type":
                response.content_type = value
            elif lower == "content-length":
                response.content_length = value
            else:
                response.headers.append((name, value))
        return response
