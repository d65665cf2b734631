"""The one protocol every strategy follows, and the pipeline that runs them.

In the spirit of Polly v8's resilience pipeline: a strategy is a small object
with up to three duties, each optional:

* :meth:`Strategy.before_attempt` - a gate before every attempt: go now, wait
  ``s`` seconds first, or refuse (:class:`Refusal`: nothing is sent);
* :meth:`Strategy.record` - hear the :class:`Outcome` of every attempt;
* :meth:`Strategy.allows_retry` - permission for one more attempt (a retry,
  or a hedged copy of a late attempt);
* :meth:`Strategy.hedge_delay` - whether, and how long after it was sent, a
  late attempt may be hedged with a copy.

The retry flow never asks "is there a breaker?": it asks the
:class:`Pipeline`, which calls only the strategies that override a duty
(:class:`BaseStrategy` gives no-op defaults), in the order they were given.
A strategy keeps its state in a :class:`~resilience.stores.Store`, so one
algorithm serves one process (``MemoryStore``) and a fleet (``RedisStore``).

Adding a strategy is one class (the configuration, with a ``build`` method)
and one keyword of :class:`~resilience.Policy`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from resilience.core.classification import Classification
from resilience.errors import ResilienceError

if TYPE_CHECKING:
    from resilience.stores.base import Store

__all__ = [
    "BaseStrategy",
    "CallInfo",
    "Outcome",
    "Pipeline",
    "Refusal",
    "Strategy",
    "StrategyConfig",
]


class Outcome(enum.Enum):
    """What one attempt says about the server, as the strategies need to know it."""

    SUCCESS = "success"
    """An answer that ends the call: 2xx/3xx, or a final 4xx."""
    FAILURE = "failure"
    """The server failed: a ``TRANSIENT`` answer (5xx) or a network error that may heal."""
    THROTTLED = "throttled"
    """A ``RATE_LIMITED`` answer (429)."""
    DEFERRED = "deferred"
    """Another answer worth retrying that is no fault of the server (409 pending, 420)."""
    LATE = "late"
    """No answer yet, and a hedged copy is sent: it spends what a retry spends."""


class CallInfo(Protocol):
    """What a strategy may read about the call it serves (all read lazily)."""

    @property
    def host(self) -> str | None:
        """The request's host name, without port."""

    @property
    def region(self) -> str | None:
        """The region of the current attempt, when regions are in use."""

    @property
    def vendor(self) -> str:
        """The vendor fixed for the host (``vendor=``/``vendor_hosts``), else ``"generic"``."""

    @property
    def headers(self) -> Mapping[str, str] | None:
        """The headers of the last answer; ``None`` after a network error."""

    @property
    def retry_after(self) -> float | None:
        """Seconds from the last answer's ``Retry-After``, when classified."""

    @property
    def repeatable(self) -> bool:
        """Whether the request may be sent twice: a safe method (GET, HEAD, PUT,
        DELETE, OPTIONS) or an idempotency key (header, or the vendor's word),
        and a body that can be replayed."""

    @property
    def sent(self) -> float | None:
        """Monotonic time at which the attempt now answered was sent."""

    @property
    def notes(self) -> dict[object, object]:
        """What strategies remember between their duties within this call (each
        under a key of its own, e.g. itself), as Polly's resilience context."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A gate's refusal: the attempt is not sent.

    Attributes:
        classification: what the caller is told (status ``0``: nothing was sent).
        error: the error class a call refused on its first attempt raises (a
            :class:`~resilience.ResilienceError` subclass that the shell also
            makes the library's own connection error).
        reason: why, as the attempt history and the log say it.
    """

    classification: Classification
    error: type[ResilienceError]
    reason: str


class Strategy(Protocol):
    """One strategy of the pipeline; see the module docstring."""

    def before_attempt(self, call: CallInfo, now: float, max_wait: float) -> float | Refusal:
        """Seconds to wait before the attempt is sent (``0.0``: now), or a refusal.

        Args:
            call: the call.
            now: monotonic seconds.
            max_wait: the longest wait the call can afford (deadline,
                ``retry_after_max``); a longer one must be a refusal.
        """

    def record(self, call: CallInfo, outcome: Outcome, now: float) -> None:
        """Hear the outcome of an attempt."""

    def allows_retry(self, call: CallInfo, now: float) -> bool:
        """Whether one more attempt may be sent."""

    def hedge_delay(self, call: CallInfo, copies: int) -> float | None:
        """Seconds after the latest of ``copies`` copies of the current attempt
        at which another may be sent if no answer has come; ``None``: none."""


class BaseStrategy:
    """No-op duties: a strategy overrides only those it has.

    Attributes:
        refusal: what the history says when :meth:`allows_retry` says no.
    """

    __slots__ = ()

    refusal = "refused by a strategy"

    def before_attempt(self, call: CallInfo, now: float, max_wait: float) -> float | Refusal:
        """Go now."""
        return 0.0

    def record(self, call: CallInfo, outcome: Outcome, now: float) -> None:
        """Nothing to record."""

    def allows_retry(self, call: CallInfo, now: float) -> bool:
        """Always."""
        return True

    def hedge_delay(self, call: CallInfo, copies: int) -> float | None:
        """Never hedge."""
        return None


class StrategyConfig(Protocol):
    """A strategy's configuration (a policy keyword's value)."""

    def build(self, store: Store, wall: Callable[[], float]) -> Strategy:
        """The strategy, keeping its state in ``store``; ``wall`` is the wall clock."""


def _overrides(strategy: object, duty: str) -> bool:
    return getattr(type(strategy), duty, None) is not getattr(BaseStrategy, duty)


class Pipeline:
    """The strategies of one transport, in order, each called only for its duties."""

    __slots__ = (
        "_gates",
        "_hedgers",
        "_permits",
        "_recorders",
        "before_attempt",
        "gates",
        "hedges",
        "record",
        "strategies",
    )

    #: Tell every strategy that records (the one there is itself, when one: no
    #: loop on the success path of the defaults).
    record: Callable[[CallInfo, Outcome, float], None]
    #: Ask every gate in order; the first refusal wins, else the longest wait
    #: (the one gate there is itself, when one).
    before_attempt: Callable[[CallInfo, float, float], float | Refusal]

    def __init__(self, strategies: Sequence[Strategy]) -> None:
        self.strategies = tuple(strategies)
        self._gates = tuple(s for s in self.strategies if _overrides(s, "before_attempt"))
        self._recorders = tuple(s for s in self.strategies if _overrides(s, "record"))
        self._permits = tuple(s for s in self.strategies if _overrides(s, "allows_retry"))
        self._hedgers = tuple(s for s in self.strategies if _overrides(s, "hedge_delay"))
        #: Whether any strategy gates attempts.
        self.gates = bool(self._gates)
        #: Whether any strategy hedges late attempts.
        self.hedges = bool(self._hedgers)
        if len(self._recorders) == 1:
            self.record = self._recorders[0].record
        else:
            self.record = self._record_each
        if len(self._gates) == 1:
            self.before_attempt = self._gates[0].before_attempt
        else:
            self.before_attempt = self._ask_each

    def _ask_each(self, call: CallInfo, now: float, max_wait: float) -> float | Refusal:
        wait = 0.0
        for strategy in self._gates:
            answer = strategy.before_attempt(call, now, max_wait)
            if not answer:
                continue  # 0.0, go now: the common answer (a Refusal is true)
            if isinstance(answer, Refusal):
                return answer
            if answer > wait:
                wait = answer
        return wait

    def _record_each(self, call: CallInfo, outcome: Outcome, now: float) -> None:
        for strategy in self._recorders:
            strategy.record(call, outcome, now)

    def refuses_retry(self, call: CallInfo, now: float) -> str | None:
        """``None`` when every strategy allows a retry, else the first refusal's reason."""
        for strategy in self._permits:
            if not strategy.allows_retry(call, now):
                return getattr(strategy, "refusal", "refused by a strategy")
        return None

    def hedge_delay(self, call: CallInfo, copies: int) -> float | None:
        """The shortest delay any strategy gives for another copy, or ``None``."""
        delays = [d for d in (s.hedge_delay(call, copies) for s in self._hedgers) if d is not None]
        return min(delays) if delays else None

    def permits_hedge(self, call: CallInfo, now: float) -> bool:
        """Whether a hedged copy may be sent now: every permit allows it (as a
        retry), and every gate lets it go without waiting. If so, the copy is
        recorded as :attr:`Outcome.LATE` (the retry budget spends a token)."""
        if self.refuses_retry(call, now) is not None:
            return False
        for strategy in self._gates:
            if strategy.before_attempt(call, now, 0.0) != 0.0:
                return False
        self.record(call, Outcome.LATE, now)
        return True
