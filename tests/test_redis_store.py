"""RedisStore keeps calls off the network: a local copy, batched changes, leased tokens.

Against a real ``redis-server`` on 127.0.0.1 (and a 3-node cluster where the
hash slots matter). Waits are tiny: the store's ``sync_interval`` is a few
milliseconds, and :meth:`RedisStore.sync` waits for one round trip.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from resilience.stores import Bucket, RedisStore
from tests._redis import running_redis, running_redis_cluster


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as server:
        yield server.url


def _prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


class WriteCounter:
    """A redis-py client counting the round trips that carry a value change."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.trips = 0

    def register_script(self, script: str) -> Any:
        inner = self.client.register_script(script)

        def run(*args: Any, **kwargs: Any) -> Any:
            argv, i, codes = kwargs["args"], 0, set()
            while i < len(argv):  # code, n, n arguments; and so on
                codes.add(argv[i])
                i += 2 + int(argv[i + 1])
            if codes & {"i", "s"}:
                self.trips += 1
            return inner(*args, **kwargs)

        return run


def _evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


class CountingClient:
    """A redis-py client whose scripts record the thread that runs them (after ``delay``)."""

    def __init__(self, client: redis.Redis, delay: float = 0.0) -> None:
        self.client = client
        self.delay = delay
        self.threads: list[str] = []

    def register_script(self, script: str) -> Any:
        inner = self.client.register_script(script)

        def run(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.current_thread().name)
            time.sleep(self.delay)
            return inner(*args, **kwargs)

        return run


class GatedClient:
    """A redis-py client whose scripts wait until the gate is open (it is, at first).

    A closed gate is a Redis that hangs, for as long as the test says:
    ``entered`` tells that a round trip is waiting at the gate.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def register_script(self, script: str) -> Any:
        inner = self.client.register_script(script)

        def run(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            assert self.gate.wait(30.0)
            return inner(*args, **kwargs)

        return run


# --- the hot path -------------------------------------------------------------------------


def test_calls_make_no_round_trip_once_keys_and_lease_are_warm(redis_url: str) -> None:
    """Budget, breaker and rate-limit calls answer locally: Redis sees no command meanwhile."""
    raw = redis.Redis.from_url(redis_url)
    counting = CountingClient(redis.Redis.from_url(redis_url))
    store = RedisStore(counting, prefix=_prefix(), sync_interval=60.0)
    bucket = Bucket("rate:{k}:1", rate=100_000.0, capacity=1000.0)  # leases of 1000 tokens
    names = ["breaker:{h|}:open", "breaker:{h|}:trip"]
    store.incr("budget", -1.0, 60.0, 0.0, initial=10.0, low=0.0, high=10.0)
    store.get_many(names, 0.0)
    assert store.take([bucket], 1.0, time.monotonic()) == 0.0
    assert store.sync()
    before = _evalsha_calls(raw)
    calls = len(counting.threads)

    for _ in range(400):
        store.get_many(names, 0.0)
        store.incr("budget", 0.2, 60.0, 0.0, initial=10.0, low=0.0, high=10.0)
        assert store.take([bucket], 1.0, time.monotonic()) == 0.0

    assert _evalsha_calls(raw) == before
    assert len(counting.threads) == calls
    assert threading.current_thread().name not in counting.threads  # only the store's thread
    store.close()
    raw.close()


def test_changes_reach_redis_batched_and_a_second_store_sees_them_within_a_bound(
    redis_url: str,
) -> None:
    raw = redis.Redis.from_url(redis_url)
    prefix = _prefix()
    writes = WriteCounter(redis.Redis.from_url(redis_url))
    here = RedisStore(writes, prefix=prefix, sync_interval=0.01)
    there = RedisStore(redis_url, prefix=prefix, sync_interval=0.01)
    assert there.get("budget", 0.0) is None  # in use there from now on
    started = time.monotonic()
    for _ in range(50):
        here.incr("budget", -1.0, 60.0, 0.0, initial=100.0, low=0.0, high=100.0)
    here.set("state", 2.0, 60.0, 0.0)
    changed = time.monotonic() - started
    # Within sync_interval and a round trip or two; a second when the machine is loaded.
    while there.get("budget", 0.0) != 50.0 or there.get("state", 0.0) != 2.0:
        assert time.monotonic() - started < 1.0, "not seen within a second"
        time.sleep(0.002)
    # 50 increments and a set: a few round trips (summed), not 51. A round trip
    # goes every sync_interval at most, so a loop slowed by a loaded machine
    # may have been cut into more of them.
    assert writes.trips <= 4 + changed / 0.01
    assert float(raw.get(prefix + "budget") or 0) == 50.0
    here.close()
    there.close()
    raw.close()


def test_local_changes_made_during_a_round_trip_are_kept(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=_prefix(), sync_interval=0.001)
    for _ in range(200):
        store.incr("n", 1.0, 60.0, 0.0)
    assert store.get("n", 0.0) == 200.0
    assert store.sync()
    assert store.get("n", 0.0) == 200.0
    store.close()


# --- leases ---------------------------------------------------------------------------------


def test_leases_never_grant_more_than_the_bucket_holds(redis_url: str) -> None:
    """Two stores, leases of 20 tokens, a bucket of 100 that does not refill: 100 in all."""
    prefix = _prefix()
    stores = [RedisStore(redis_url, prefix=prefix, lease=60.0) for _ in range(2)]
    bucket = Bucket("b", rate=1.0 / 3.0, capacity=100.0)  # 60 s of it: 20 tokens a lease
    granted = 0
    for _ in range(80):
        for store in stores:
            if store.take([bucket], 1.0, time.monotonic(), max_wait=0.0) == 0.0:
                granted += 1
    assert granted == 100
    for store in stores:
        store.close()


def test_a_lease_is_sized_from_the_rate_and_capped_by_the_burst(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    prefix = _prefix()
    store = RedisStore(redis_url, prefix=prefix, lease=0.05)
    store.take([Bucket("slow", rate=100.0, capacity=50.0)], 1.0, 0.0)  # 5 tokens of 50 ms
    store.take([Bucket("capped", rate=10_000.0, capacity=50.0)], 1.0, 0.0)  # 500, capped: 50
    store.take([Bucket("one", rate=1.0, capacity=50.0)], 1.0, 0.0)  # 0.05: at least 1
    left = {name: float(raw.hget(prefix + name, "b") or 0) for name in ("slow", "capped", "one")}
    assert left["slow"] == pytest.approx(45.0, abs=0.5)
    assert left["capped"] == pytest.approx(0.0, abs=0.5)
    assert left["one"] == pytest.approx(49.0, abs=0.1)
    store.close()
    raw.close()


def test_unused_leased_tokens_go_back_to_redis_when_idle(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    prefix = _prefix()
    store = RedisStore(redis_url, prefix=prefix, lease=60.0)
    bucket = Bucket("b", rate=0.5, capacity=20.0)  # a lease takes all 20
    assert store.take([bucket], 1.0, 0.0) == 0.0
    assert float(raw.hget(prefix + "b", "b") or 0) == pytest.approx(0.0, abs=0.1)
    deadline = time.monotonic() + 2.0
    while float(raw.hget(prefix + "b", "b") or 0) < 18.9:  # 19 unused come back
        assert time.monotonic() < deadline, "the unused tokens did not come back"
        time.sleep(0.02)
    store.close()
    raw.close()


def test_closing_gives_unused_leased_tokens_back(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    prefix = _prefix()
    # A long timeout: the take waits for its lease (rather than pacing locally)
    # and close() for the tokens to be back, however loaded the machine is.
    store = RedisStore(redis_url, prefix=prefix, lease=60.0, timeout=5.0)
    assert store.take([Bucket("b", rate=0.5, capacity=20.0)], 1.0, 0.0) == 0.0  # leases 20
    store.close()
    assert float(raw.hget(prefix + "b", "b") or 0) == pytest.approx(19.0, abs=0.1)
    raw.close()


def test_closing_while_a_lease_is_on_its_way_gives_its_tokens_back(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    prefix = _prefix()
    gated = GatedClient(redis.Redis.from_url(redis_url))
    store = RedisStore(gated, prefix=prefix, lease=60.0, timeout=0.01)
    gated.gate.clear()  # Redis hangs: the take paces locally, its lease still on its way
    assert store.take([Bucket("b", rate=0.5, capacity=20.0)], 1.0, 0.0) == 0.0
    assert gated.entered.wait(10.0)
    closing = threading.Thread(target=store.close)
    closing.start()
    deadline = time.monotonic() + 10.0
    while not store._closed:  # closed, waiting for its thread
        assert time.monotonic() < deadline
        time.sleep(0.001)
    gated.gate.set()  # the lease of 20 tokens arrives after close()
    closing.join(30.0)
    assert not closing.is_alive()
    # All 20 are back (a full bucket expires at once: absent is full too).
    assert float(raw.hget(prefix + "b", "b") or 20.0) == pytest.approx(20.0, abs=0.1)
    raw.close()
    gated.client.close()


def test_a_value_expires_its_ttl_after_it_was_changed_not_after_it_reached_redis(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change sent 10 s after it was made keeps 10 s less to live, as in a MemoryStore."""
    clock = [1000.0]
    monkeypatch.setattr("resilience.stores.redis._monotonic", lambda: clock[0])
    raw = redis.Redis.from_url(redis_url)
    prefix = _prefix()
    store = RedisStore(redis_url, prefix=prefix, sync_interval=60.0, timeout=5.0)
    store.get_many(["v", "c"], 0.0)  # in use: the changes below are sent every minute
    assert store.sync(timeout=10.0)
    store.set("v", 1.0, 30.0, 0.0)
    store.incr("c", 1.0, 30.0, 0.0)
    clock[0] += 10.0
    assert store.sync(timeout=10.0)
    assert 0 < raw.pttl(prefix + "v") <= 20_000
    assert 0 < raw.pttl(prefix + "c") <= 20_000
    store.close()
    raw.close()


def test_a_steady_caller_gets_its_slots_refilled_ahead_of_need(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paced at the bucket's rate, calls find their next slot already leased.

    A slot comes every 50 ms; a round trip on 127.0.0.1 takes about a
    millisecond. Counted: the calls that found their lease empty and so had
    to wait on Redis (timing them would count a loaded machine's pauses too).
    """
    waited_on_redis = 0
    fetch = RedisStore._fetch

    def counting_fetch(self: RedisStore, *args: Any) -> Any:
        nonlocal waited_on_redis
        waited_on_redis += 1
        return fetch(self, *args)

    monkeypatch.setattr(RedisStore, "_fetch", counting_fetch)
    store = RedisStore(redis_url, prefix=_prefix(), lease=0.08, timeout=5.0)
    bucket = Bucket("b", rate=20.0, capacity=1.0)  # leases of 1
    for _ in range(12):
        time.sleep(store.take([bucket], 1.0, time.monotonic()))
    assert waited_on_redis <= 3  # the first calls, before the lease is hot
    store.close()


def test_a_hold_drops_the_leased_slots_and_reaches_the_other_stores(redis_url: str) -> None:
    prefix = _prefix()
    gated = GatedClient(redis.Redis.from_url(redis_url))
    here = RedisStore(gated, prefix=prefix, lease=5.0, timeout=5.0)
    there = RedisStore(redis_url, prefix=prefix, lease=5.0, timeout=5.0)
    bucket = Bucket("b", rate=1.0, capacity=100.0)
    assert here.take([bucket], 1.0, 0.0) == 0.0  # 4 more slots leased here
    gated.gate.clear()  # Redis hangs for a moment
    started = time.monotonic()
    here.hold([bucket], 0.5, 0.0)
    # Sent without waiting for Redis: waiting, it would not return before the gate opens.
    assert time.monotonic() - started < 5.0
    gated.gate.set()

    def about_half_a_second(wait: float) -> bool:
        # Shorter by the real time since the hold was made (Redis's clock runs on),
        # longer by no more than it took the hold to reach Redis.
        elapsed = time.monotonic() - started
        return 0.5 - elapsed - 0.001 <= wait <= 0.5 + elapsed

    assert about_half_a_second(here.take([bucket], 1.0, 0.0, max_wait=-1.0))
    assert here.sync()
    assert about_half_a_second(there.take([bucket], 1.0, 0.0, max_wait=-1.0))
    here.close()
    there.close()
    gated.client.close()


# --- Redis slow or gone ------------------------------------------------------------------------


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_a_hanging_redis_costs_a_call_at_most_the_timeout_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="resilience")
    server = SilentServer()
    store = RedisStore(f"redis://127.0.0.1:{server.port}/0", timeout=0.5, retry_interval=60.0)
    bucket = Bucket("b", rate=10.0, capacity=2.0)
    timings = []
    waits = []
    for _ in range(3):
        started = time.monotonic()
        waits.append(store.take([bucket], 1.0, 0.0))
        store.incr("c", 1.0, 10.0, 0.0)
        timings.append(time.monotonic() - started)
    # A call waiting on the stalled round trip takes the store's timeout (0.5 s)
    # or more; a local one a millisecond or so, a loaded machine's pause at most.
    assert max(timings) < 5.0
    assert sorted(timings)[1] < 0.25  # then no call waits: the round trip is stalled
    assert waits == [0.0, 0.0, pytest.approx(0.1)]  # paced locally
    assert store.incr("c", 1.0, 10.0, 0.0) == 4.0
    deadline = time.monotonic() + 5.0
    while not store.degraded:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # This store's warnings only: another test's store may log in this window.
    ours = f"127.0.0.1:{server.port}"
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and ours in r.getMessage()]
    assert len(warned) == 1
    store.close()
    server.close()


def test_a_dead_redis_leaves_every_value_call_local_and_prompt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="resilience")
    with running_redis() as server:
        store = RedisStore(server.url, retry_interval=60.0)
        store.set("v", 1.0, 10.0, 0.0)
        assert store.sync()
        server.stop()
        started = time.monotonic()
        for _ in range(100):
            store.incr("c", 1.0, 10.0, 0.0)
            store.get_many(["v", "c"], 0.0)
        assert time.monotonic() - started < 0.1
        store.sync(timeout=1.0)
        assert store.degraded
        assert store.get("c", 0.0) == 100.0
        assert store.get("v", 0.0) == 1.0
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    store.close()


# --- fork -------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_its_own_thread_and_no_leased_tokens(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    prefix = _prefix()
    store = RedisStore(redis_url, prefix=prefix, lease=60.0)
    bucket = Bucket("b", rate=0.5, capacity=20.0)
    assert store.take([bucket], 1.0, 0.0) == 0.0  # the parent leases all 20 tokens
    store.incr("n", 1.0, 60.0, 0.0)
    assert store.sync()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            # the parent's slots are not the child's: the bucket is empty for it
            ok = store.take([bucket], 1.0, 0.0, max_wait=0.0) > 0.0
            store.incr("n", 1.0, 60.0, 0.0)
            ok = ok and store.sync(timeout=2.0) and store.get("n", 0.0) == 2.0
            code = 0 if ok else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.incr("n", 1.0, 60.0, 0.0)
    assert store.sync()
    assert store.get("n", 0.0) == 3.0
    assert float(raw.get(prefix + "n") or 0) == 3.0
    store.close()
    raw.close()


# --- a Redis Cluster ---------------------------------------------------------------------------


def test_a_cluster_store_shares_values_leases_and_holds_across_slots() -> None:
    from redis.cluster import RedisCluster

    with running_redis_cluster() as cluster:
        client = RedisCluster(host="127.0.0.1", port=cluster.port)
        prefix = _prefix()
        here = RedisStore(client, prefix=prefix)
        there = RedisStore(client, prefix=prefix)
        limits = [
            [Bucket(f"rate:{{key{i}}}:1", 10.0, 2.0), Bucket(f"rate:{{key{i}}}:60", 1.0, 2.0)]
            for i in range(6)  # several hash slots, on several nodes
        ]
        for buckets in limits:
            assert here.take(buckets, 1.0, 0.0) == 0.0
        here.incr("retry-budget", -1.0, 60.0, 0.0, initial=10.0, low=0.0, high=10.0)
        here.set("breaker:{api|eu}:open", 1.0, 60.0, 0.0)
        here.hold(limits[0], 1.0, 0.0)
        assert here.sync()
        assert not here.degraded
        there.get_many(["breaker:{api|eu}:open", "breaker:{api|eu}:trip"], 0.0)
        there.get("retry-budget", 0.0)
        assert there.sync()
        assert there.get("breaker:{api|eu}:open", 0.0) == 1.0
        assert there.get("retry-budget", 0.0) == 9.0
        assert 0.5 < there.take(limits[0], 1.0, 0.0, max_wait=-1.0) <= 1.0  # held
        assert there.take(limits[1], 1.0, 0.0, max_wait=-1.0) == 0.0
        assert not there.degraded
        here.close()
        there.close()
        client.close()


def test_threads_using_many_keys_while_the_store_syncs_lose_no_change(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    prefix = _prefix()
    store = RedisStore(redis_url, prefix=prefix, sync_interval=0.001)
    errors: list[BaseException] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            errors.append(args.exc_value)

    threading.excepthook = hook

    def work(n: int) -> None:
        for i in range(500):
            key = f"k{(n + i) % 40}"
            store.incr(key, 1.0, 60.0, 0.0)
            store.get_many([key, f"other{i % 7}"], 0.0)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.sync()
    finally:
        threading.excepthook = previous
    assert errors == []
    assert sum(float(raw.get(f"{prefix}k{i}") or 0) for i in range(40)) == 2000.0
    assert sum(store.get(f"k{i}", 0.0) or 0.0 for i in range(40)) == 2000.0
    store.close()
    raw.close()
