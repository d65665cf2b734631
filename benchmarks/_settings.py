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
#: The fleet's server-side limit: 8bitedge's 120 requests per minute per API key.
FLEET_LIMIT = 120
#: Share of late answers in the hedging scenario: few enough that the 95th
#: percentile of latency stays among the answers that come at once.
TAIL_SHARE = 0.02
#: The hedge the hedging scenario measures: resilience.Hedge(delay=HEDGE_DELAY).
HEDGE_DELAY = "p95"


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
        fleet_workers: worker processes of the fleet scenario (one API key).
        fleet_calls: calls per worker process in the fleet scenario.
        fleet_limit: requests the simulator admits per key and window.
        fleet_scale: seconds standing for the vendor's minute (``1.0``: 120/min
            is enforced as 120/s).
        hedge_calls: calls per contender in the hedging scenario, all rounds together.
        hedge_rounds: rounds of the hedging scenario (contenders take turns).
        hedge_rate: calls per second every sync contender is offered in the
            hedging scenario (an open loop: late answers overlap instead of adding up).
        hedge_async_rate: the same for async httpx, lower: one event loop
            sends every call, and it must never fall behind.
        hedge_tail_seconds: least wait of the late answers (``FaultMix.tail_seconds``).
        store_calls: calls per contender and round, store scenario (in-process).
        store_rounds: rounds of the store scenario's success path.
        store_concurrency: concurrent GETs of the store scenario's async rows.
        store_async_rounds: rounds of the async rows.
        import_runs: fresh interpreters timed for the import row.
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
    fleet_workers: int
    fleet_calls: int
    fleet_limit: int
    fleet_scale: float
    hedge_calls: int = 2_000
    hedge_rounds: int = 10
    hedge_rate: float = 400.0
    hedge_async_rate: float = 150.0
    hedge_tail_seconds: float = 0.2
    store_calls: int = 2_000
    store_rounds: int = 9
    store_concurrency: int = 1_000
    store_async_rounds: int = 9
    import_runs: int = 15
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
            hedge_rounds=rounds,
            store_rounds=rounds,
            store_async_rounds=rounds,
        )


FULL = Settings(
    name="full",
    inproc_calls=2_000,
    inproc_rounds=9,
    loopback_calls=300,
    loopback_rounds=21,
    fault_per_kind=6,
    fault_rounds=5,
    outage_windows=(("1 call/s, 60 s", 60), ("100 calls/s, 5 s", 500)),
    outage_defaults=True,
    scale_concurrency=1_000,
    scale_rounds=9,
    fleet_workers=4,
    fleet_calls=500,
    fleet_limit=FLEET_LIMIT,
    fleet_scale=1.0,
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
    fleet_workers=4,
    fleet_calls=100,
    fleet_limit=FLEET_LIMIT,
    fleet_scale=1.0,
    hedge_calls=400,
    hedge_rounds=4,
    store_calls=500,
    store_rounds=5,
    store_async_rounds=3,
    import_runs=7,
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
    # The smoke test: a limit small enough for 40 calls to meet it, in 0.1 s windows.
    fleet_workers=2,
    fleet_calls=20,
    fleet_limit=10,
    fleet_scale=0.1,
    # The smoke test: one late answer or so per contender, waiting milliseconds.
    hedge_calls=40,
    hedge_rounds=2,
    hedge_tail_seconds=0.02,
    store_calls=40,
    store_rounds=2,
    store_concurrency=50,
    store_async_rounds=1,
    import_runs=3,
    profile_calls=500,
)

SIZES = {s.name: s for s in (FULL, QUICK, TINY)}
