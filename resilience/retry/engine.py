"""The one decision flow, with no I/O: an attempt's outcome in, a decision out.

A :class:`CallState` lives for one logical call. The shells (requests adapter,
httpx transports) report each attempt with :meth:`CallState.on_response` or
:meth:`CallState.on_error` and get back a :class:`Decision`: return the answer,
retry after ``delay`` seconds (in the same or another region), or give up and
hand back the last answer. Time comes in as an argument; nothing here sleeps,
reads a clock or touches a socket.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from resilience.core.backoff import Uniform, jittered, nominal
from resilience.core.classification import Category, Classification
from resilience.core.records import (
    UNSAFE_METHODS,
    Action,
    Attempt,
    Decision,
    ErrorKind,
    RetryEvent,
)
from resilience.detectors.rules import GENERIC_RULES, VendorRules
from resilience.retry.policy import Policy

if TYPE_CHECKING:
    from resilience.retry.rounds import Round

__all__ = [
    "Action",
    "Attempt",
    "CallState",
    "Decision",
    "ErrorKind",
    "RetryEvent",
    "UNSAFE_METHODS",
]


class CallState:
    """The state of one logical call; created per call, never shared.

    Args:
        policy: the policy in force.
        method: the request method.
        url: the request URL with credentials removed (for events).
        started: the monotonic time at which the call started.
        region: the region of the first attempt (``None``: not known, or
            regions not in use; see :meth:`locate`).
        replayable: whether the body can be sent again.
        idempotent: ``(rules) -> bool``, whether a POST/PATCH carries an
            idempotency key, by its headers or by the rules of the vendor
            (asked only when it matters).
        uniform: random source, :func:`random.uniform` by default.
    """

    __slots__ = (
        "_after",
        "_capacity_here",
        "_idempotent",
        "_pending_delay",
        "_previous_backoff",
        "_reason",
        "_tried",
        "_unknown_before",
        "_waited",
        "attempts",
        "failover",
        "last",
        "method",
        "policy",
        "region",
        "replayable",
        "started",
        "uniform",
        "url",
    )

    def __init__(
        self,
        policy: Policy,
        *,
        method: str,
        url: str,
        started: float,
        region: str | None = None,
        replayable: bool = True,
        idempotent: Callable[[VendorRules], bool] | None = None,
        uniform: Uniform = random.uniform,
    ) -> None:
        self.policy = policy
        self.method = method.upper()
        self.url = url
        self.started = started
        self.region = region
        self.replayable = replayable
        self.uniform = uniform
        self.attempts: list[Attempt] = []
        #: Whether a request can be moved to another region (a locator is known).
        self.failover = True
        self._idempotent = idempotent
        self._pending_delay = 0.0
        self._waited = 0.0
        self._previous_backoff: float | None = None
        self._capacity_here = 0
        self._tried = {region} if region is not None else set()
        self._unknown_before = False
        self._reason = "first"
        self._after: list[Attempt] = []
        #: The record of the attempt decided last (hedged copies may follow it).
        self.last: Attempt | None = None

    # -- reporting outcomes ---------------------------------------------------

    def on_response(
        self, classification: Classification, now: float, rules: VendorRules = GENERIC_RULES
    ) -> Decision:
        """Decide what follows an answer classified as ``classification``.

        Args:
            classification: the verdict on the answer.
            now: monotonic seconds.
            rules: the rules of the vendor that answered (its capacity wait,
                how a conflict after an unknown outcome resolves, what it
                counts as safe to repeat).
        """
        c = classification
        resolved = rules.conflict_after_unknown
        if (
            resolved is not None
            and c.category is Category.CONFLICT
            and self._unknown_before
            and self.method in UNSAFE_METHODS
        ):
            # The earlier attempt's answer was lost but it did the work (Gameye:
            # created the session): "already exists" now means "done".
            c = replace(c, category=resolved, retryable=False)
            return self._finish(c, None, Action.RETURN, "already done by an earlier attempt")
        if not c.retryable:
            return self._finish(c, None, Action.RETURN, "return")
        may_have_run = c.category is Category.TRANSIENT and c.status != 503
        if may_have_run:
            if not self._may_repeat(rules):
                return self._finish(c, None, Action.GIVE_UP, self._not_repeated)
            self._unknown_before = True
        return self._retry(c, None, now, rules)

    def on_error(
        self, kind: ErrorKind, error: str, now: float, rules: VendorRules = GENERIC_RULES
    ) -> Decision:
        """Decide what follows a network error of class ``error``."""
        if kind is ErrorKind.FATAL:
            return self._finish(None, error, Action.GIVE_UP, "not retryable")
        if kind is ErrorKind.UNKNOWN:
            if not self._may_repeat(rules):
                return self._finish(None, error, Action.GIVE_UP, self._not_repeated)
            self._unknown_before = True
        return self._retry(None, error, now, rules)

    def abandon(self, reason: str) -> None:
        """The last retry will not be sent after all (a strategy refused it)."""
        last = self.last
        if last is not None:
            self.last = replace(last, outcome=reason)
            self.attempts[self.attempts.index(last)] = self.last

    def settle(self, race: Round) -> list[Attempt]:
        """Record the copies of a raced attempt that did not win, before the
        winner is reported; return their records.

        Numbers follow the order the copies were sent: the copies sent before
        the winner are recorded now, those sent after it right after it.
        """
        base = len(self.attempts) + 1
        losers = [
            copy.attempt(
                base + copy.index,
                self._pending_delay if copy.index == 0 else copy.delay,
                self.region,
                self._reason if copy.index == 0 else "hedge",
            )
            for copy in race.copies
            if copy.index != race.winner
        ]
        self.attempts.extend(a for a in losers if a.number < base + race.winner)
        self._after = [a for a in losers if a.number > base + race.winner]
        if race.winner != 0:
            self._reason = "hedge"
            self._pending_delay = race.copies[race.winner].delay
        return losers

    def add_wait(self, seconds: float) -> None:
        """Count a wait the shell made before the next attempt (local pacing)."""
        self._waited += seconds
        self._pending_delay += seconds

    def locate(self, region: str | None) -> None:
        """The region of the current attempt, once read (regions are read lazily)."""
        if region is not None and self.region is None:
            self.region = region
            self._tried.add(region)

    # -- internals ------------------------------------------------------------

    @property
    def _not_repeated(self) -> str:
        return f"{self.method} may have been processed; not repeated without an idempotency key"

    def _may_repeat(self, rules: VendorRules) -> bool:
        if self.method not in UNSAFE_METHODS or self.policy.retry_non_idempotent:
            return True
        return self._idempotent is not None and self._idempotent(rules)

    def _finish(
        self, c: Classification | None, error: str | None, action: Action, reason: str
    ) -> Decision:
        self._record(c, error, reason)
        return Decision(action, reason=reason, classification=c, region=self.region)

    def _record(self, c: Classification | None, error: str | None, outcome: str) -> None:
        self.last = attempt = Attempt(
            number=len(self.attempts) + 1,
            status=c.status if c is not None else None,
            error=error,
            delay=self._pending_delay,
            region=self.region,
            classification=c,
            outcome=outcome,
            reason=self._reason,
        )
        self.attempts.append(attempt)
        if self._after:  # hedged copies sent after this one, which won
            self.attempts.extend(self._after)
            self._after = []

    def _backoff(self) -> float:
        p = self.policy
        cap = nominal(p.steps, len(self.attempts), p.backoff_multiplier, p.backoff_max)
        delay = jittered(
            p.jitter,
            cap,
            initial=p.backoff_initial,
            maximum=p.backoff_max,
            previous=self._previous_backoff,
            uniform=self.uniform,
        )
        self._previous_backoff = delay
        return delay

    def _retry(
        self, c: Classification | None, error: str | None, now: float, rules: VendorRules
    ) -> Decision:
        p = self.policy
        number = len(self.attempts) + 1
        if number + len(self._after) >= p.max_attempts:  # hedged copies count too
            return self._finish(c, error, Action.GIVE_UP, "max_attempts reached")
        if not self.replayable:
            return self._finish(c, error, Action.GIVE_UP, "request body cannot be replayed")
        retry_after = c.retry_after if (c is not None and p.respect_retry_after) else None
        too_long = retry_after is not None and retry_after > p.retry_after_max
        next_region = self.region
        reason = "retry"
        category = c.category if c is not None else Category.TRANSIENT
        if category is Category.CAPACITY:
            if self._capacity_here < p.capacity_retries and not too_long:
                if retry_after is not None:
                    delay = retry_after
                elif rules.capacity_wait is not None:
                    delay = self.uniform(*rules.capacity_wait)  # the vendor's documented wait
                else:
                    delay = self._backoff()
            else:
                # Another region does not wait, whatever this one asked.
                if not self.failover:
                    why = "no region locator for this vendor: cannot fail over"
                    return self._finish(c, error, Action.GIVE_UP, why)
                next_region = self._next_region()
                if next_region is None:
                    why = "no region left to fail over to"
                    return self._finish(c, error, Action.GIVE_UP, why)
                delay, reason = 0.0, "failover"
        elif too_long:
            assert retry_after is not None
            why = f"Retry-After {retry_after:g}s exceeds retry_after_max"
            return self._finish(c, error, Action.GIVE_UP, why)
        elif retry_after is not None:
            delay = retry_after
        elif category is Category.CONFLICT_PENDING:
            delay = max(self._backoff(), p.conflict_delay)
        else:
            delay = self._backoff()
        # Elapsed time counts the waits already asked for too, so that an
        # injected sleep that returns at once still meets the deadline.
        elapsed = max(now - self.started, self._waited)
        if p.deadline is not None and elapsed + delay > p.deadline:
            return self._finish(c, error, Action.GIVE_UP, "deadline would be crossed")
        self._record(c, error, reason)
        event = RetryEvent(
            attempt=number,
            delay=delay,
            classification=c,
            error=error,
            method=self.method,
            url=self.url,
            region=self.region,
            next_region=next_region,
            reason=reason,
        )
        if reason == "failover" and next_region is not None:
            self._capacity_here = 0
            self._tried.add(next_region)
        elif category is Category.CAPACITY:
            self._capacity_here += 1
        self.region = next_region
        self._reason = reason
        self._pending_delay = delay
        self._waited += delay
        return Decision(Action.RETRY, delay, next_region, reason, c, event)

    def _next_region(self) -> str | None:
        for region in self.policy.regions or ():
            if region not in self._tried:
                return region
        return None
