"""The rate limiter: pacing per window, holds, adaptive decrease on 429 and recovery."""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests.structures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilience.stores import MemoryStore, RedisStore
from resilience.strategies.base import Outcome
from resilience.strategies.limit_headers import announces_limits
from resilience.strategies.rate_limit import (
    BETA,
    F_MIN,
    LEASE_MAX,
    LEASE_SECONDS,
    MAX_HOLD,
    QUIET_AFTER,
    QUIET_EVERY,
    LimitHeaders,
    RateLimit,
    RateLimiter,
    read_limit_headers,
)
from tests._redis import running_redis

KEY = "api.8bitedge.example"


def limiter(**config: Any) -> RateLimiter:
    return RateLimit(**config).new_limiter(MemoryStore())


def greedy(lim: RateLimiter, count: int, start: float = 0.0, key: str = KEY) -> list[float]:
    """Send times of a client that sends each request as soon as it is allowed."""
    now, sent = start, []
    for _ in range(count):
        now += lim.acquire(key, now)
        sent.append(now)
    return sent


def most_in_window(times: list[float], seconds: float) -> int:
    """The most send times in any closed window ``[t, t + seconds]``."""
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] < t - seconds - 1e-9:
            first += 1
        best = max(best, last - first + 1)
    return best


# --- configuration ------------------------------------------------------------------------


def test_a_limit_needs_a_window() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RateLimit()
    with pytest.raises(ValueError, match="at least one"):
        RateLimit(burst=5)


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf])
@pytest.mark.parametrize("name", ["per_second", "per_minute", "per_day", "burst", "recovery"])
def test_a_bad_number_is_a_value_error_naming_the_field(name: str, value: float) -> None:
    config: dict[str, Any] = {"per_second": 1.0, name: value}
    with pytest.raises(ValueError, match=f"rate_limit.{name}"):
        RateLimit(**config)


@pytest.mark.parametrize("value", [True, "10"])
def test_a_non_number_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="per_minute"):
        RateLimit(per_minute=value)  # type: ignore[arg-type]


def test_recovery_cannot_be_none() -> None:
    with pytest.raises(TypeError, match="recovery"):
        RateLimit(per_second=10, recovery=None)  # type: ignore[arg-type]


def test_burst_below_one_and_an_empty_key_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        RateLimit(per_second=10, burst=0.5)
    with pytest.raises(ValueError, match="key"):
        RateLimit(per_second=10, key="")


def test_windows_and_plan_rate() -> None:
    limit = RateLimit(per_minute=120, per_day=10_000)
    assert limit.windows == ((120.0, 60.0), (10_000.0, 86_400.0))
    assert limit.plan_rate == pytest.approx(10_000 / 86_400)


def test_the_default_key_is_the_host_unless_one_is_configured() -> None:
    assert limiter(per_second=1).key_for("eu.api.example") == "eu.api.example"
    assert limiter(per_second=1, key="key-7f3a").key_for("eu.api.example") == "key-7f3a"


# --- pacing ---------------------------------------------------------------------------------


def test_requests_are_evenly_spaced_by_default() -> None:
    lim = limiter(per_second=10)
    assert [lim.acquire(KEY, 0.0) for _ in range(4)] == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_burst_goes_back_to_back_then_paces() -> None:
    lim = limiter(per_second=10, burst=3)
    assert [lim.acquire(KEY, 0.0) for _ in range(5)] == pytest.approx([0, 0, 0, 0.1, 0.2])


def test_tokens_come_back_while_idle() -> None:
    lim = limiter(per_second=10, burst=3)
    greedy(lim, 10)
    assert [lim.acquire(KEY, 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("config", "n", "seconds"),
    [
        ({"per_second": 10}, 10, 1.0),
        ({"per_second": 10, "burst": 5}, 10, 1.0),
        ({"per_minute": 120, "burst": 10}, 120, 60.0),
    ],
)
def test_any_window_sees_at_most_n_plus_burst(
    config: dict[str, Any], n: int, seconds: float
) -> None:
    sent = greedy(limiter(**config), 5 * n)
    burst = config.get("burst", 1)
    assert n <= most_in_window(sent, seconds) <= n + burst


def test_per_minute_and_per_day_are_honoured_together() -> None:
    """8bitedge: 120 a minute and 10,000 a day; the day sets the long-run pace."""
    lim = limiter(per_minute=120, per_day=10_000, burst=20)
    sent = greedy(lim, 10_100)
    assert most_in_window(sent, 60.0) <= 120 + 20
    assert most_in_window(sent, 86_400.0) <= 10_000 + 20
    assert sent[-1] - sent[-2] == pytest.approx(86_400 / 10_000)


def test_keys_are_paced_independently() -> None:
    lim = limiter(per_second=1)
    assert lim.acquire("a", 0.0) == 0.0
    assert lim.acquire("b", 0.0) == 0.0
    assert lim.acquire("a", 0.0) == 1.0


def test_would_wait_reserves_nothing() -> None:
    lim = limiter(per_second=2)
    lim.acquire(KEY, 0.0)
    assert lim.would_wait(KEY, 0.0) == 0.5
    assert lim.would_wait(KEY, 0.0) == 0.5
    assert lim.acquire(KEY, 0.0) == 0.5


def test_acquire_refuses_past_max_wait_without_reserving() -> None:
    lim = limiter(per_second=1)
    assert lim.acquire(KEY, 0.0, max_wait=0.0) == 0.0
    assert lim.acquire(KEY, 0.0, max_wait=0.5) is None
    assert lim.acquire(KEY, 0.0, max_wait=1.0) == 1.0  # equal to max_wait: accepted
    assert lim.acquire(KEY, 0.0, max_wait=None) == 2.0  # None: any wait


def test_two_transports_on_one_store_share_the_limit() -> None:
    store = MemoryStore()
    config = RateLimit(per_second=10, key="shared")
    first, second = config.new_limiter(store), config.new_limiter(store)
    assert first.acquire("shared", 0.0) == 0.0
    assert second.acquire("shared", 0.0) == pytest.approx(0.1)


def test_threads_get_distinct_slots() -> None:
    lim = limiter(per_second=100)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [lim.acquire(KEY, 0.0) for _ in range(50)]
        with lock:
            waits.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([i / 100 for i in range(400)])


async def test_tasks_and_threads_get_distinct_slots() -> None:
    lim = limiter(per_second=100)

    async def direct() -> float:
        return lim.acquire(KEY, 0.0)

    waits = await asyncio.gather(
        *(direct() for _ in range(20)),
        *(asyncio.to_thread(lim.acquire, KEY, 0.0) for _ in range(20)),
    )
    assert sorted(waits) == pytest.approx([i / 100 for i in range(40)])


# --- 429: holds -----------------------------------------------------------------------------


def test_retry_after_holds_every_caller_then_one_at_the_lowered_rate() -> None:
    lim = limiter(per_second=10, burst=5)
    assert lim.on_throttled(KEY, 0.0, retry_after=2.0) == 2.0
    assert lim.would_wait(KEY, 0.0) == pytest.approx(2.0)
    assert lim.would_wait(KEY, 1.5) == pytest.approx(0.5)
    assert lim.acquire(KEY, 2.0) == 0.0
    assert lim.acquire(KEY, 2.0) == pytest.approx(1 / (10 * BETA))  # no burst after a hold


def test_a_hold_reaches_other_transports_on_the_same_store() -> None:
    store = MemoryStore()
    config = RateLimit(per_second=10)
    first, second = config.new_limiter(store), config.new_limiter(store)
    first.on_throttled(KEY, 0.0, retry_after=3.0)
    assert second.would_wait(KEY, 0.0) == pytest.approx(3.0)


def test_a_hold_past_max_wait_refuses_at_once() -> None:
    lim = limiter(per_second=10)
    lim.on_throttled(KEY, 0.0, retry_after=120.0)
    assert lim.acquire(KEY, 0.0, max_wait=60.0) is None
    assert lim.acquire(KEY, 60.0, max_wait=60.0) == pytest.approx(60.0)


def test_many_429s_in_flight_do_not_add_up() -> None:
    """The hold ends where the latest Retry-After says, and the rate drops once."""
    lim = limiter(per_second=10)
    for now in (0.0, 0.1, 0.2, 0.3):
        lim.on_throttled(KEY, now, retry_after=2.0)
    assert lim.would_wait(KEY, 0.3) == pytest.approx(2.0)
    assert lim.factor(KEY) == pytest.approx(BETA)


def test_the_retry_after_argument_wins_over_headers() -> None:
    lim = limiter(per_second=10)
    assert lim.on_throttled(KEY, 0.0, 1.0, {"Retry-After": "9", "X-RateLimit-Reset": "30"}) == 1.0


def test_a_retry_after_header_is_read_when_no_argument_is_given() -> None:
    lim = limiter(per_second=10)
    assert lim.on_throttled(KEY, 0.0, None, {"retry-after": "4"}) == 4.0


def test_an_exhausted_window_holds_until_it_resets() -> None:
    lim = limiter(per_minute=120)
    headers = {"X-RateLimit-Limit": "120", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "25"}
    assert lim.on_throttled(KEY, 0.0, None, headers) == 25.0
    assert lim.would_wait(KEY, 0.0) == pytest.approx(25.0)


def test_a_429_without_any_hint_holds_nothing_but_slows_down() -> None:
    lim = limiter(per_second=10)
    assert lim.on_throttled(KEY, 0.0) == 0.0
    assert lim.acquire(KEY, 0.0) == 0.0
    assert lim.acquire(KEY, 0.0) == pytest.approx(1 / (10 * BETA))


def test_a_success_saying_nothing_remains_holds_before_any_429() -> None:
    lim = limiter(per_second=10)
    headers = {"RateLimit": '"default";r=0;t=5'}
    assert lim.on_success(KEY, 0.0, headers) == 5.0
    assert lim.would_wait(KEY, 0.0) == pytest.approx(5.0)
    assert lim.factor(KEY) == 1.0


def test_a_success_with_requests_left_holds_nothing() -> None:
    lim = limiter(per_second=10)
    assert lim.on_success(KEY, 0.0, {"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "5"}) == 0
    assert lim.would_wait(KEY, 0.0) == 0.0


def test_holds_are_capped_at_a_day() -> None:
    lim = limiter(per_second=10)
    assert lim.on_throttled(KEY, 0.0, retry_after=10 * MAX_HOLD) == MAX_HOLD


# --- 429: adaptive rate -----------------------------------------------------------------------


def test_each_429_after_the_gap_lowers_the_rate_again_down_to_a_floor() -> None:
    lim = limiter(per_second=10)
    lim.on_throttled(KEY, 0.0)
    assert lim.factor(KEY) == pytest.approx(0.7)
    lim.on_throttled(KEY, 1.5)
    assert lim.factor(KEY) == pytest.approx(0.49)
    for i in range(20):
        lim.on_throttled(KEY, 3.0 + 1.5 * i)
    assert lim.factor(KEY) == F_MIN


def test_the_lowered_rate_spaces_requests_wider() -> None:
    lim = limiter(per_second=10)
    lim.on_throttled(KEY, 0.0)
    lim.on_throttled(KEY, 1.5)
    sent = greedy(lim, 5, start=1.5)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert gaps == pytest.approx([1 / (10 * 0.49)] * 4)


def test_recovery_follows_the_cubic_curve() -> None:
    """f(t) = W_max + (W_max - f0) * ((t - t0) / K - 1) ** 3, capped at the plan."""
    lim = limiter(per_second=10, recovery=10.0)
    lim.on_throttled(KEY, 100.0)
    lim.on_success(KEY, 105.0)
    assert lim.factor(KEY) == pytest.approx(1.0 - 0.3 * 0.5**3)
    lim.on_success(KEY, 110.0)
    assert lim.factor(KEY) == 1.0


def test_recovery_is_gradual_and_never_goes_back_down() -> None:
    lim = limiter(per_second=10, recovery=10.0)
    lim.on_throttled(KEY, 0.0)
    seen = []
    for step in range(25):
        lim.on_success(KEY, step * 0.5)
        seen.append(lim.factor(KEY))
    assert seen == sorted(seen)
    assert seen[0] == pytest.approx(0.7)
    assert 0.7 < seen[4] < seen[10] < 1.0
    assert seen[-1] == 1.0


def test_recovery_probes_beyond_the_rate_that_failed() -> None:
    lim = limiter(per_second=10, recovery=10.0)
    lim.on_throttled(KEY, 0.0)  # 1.0 -> 0.7
    lim.on_throttled(KEY, 2.0)  # 0.7 -> 0.49
    lim.on_success(KEY, 12.0)
    assert lim.factor(KEY) == pytest.approx(0.7)
    lim.on_success(KEY, 17.0)
    assert lim.factor(KEY) == pytest.approx(0.7 + 0.21 * 0.5**3)


def test_the_servers_announced_quota_caps_the_rate() -> None:
    lim = limiter(per_second=10)
    lim.on_throttled(KEY, 0.0, None, {"RateLimit-Policy": '"default";q=60;w=60'})
    assert lim.factor(KEY) == pytest.approx(BETA * 0.1)  # 1/s announced against a 10/s plan


def test_without_adaptive_the_rate_stays_but_holds_apply() -> None:
    lim = limiter(per_second=10, adaptive=False)
    assert lim.on_throttled(KEY, 0.0, retry_after=1.0) == 1.0
    assert lim.factor(KEY) == 1.0
    assert lim.acquire(KEY, 1.0) == 0.0
    assert lim.acquire(KEY, 1.0) == pytest.approx(0.1)


# --- headers -----------------------------------------------------------------------------------

WALL = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "wall_now", "expected"),
    [
        ({"Retry-After": "3"}, None, LimitHeaders(retry_after=3.0)),
        ({"retry-after": "0.5"}, None, LimitHeaders(retry_after=0.5)),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:40 GMT"}, WALL, LimitHeaders(retry_after=20.0)),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:40 GMT"}, None, LimitHeaders()),
        ({"RateLimit": '"default";r=0;t=30'}, None, LimitHeaders(remaining=0.0, reset=30.0)),
        (
            {"RateLimit": '"burst";r=5;t=1, "day";r=0;t=40'},
            None,
            LimitHeaders(remaining=0.0, reset=40.0),
        ),
        (
            {"RateLimit": "limit=100, remaining=0, reset=7"},
            None,
            LimitHeaders(remaining=0.0, reset=7.0),
        ),
        (
            {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "12"},
            None,
            LimitHeaders(remaining=0.0, reset=12.0),
        ),
        (
            {"RateLimit-Policy": '"permin";q=120;w=60, "perday";q=10000;w=86400'},
            None,
            LimitHeaders(rate=10_000 / 86_400),
        ),
        ({"RateLimit-Policy": "100;w=60"}, None, LimitHeaders(rate=100 / 60)),
        ({"RateLimit-Limit": "10, 10;w=1, 50;w=60"}, None, LimitHeaders(rate=50 / 60)),
        ({"RateLimit-Policy": '"b";q=1000;qu="content-bytes";w=1'}, None, LimitHeaders()),
        (
            {"X-RateLimit-Limit": "120", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "25"},
            None,
            LimitHeaders(remaining=0.0, reset=25.0),
        ),
        (
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(WALL) + 30)},
            WALL,
            LimitHeaders(remaining=0.0, reset=30.0),
        ),
        (
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(WALL) + 30)},
            None,
            LimitHeaders(remaining=0.0),
        ),
        (
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(WALL * 1000) + 1500)},
            WALL,
            LimitHeaders(remaining=0.0, reset=1.5),
        ),
        ({"X-RateLimit-Reset": "9"}, None, LimitHeaders(reset=9.0)),
        (
            {"X-RateLimit-Remaining": "4", "X-RateLimit-Reset": "9"},
            None,
            LimitHeaders(remaining=4.0),
        ),
        (
            {
                "RateLimit": ';;,,"',
                "RateLimit-Policy": "q=abc;w=0",
                "X-RateLimit-Reset": "-5",
                "Retry-After": "soon",
            },
            None,
            LimitHeaders(),
        ),
    ],
)
def test_read_limit_headers(
    headers: dict[str, str], wall_now: float | None, expected: LimitHeaders
) -> None:
    assert read_limit_headers(headers, wall_now) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"RateLimit": '"default";r=-1;t=10'},
        {"RateLimit": '"default";r=0;t=-10'},
        {"RateLimit": '"default";r=abc;t=10'},
        {"RateLimit": '"default";r=0;r=5;t=10'},
        {"RateLimit": "limit=100, remaining=-1, reset=10"},
        {"RateLimit": "limit=100, remaining=0, reset=ten"},
        {"RateLimit": "limit=-100, remaining=0, reset=10"},
        {"RateLimit": "limit=100, remaining=0, remaining=3, reset=10"},
        {"RateLimit-Remaining": "-1", "RateLimit-Reset": "10"},
        {"RateLimit-Remaining": "0", "RateLimit-Reset": "soon"},
        {"RateLimit-Remaining": "0, 4", "RateLimit-Reset": "10"},
        {"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "10"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "-0.5"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "10", "X-RateLimit-Reset-After": "x"},
    ],
)
def test_an_item_with_a_malformed_field_is_ignored_whole(headers: dict[str, str]) -> None:
    """Draft section 7: malformed fields MUST be ignored, so nothing of the item counts."""
    assert read_limit_headers(headers) == LimitHeaders()


def test_a_malformed_item_leaves_the_other_items_of_its_field() -> None:
    info = read_limit_headers({"RateLimit": '"a";r=-1;t=99, "b";r=0;t=5'})
    assert info == LimitHeaders(remaining=0.0, reset=5.0)


def test_a_field_repeated_with_the_same_value_is_read() -> None:
    info = read_limit_headers({"X-RateLimit-Remaining": "0, 0", "X-RateLimit-Reset": "7"})
    assert info == LimitHeaders(remaining=0.0, reset=7.0)


def test_discord_reset_after_is_a_fractional_delay() -> None:
    info = read_limit_headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.25"})
    assert info == LimitHeaders(remaining=0.0, reset=0.25)


def test_reset_after_wins_over_an_epoch_reset() -> None:
    headers = {
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(WALL + 30),
        "X-RateLimit-Reset-After": "1.5",
    }
    assert read_limit_headers(headers, WALL).reset == 1.5


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "Retry-After",
                "RateLimit",
                "RateLimit-Policy",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "X-RateLimit-Reset-After",
            ]
        ),
        st.text(alphabet=st.sampled_from('0123456789.;,="abqrtw -e+'), max_size=30),
    ),
    st.one_of(st.none(), st.floats(min_value=0, max_value=4e9)),
)
def test_any_header_values_are_read_without_raising(
    headers: dict[str, str], wall_now: float | None
) -> None:
    info = read_limit_headers(headers, wall_now)
    for value in (info.retry_after, info.remaining, info.reset, info.rate):
        assert value is None or (math.isfinite(value) and value >= 0)
    lim = limiter(per_second=10)
    assert 0.0 <= lim.on_throttled(KEY, 0.0, None, headers, wall_now=wall_now) <= MAX_HOLD


# --- through Redis ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as server:
        yield server.url


def test_limiters_in_two_processes_share_slots_and_holds_through_redis(redis_url: str) -> None:
    key = f"key-{uuid.uuid4().hex}"
    config = RateLimit(per_second=10, key=key)
    # A long timeout: a loaded machine may take longer than the default 0.25 s
    # for a round trip, and the store would then pace locally (tested apart).
    here = config.new_limiter(RedisStore(redis_url, timeout=5.0))
    there = config.new_limiter(RedisStore(redis_url, timeout=5.0))
    # Redis keeps time on its own clock: a wait is shortened by the real time
    # that passes between the calls (measured around them), never lengthened.
    started = time.monotonic()
    assert here.acquire(key, 0.0) == 0.0
    # "there" runs on another machine: its monotonic clock means nothing here
    wait = there.acquire(key, 5e5)
    assert 0.1 - (time.monotonic() - started) - 0.001 <= wait <= 0.1 + 1e-6
    started = time.monotonic()
    here.on_throttled(key, 1.0, retry_after=2.0)
    assert isinstance(here.store, RedisStore)
    assert here.store.sync()  # the hold is sent at once, without the caller waiting for it
    wait = there.would_wait(key, 5e5)
    assert 2.0 - (time.monotonic() - started) - 0.001 <= wait <= 2.0 + 1e-6


# -- leases over a MemoryStore: a request from a plentiful bucket costs no store call ----


class _Call:
    """The call a limiter sees: a host, and the last answer's headers."""

    def __init__(self, host: str = KEY) -> None:
        self.host = host
        self.region: str | None = None
        self.vendor = "generic"
        self.headers: dict[str, str] | None = {}
        self.retry_after: float | None = None
        self.notes: dict[object, object] = {}


def _tokens(store: MemoryStore, lim: RateLimiter, now: float) -> float:
    """Tokens in the key's (one) bucket at ``now``, measured without taking any."""
    (bucket,) = lim._buckets(KEY)
    return bucket.capacity - store.take([bucket], bucket.capacity, now, -1.0) * bucket.rate


def test_a_plentiful_bucket_is_leased_and_each_request_still_spends_a_token() -> None:
    store = MemoryStore()
    lim = RateLimit(per_second=100_000, burst=1_000).new_limiter(store)
    assert lim.before_attempt(_Call(), 0.0, math.inf) == 0.0
    leased = 1_000 - _tokens(store, lim, 0.0)
    assert leased == min(100_000 * LEASE_SECONDS, 1_000 / 4, LEASE_MAX)
    for _ in range(int(leased) - 1):  # the rest of the lease: the store is not asked
        assert lim.before_attempt(_Call(), 0.0, math.inf) == 0.0
    assert 1_000 - _tokens(store, lim, 0.0) == leased
    lim.before_attempt(_Call(), 0.0, math.inf)  # lease spent: a new one
    assert 1_000 - _tokens(store, lim, 0.0) == 2 * leased


def test_a_lease_lapses_after_its_seconds() -> None:
    store = MemoryStore()
    lim = RateLimit(per_second=100_000, burst=1_000).new_limiter(store)
    lim.before_attempt(_Call(), 0.0, math.inf)
    later = LEASE_SECONDS * 1.5
    before = _tokens(store, lim, later)
    lim.before_attempt(_Call(), later, math.inf)
    assert _tokens(store, lim, later) < before  # a new lease, from the store


def test_a_hold_ends_the_lease_at_once() -> None:
    lim = RateLimit(per_second=100_000, burst=1_000).new_limiter(MemoryStore())
    lim.before_attempt(_Call(), 0.0, math.inf)
    lim.on_throttled(KEY, 0.0, retry_after=2.0)
    wait = lim.before_attempt(_Call(), 0.0, math.inf)
    assert wait == pytest.approx(2.0)


def test_a_lowered_rate_ends_the_lease_at_once() -> None:
    store = MemoryStore()
    lim = RateLimit(per_second=100_000, burst=1_000).new_limiter(store)
    lim.before_attempt(_Call(), 0.0, math.inf)  # a lease of many tokens
    lim.on_throttled(KEY, 0.0)  # a 429 without any hint: no hold, a lower rate
    spent = 1_000 - _tokens(store, lim, 0.0)
    lim.before_attempt(_Call(), 0.0, math.inf)
    # Not served from the lease: the store is asked, at the cost of the lowered rate.
    assert 1_000 - _tokens(store, lim, 0.0) == pytest.approx(spent + 1.0 / lim.factor(KEY))


def test_strict_pacing_takes_no_lease() -> None:
    store = MemoryStore()
    lim = RateLimit(per_second=100_000).new_limiter(store)  # burst 1: a quarter is < 2
    lim.before_attempt(_Call(), 0.0, math.inf)
    assert lim.before_attempt(_Call(), 0.0, math.inf) == pytest.approx(1e-5)


@pytest.mark.parametrize(
    ("names", "announces"),
    [
        ([], False),
        (["Content-Type", "X-Request-Id"], False),
        (["Content-Type", "RateLimit-Policy"], True),
        (["x-ratelimit-remaining"], True),
        (["Rate", "Limit"], False),  # two names are not read as one
    ],
)
def test_announces_limits_reads_every_kind_of_headers(names: list[str], announces: bool) -> None:
    pairs = [(name, "1") for name in names]
    for headers in (
        httpx.Headers(pairs),
        requests.structures.CaseInsensitiveDict(pairs),
        dict(pairs),
    ):
        assert announces_limits(headers) is announces


# -- servers that never announce limits are read sparingly -------------------------------


class _CountingHeaders(dict[str, str]):
    """Headers that count how often their names are scanned."""

    scans = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        type(self).scans += 1
        return super().__iter__()


def test_a_silent_server_has_its_headers_read_one_answer_in_sixteen() -> None:
    lim = RateLimit(per_second=10).new_limiter(MemoryStore())
    call = _Call()
    call.headers = _CountingHeaders({"Content-Type": "text/plain"})
    _CountingHeaders.scans = 0
    for _ in range(QUIET_AFTER + 10 * QUIET_EVERY):
        lim.record(call, Outcome.SUCCESS, 0.0)
    assert _CountingHeaders.scans == QUIET_AFTER + 10


def test_a_server_that_starts_announcing_is_heard_within_sixteen_answers() -> None:
    lim = RateLimit(per_second=10).new_limiter(MemoryStore())
    call = _Call()
    call.headers = {"Content-Type": "text/plain"}
    for _ in range(QUIET_AFTER + 3):
        lim.record(call, Outcome.SUCCESS, 0.0)
    call.headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": "5"}
    for _ in range(QUIET_EVERY):
        lim.record(call, Outcome.SUCCESS, 0.0)
    assert lim.before_attempt(_Call(), 0.0, math.inf) == pytest.approx(5.0)
