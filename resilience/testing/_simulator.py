"""The embedded vendor simulator: scripted faults over a real loopback HTTP server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

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
    (:meth:`script_route`), then the endpoint's normal behaviour. A rate limit
    (:meth:`enforce_rate_limit`) sits in front of all of them, as a vendor's
    gateway does.

    Example:
        >>> with VendorSimulator() as sim:  # doctest: +SKIP
        ...     sim.script("k1", [Reply.error(503)])
        ...     url = sim.base("gameye") + "/session"
    """

    def __init__(self, *, record: bool = True) -> None:
        """Create a stopped simulator.

        Args:
            record: Keep every request in :attr:`received`; turn it off for
                long load runs.
        """
        self._record = record
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._received: list[RecordedRequest] = []
        self._scripts: dict[str, _Script] = {}
        self._routes: dict[tuple[str, str], _Script] = {}
        self._fail_all: Reply | None = None
        self._throttle: Throttle | None = None
        self._statuses: Counter[int] = Counter()
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
        """Start the server on an ephemeral port (nothing happens if it runs).

        A simulator stopped and started again gets a new port and keeps its
        scripts and state.

        Returns:
            The simulator.
        """
        with self._lifecycle:
            if self._server is None:
                self._stopping = threading.Event()
                server = SimulatorServer(self._dispatch)
                server.start()
                self._server = server
                self._url = f"http://{HOST}:{server.port}"
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
        """``http://127.0.0.1:PORT``, without a trailing slash.

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
        """Clear scripts, :meth:`fail_all`, the rate limit, every count and all vendor state.

        :attr:`received` and :meth:`count_status` start again from zero, and
        :meth:`enforce_rate_limit` is ended.
        """
        with self._lock:
            self._scripts.clear()
            self._routes.clear()
            self._fail_all = None
            self._throttle = None
            self._received.clear()
            self._statuses.clear()
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
        req = Request(method, path, query, headers, body)
        if self._record:
            seen = RecordedRequest(method, path, query, headers, body, req.key, time.monotonic())
            with self._lock:
                self._received.append(seen)
        response = self._throttled(req) if self._throttle is not None else None
        if response is None:
            reply = self._fail_all
            if reply is None and (self._scripts or self._routes):
                reply = self._take(req)
            response = self._normal(req) if reply is None else self._render(reply, req)
        if response.drop:
            return response
        if req.vendor == "8bitedge" and not response.has_header("x-request-id"):
            response.headers.append(("X-Request-Id", str(uuid.uuid4())))
        with self._lock:
            self._statuses[response.status] += 1
        return response

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
