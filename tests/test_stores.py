"""The stores behave alike in memory and in a real Redis; a Redis failure never fails a call."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from benchmarks import _redis as launcher
from resilience.stores import Bucket, MemoryStore, RedisStore, Store
from resilience.stores.redis import confined_to_the_call
from tests._redis import free_port, running_redis

# Redis keeps time on the server's clock (real time, however slowly the test
# runs), while Redis's replies are read to the microsecond.
REDIS_RESOLUTION = 0.001


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.value = start

    def now(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds

    def lag(self) -> float:
        """Time passed that the test did not ask for: none."""
        return 0.0


class RealClock:
    """The real monotonic clock: a Redis store keeps time with the server's clock."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.advanced = 0.0

    def now(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        self.advanced += seconds
        time.sleep(seconds)

    def lag(self) -> float:
        """Real time passed so far beyond what the test advanced (a loaded machine's pauses)."""
        return max(0.0, time.monotonic() - self.started - self.advanced) + REDIS_RESOLUTION


@dataclass
class Case:
    store: Store
    clock: FakeClock | RealClock

    def now(self) -> float:
        return self.clock.now()

    def take(self, buckets: list[Bucket], cost: float = 1.0, max_wait: float = math.inf) -> float:
        return self.store.take(buckets, cost, self.now(), max_wait)

    def about(self, expected: float) -> object:
        """``expected``, or less by at most the time that passed unasked (a real clock's).

        Waits measured by Redis shrink by the real time that passes between calls,
        never grow: a wait is never longer than the bucket says. Asked after the
        wait was measured, so the lag counted covers it.
        """
        lag = self.clock.lag()
        return pytest.approx(expected - lag / 2, abs=lag / 2 + 1e-9)

    def outlive(self, key: str, ttl: float) -> None:
        """Let ``key``'s ``ttl`` pass.

        A fake clock moves just past it. On Redis, real time passes until
        ``key`` reads as absent, which must happen within a second after ``ttl``
        (the exact expiry is pinned in tests/test_redis_store.py).
        """
        if isinstance(self.clock, FakeClock):
            self.clock.advance(ttl + 0.02)
            return
        deadline = self.now() + ttl + 1.0
        self.clock.advance(ttl)
        while self.store.get(key, self.now()) is not None:
            assert self.now() < deadline, f"{key!r} outlived its ttl of {ttl} s by a second"
            time.sleep(0.005)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as server:
        yield server.url


@pytest.fixture(params=["memory", "redis"])
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    if request.param == "memory":
        yield Case(MemoryStore(), FakeClock())
        return
    url = request.getfixturevalue("redis_url")
    # lease=0: one token per take, so that one store's sequence of waits is
    # exactly the memory store's (leases are tested on their own below). A
    # long timeout: on a loaded machine a round trip may pass the default
    # 0.25 s, and the store would then fall back to local state (tested apart).
    store = RedisStore(url, prefix=f"test:{uuid.uuid4().hex}:", lease=0, timeout=5.0)
    yield Case(store, RealClock())
    store.close()


# --- buckets ---------------------------------------------------------------------------


def test_a_full_bucket_lets_its_capacity_through_then_paces(case: Case) -> None:
    bucket = Bucket("b", rate=10.0, capacity=3.0)
    waits = [case.take([bucket]) for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == case.about(0.1)
    assert waits[4] == case.about(0.2)


def test_a_refused_take_changes_nothing(case: Case) -> None:
    bucket = Bucket("b", rate=10.0, capacity=1.0)
    assert case.take([bucket]) == 0.0
    assert case.take([bucket], max_wait=0.05) == case.about(0.1)  # refused
    assert case.take([bucket]) == case.about(0.1)  # the slot refused is still free


def test_a_negative_max_wait_only_measures(case: Case) -> None:
    bucket = Bucket("b", rate=10.0, capacity=2.0)
    assert case.take([bucket], max_wait=-1.0) == 0.0
    assert case.take([bucket], max_wait=-1.0) == 0.0
    assert [case.take([bucket]) for _ in range(2)] == [0.0, 0.0]


def test_buckets_are_taken_all_or_none(case: Case) -> None:
    fast = Bucket("fast", rate=100.0, capacity=5.0)
    slow = Bucket("slow", rate=1.0, capacity=1.0)
    assert case.take([fast, slow]) == 0.0
    assert case.take([fast, slow], max_wait=0.5) == case.about(1.0)  # refused by "slow"
    assert [case.take([fast]) for _ in range(4)] == [0.0] * 4  # "fast" lost one token only


def test_the_slowest_bucket_sets_the_wait(case: Case) -> None:
    fast = Bucket("fast", rate=100.0, capacity=1.0)
    slow = Bucket("slow", rate=2.0, capacity=1.0)
    case.take([fast, slow])
    assert case.take([fast, slow]) == case.about(0.5)


def test_a_cost_above_the_capacity_goes_at_once_then_spaces_by_the_cost(case: Case) -> None:
    bucket = Bucket("b", rate=10.0, capacity=1.0)
    waits = [case.take([bucket], cost=2.0) for _ in range(3)]
    assert waits[0] == 0.0
    assert waits[1] == case.about(0.2)
    assert waits[2] == case.about(0.4)


def test_tokens_come_back_at_the_rate_up_to_the_capacity(case: Case) -> None:
    bucket = Bucket("b", rate=50.0, capacity=2.0)
    assert [case.take([bucket]) for _ in range(2)] == [0.0, 0.0]
    case.clock.advance(0.1)  # 5 tokens' worth, but the bucket holds 2
    assert [case.take([bucket]) for _ in range(2)] == [0.0, 0.0]
    assert case.take([bucket]) == case.about(0.02)


def test_a_hold_delays_the_next_slot_then_grants_one_at_a_time(case: Case) -> None:
    bucket = Bucket("b", rate=100.0, capacity=5.0)
    case.store.hold([bucket], 0.3, case.now())
    assert case.take([bucket]) == case.about(0.3)
    assert case.take([bucket]) == case.about(0.31)  # no burst after a hold


def test_a_hold_leaves_room_for_one_request_of_its_cost(case: Case) -> None:
    bucket = Bucket("b", rate=10.0, capacity=5.0)
    case.store.hold([bucket], 0.3, case.now(), cost=2.0)
    assert case.take([bucket], cost=2.0) == case.about(0.3)
    assert case.take([bucket], cost=2.0) == case.about(0.5)


def test_a_hold_never_shortens_a_longer_wait(case: Case) -> None:
    bucket = Bucket("b", rate=1.0, capacity=1.0)
    assert case.take([bucket]) == 0.0
    assert case.take([bucket]) == case.about(1.0)  # a slot given for one second from now
    case.store.hold([bucket], 0.2, case.now())
    assert case.take([bucket]) == case.about(2.0)


def test_holds_do_not_add_up(case: Case) -> None:
    bucket = Bucket("b", rate=100.0, capacity=1.0)
    for _ in range(3):
        case.store.hold([bucket], 0.3, case.now())
    assert case.take([bucket]) == case.about(0.3)


def test_concurrent_takes_never_grant_more_than_the_bucket_holds(case: Case) -> None:
    bucket = Bucket("b", rate=1e-6, capacity=100.0)
    granted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(40):
            wait = case.take([bucket], max_wait=0.0)
            if wait == 0.0:
                with lock:
                    granted.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 100


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="rate"):
        Bucket("b", rate=0.0, capacity=1.0)
    with pytest.raises(ValueError, match="capacity"):
        Bucket("b", rate=1.0, capacity=math.inf)
    with pytest.raises(TypeError, match="rate"):
        Bucket("b", rate=True, capacity=1.0)
    store = MemoryStore()
    with pytest.raises(ValueError, match="cost"):
        store.take([Bucket("b", 1.0, 1.0)], -1.0, 0.0)
    with pytest.raises(ValueError, match="ttl"):
        store.set("k", 1.0, 0.0, 0.0)


# --- values ----------------------------------------------------------------------------


# A time to live a loaded machine does not outlast between two calls by accident.
TTL = 0.5


def test_a_value_lives_for_its_ttl(case: Case) -> None:
    assert case.store.get("v", case.now()) is None
    case.store.set("v", 1.5, TTL, case.now())
    assert case.store.get("v", case.now()) == 1.5
    case.outlive("v", TTL)
    assert case.store.get("v", case.now()) is None


def test_incr_starts_from_initial_and_stays_within_bounds(case: Case) -> None:
    def incr(amount: float) -> float:
        return case.store.incr("c", amount, 10.0, case.now(), initial=10.0, low=0.0, high=10.0)

    assert incr(-1.0) == 9.0
    assert incr(5.0) == 10.0
    assert incr(-20.0) == 0.0
    assert incr(0.25) == 0.25


def test_incr_starts_again_after_its_ttl(case: Case) -> None:
    assert case.store.incr("c", 1.0, TTL, case.now()) == 1.0
    assert case.store.incr("c", 1.0, TTL, case.now()) == 2.0
    case.outlive("c", TTL)
    assert case.store.incr("c", 1.0, TTL, case.now()) == 1.0


def test_stores_satisfy_the_protocol(redis_url: str) -> None:
    assert isinstance(MemoryStore(), Store)
    store = RedisStore(redis_url)
    assert isinstance(store, Store)
    store.close()


# --- nothing grows without bound -------------------------------------------------------


def test_memory_forgets_full_buckets_and_expired_values() -> None:
    store = MemoryStore()
    buckets = [Bucket(f"b{i}", rate=10.0, capacity=2.0) for i in range(300)]
    for bucket in buckets:
        store.take([bucket], 1.0, 0.0)
    store.set("v", 1.0, 5.0, 0.0)
    store.incr("c", 1.0, 5.0, 0.0)
    assert store.purge(0.0) == 302
    assert store.purge(0.2) == 2  # every bucket full again, so forgotten
    assert store.purge(5.0) == 0


def test_memory_sweeps_as_it_goes() -> None:
    store = MemoryStore()
    for i in range(2000):
        store.take([Bucket(f"b{i}", rate=1000.0, capacity=1.0)], 1.0, float(i))
    assert len(store) < 300


def test_every_redis_key_has_an_expiry(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    # A long timeout: the take waits for Redis however loaded the machine is.
    store = RedisStore(redis_url, prefix=prefix, timeout=5.0)
    # Slow buckets: none is full again (and gone) before the keys are looked at.
    store.take([Bucket("{k}:1", 0.5, 5.0), Bucket("{k}:60", 0.05, 5.0)], 1.0, 0.0)
    store.hold([Bucket("{h}:1", 10.0, 5.0)], 3.0, 0.0)
    store.set("v", 1.0, 30.0, 0.0)
    store.incr("c", 1.0, 30.0, 0.0)
    assert store.sync(timeout=10.0)  # the values and the hold are in Redis
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    assert len(keys) == 5
    assert all(0 < client.pttl(key) <= 30_000 for key in keys)
    # a bucket expires when it would be full again: 5 tokens at 0.05/s after taking 1
    assert 10_000 < client.pttl(prefix + "{k}:60") <= 20_001
    client.close()
    store.close()


# --- Redis specifics --------------------------------------------------------------------


def test_redis_measures_time_with_the_servers_clock(redis_url: str) -> None:
    """Two machines whose monotonic clocks differ by years still share one bucket."""
    prefix = f"test:{uuid.uuid4().hex}:"
    here = RedisStore(redis_url, prefix=prefix, timeout=5.0)
    there = RedisStore(redis_url, prefix=prefix, timeout=5.0)
    bucket = Bucket("b", rate=10.0, capacity=1.0)
    started = time.monotonic()
    assert here.take([bucket], 1.0, 5.0) == 0.0
    wait = there.take([bucket], 1.0, 1e9)
    elapsed = time.monotonic() - started  # a loaded machine takes its time between the two
    assert 0.1 - elapsed - REDIS_RESOLUTION <= wait <= 0.1 + REDIS_RESOLUTION
    here.close()
    there.close()


def test_redis_reloads_scripts_it_lost(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"test:{uuid.uuid4().hex}:", lease=0, timeout=5.0)
    bucket = Bucket("b", rate=1.0, capacity=1.0)
    started = time.monotonic()
    assert store.take([bucket], 1.0, 0.0) == 0.0
    client = redis.Redis.from_url(redis_url)
    client.script_flush()
    client.close()
    # The next slot is a second after the first, less the time this took.
    wait = store.take([bucket], 1.0, 0.0)
    assert 1.0 - (time.monotonic() - started) - REDIS_RESOLUTION <= wait <= 1.0
    assert not store.degraded
    store.close()


def test_redis_accepts_a_ready_client(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisStore(client, prefix=f"test:{uuid.uuid4().hex}:")
    assert store.take([Bucket("b", 10.0, 1.0)], 1.0, 0.0) == 0.0
    store.set("v", 2.5, 10.0, 0.0)
    assert store.get("v", 0.0) == 2.5
    assert store.incr("c", 1.5, 10.0, 0.0) == 1.5
    store.close()  # not ours: the client stays open
    assert client.ping()
    client.close()


def test_redis_down_calls_still_complete_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    store = RedisStore(f"redis://127.0.0.1:{port}/0", retry_interval=0.3)
    bucket = Bucket("b", rate=10.0, capacity=2.0)
    caplog.set_level(logging.INFO, logger="resilience")
    started = time.monotonic()

    assert [store.take([bucket], 1.0, 0.0) for _ in range(3)] == [0.0, 0.0, 0.1]
    store.set("v", 1.0, 10.0, 0.0)
    assert store.get("v", 0.0) == 1.0
    assert store.incr("c", 1.0, 10.0, 0.0) == 1.0
    store.hold([bucket], 1.0, 0.0)
    assert store.degraded
    time.sleep(0.35)  # past retry_interval: Redis is tried again, still down
    assert not store.sync()

    assert time.monotonic() - started < 2.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name.startswith("resilience.")
    assert f"127.0.0.1:{port}" in warnings[0].getMessage()

    with running_redis(port=port):
        time.sleep(0.35)
        assert store.sync()  # back on Redis
        assert store.take([bucket], 1.0, 20.0) == 0.0  # a fresh bucket
        assert not store.degraded
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    store.close()


def test_redis_killed_mid_use_falls_back_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="resilience")
    with running_redis() as server:
        store = RedisStore(server.url)
        bucket = Bucket("b", rate=1000.0, capacity=1.0)
        store.take([bucket], 1.0, 0.0)
        server.stop()
        started = time.monotonic()
        waits = [store.take([bucket], 1.0, 0.0) for _ in range(50)]
        assert time.monotonic() - started < 1.0
    assert waits[0] == 0.0
    # paced locally from there: one request per millisecond (the first one or
    # two may still come from the lease taken before Redis died)
    assert waits[-1] == pytest.approx(0.049, abs=0.0021)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    store.close()


# --- one bad call does not degrade the store --------------------------------------------


def _second_store_sees(
    redis_url: str, prefix: str, key: str, value: float, store: RedisStore
) -> bool:
    """Whether another store on the same server reads ``value`` under ``key``: it went to Redis."""
    assert store.sync()
    other = RedisStore(redis_url, prefix=prefix)
    try:
        other.get(key, 0.0)  # first use: read back in the next round trip
        assert other.sync()
        return other.get(key, 0.0) == value
    finally:
        other.close()


def test_a_key_utf8_cannot_encode_is_escaped_and_stays_on_redis(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisStore(redis_url, prefix=prefix)
    store.set("breaker:{host|\udcff}", 3.0, 10.0, 0.0)
    assert not store.degraded
    assert _second_store_sees(redis_url, prefix, "breaker:{host|\udcff}", 3.0, store)
    store.close()


def test_a_wrongtype_key_fails_only_its_own_call(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    raw = redis.Redis.from_url(redis_url)
    raw.rpush(prefix + "listy", "not a number")
    store = RedisStore(redis_url, prefix=prefix)
    assert store.incr("listy", 1.0, 10.0, 0.0) == 1.0  # answered locally
    assert not store.degraded
    store.set("good", 2.0, 10.0, 0.0)
    assert _second_store_sees(redis_url, prefix, "good", 2.0, store)
    raw.close()
    store.close()


def test_a_key_the_client_cannot_encode_fails_only_its_own_call(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client set to ASCII cannot send ``café``: that call is local, the next good one is not."""
    caplog.set_level(logging.DEBUG, logger="resilience")
    prefix = f"test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(redis_url, encoding="ascii")
    store = RedisStore(client, prefix=prefix)
    assert store.incr("café", 1.0, 10.0, 0.0) == 1.0
    assert store.incr("café", 1.0, 10.0, 0.0) == 2.0  # the local fallback kept it
    assert not store.degraded
    store.set("good", 4.0, 10.0, 0.0)
    assert _second_store_sees(redis_url, prefix, "good", 4.0, store)
    levels = [r.levelno for r in caplog.records if "refused one call" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG]
    client.close()


@pytest.mark.parametrize(
    ("error", "confined"),
    [
        (UnicodeEncodeError("ascii", "é", 0, 1, "no"), True),
        (redis.exceptions.DataError("bad argument"), True),
        (redis.exceptions.ResponseError("WRONGTYPE Operation against a key"), True),
        (redis.exceptions.ClusterCrossSlotError("Keys in request don't hash"), True),
        (ValueError("could not convert string to float: 'x'"), True),
        (redis.exceptions.ConnectionError("Connection refused"), False),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), False),
        (redis.exceptions.BusyLoadingError("Redis is loading"), False),
        (redis.exceptions.AuthenticationError("invalid password"), False),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica"), False),
        (redis.exceptions.OutOfMemoryError("command not allowed when used memory"), False),
        (redis.exceptions.ClusterDownError("The cluster is down"), False),
        (redis.exceptions.NoPermissionError("this user has no permissions"), False),
        (redis.exceptions.ResponseError("BUSY Redis is busy running a script"), False),
        (redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB"), False),
        (redis.exceptions.ResponseError("unknown command 'EVALSHA'"), False),
        (redis.exceptions.InvalidResponse("Protocol error"), False),
        (OSError("Network is unreachable"), False),
        (AttributeError("'NoneType' object has no attribute 'evalsha'"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_only_errors_about_redis_itself_degrade_the_store(
    error: BaseException, confined: bool
) -> None:
    assert confined_to_the_call(error) is confined


def test_the_warning_shows_no_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="resilience")
    store = RedisStore(f"redis://user:s3cr3t-pw@127.0.0.1:{free_port()}/2")
    store.get("v", 0.0)
    assert not store.sync()
    assert caplog.records
    assert all("s3cr3t" not in r.getMessage() for r in caplog.records)
    store.close()


def test_importing_the_stores_does_not_import_redis() -> None:
    code = "import sys, resilience.stores; assert 'redis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_running_redis_without_a_server_binary_says_how_to_install_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")

    with (
        pytest.raises(FileNotFoundError, match="apt-get install redis-server"),
        launcher.running_redis(),
    ):
        pass
