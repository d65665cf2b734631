"""Run sizes and the retry settings every contender shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

#: Attempts in total, the first included, for every contender.
ATTEMPTS = 4
#: Initial backoff (seconds) of every contender; ``conflict_delay`` of resilience too.
BACKOFF = 0.01
#: Growth of the backoff per retry.
MULTIPLIER = 2.0
#: Cap on one backoff delay.
BACKOFF_MAX = 1.0
#: The ``Retry-After`` the simulator sends in the fault mix (fractional on purpose).
RETRY_AFTER = 0.05
#: Statuses the peers retry: 409, 420, 429 and every 5xx.
FORCELIST = frozenset({409, 420, 429, *range(500, 600)})
#: Methods the peers retry (urllib3's defaults plus POST and PATCH).
RETRY_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "POST", "PATCH"})
#: Gameye regions, in failover order.
REGIONS = ("eu-west", "us-east")


@dataclass(frozen=True)
class Settings:
    """How big a run is.

    Attributes:
        name: ``"full"``, ``"quick"`` or ``"tiny"`` (the smoke test).
        inproc_calls: calls per contender and round, in-process success path.
        inproc_rounds: rounds of the in-process success path.
        loopback_calls: calls per contender and round over loopback.
        loopback_rounds: rounds over loopback.
        fault_per_kind: calls of each fault kind per contender and round.
        fault_rounds: rounds of the fault mix.
        outage_windows: ``(label, calls)`` windows of the outage scenario.
        outage_defaults: also run ResilientTransport with every default (0.5 s backoff).
        scale_concurrency: concurrent GETs of the async scale scenario.
        scale_rounds: rounds of the async scale scenario.
        profile_calls: calls profiled by ``--profile``.
    """

    name: str
    inproc_calls: int
    inproc_rounds: int
    loopback_calls: int
    loopback_rounds: int
    fault_per_kind: int
    fault_rounds: int
    outage_windows: tuple[tuple[str, int], ...]
    outage_defaults: bool
    scale_concurrency: int
    scale_rounds: int
    profile_calls: int = 20_000

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-friendly values."""
        return asdict(self)

    def with_rounds(self, rounds: int) -> Settings:
        """A copy with every timed scenario run ``rounds`` times."""
        return replace(
            self,
            inproc_rounds=rounds,
            loopback_rounds=rounds,
            fault_rounds=rounds,
            scale_rounds=rounds,
        )


FULL = Settings(
    name="full",
    inproc_calls=2_000,
    inproc_rounds=9,
    loopback_calls=200,
    loopback_rounds=15,
    fault_per_kind=6,
    fault_rounds=5,
    outage_windows=(("1 call/s, 60 s", 60), ("100 calls/s, 5 s", 500)),
    outage_defaults=True,
    scale_concurrency=1_000,
    scale_rounds=9,
)

QUICK = Settings(
    name="quick",
    inproc_calls=500,
    inproc_rounds=5,
    loopback_calls=100,
    loopback_rounds=7,
    fault_per_kind=2,
    fault_rounds=2,
    outage_windows=(("1 call/s, 30 s", 30), ("100 calls/s, 1 s", 100)),
    outage_defaults=False,
    scale_concurrency=500,
    scale_rounds=3,
)

TINY = Settings(
    name="tiny",
    inproc_calls=40,
    inproc_rounds=2,
    loopback_calls=10,
    loopback_rounds=2,
    fault_per_kind=1,
    fault_rounds=1,
    outage_windows=(("1 call/s, 10 s", 10), ("100 calls/s, 0.3 s", 30)),
    outage_defaults=False,
    scale_concurrency=50,
    scale_rounds=1,
    profile_calls=500,
)

SIZES = {s.name: s for s in (FULL, QUICK, TINY)}
