"""The three shells against the embedded simulator, over real loopback sockets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests

from resilience import Category
from resilience.regions import Header, HostMap, JsonField, QueryParam
from resilience.testing import Reply, VendorSimulator
from tests._clients import SHELLS, Outcome
from tests.conftest import RecordingSleep

Shell = Callable[..., Outcome]


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> Shell:
    return SHELLS[request.param]


@pytest.fixture
def sim() -> Iterator[VendorSimulator]:
    with VendorSimulator() as simulator:
        yield simulator


def _policy(sleep: RecordingSleep, **extra: Any) -> dict[str, Any]:
    return {"sleep": sleep, "jitter": "none", "backoff_initial": 0.01, **extra}


def _key() -> str:
    return uuid.uuid4().hex


def test_transient_503s_are_retried_until_success(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.error(503), Reply.error(503)])
    out = shell(
        "GET", sim.base("8bitedge") + "/api/v1/me", _policy(sleep), headers={"X-Sim-Key": key}
    )
    assert out.status == 200
    assert [a.status for a in out.attempts] == [503, 503, 200]
    assert sleep.calls == [0.01, 0.02]
    assert sim.count(key=key) == 3


def test_rate_limit_waits_exactly_retry_after(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.rate_limited(retry_after=0.05)] * 2)
    out = shell(
        "GET", sim.base("8bitedge") + "/api/v1/me", _policy(sleep), headers={"X-Sim-Key": key}
    )
    assert out.status == 200
    assert sleep.calls == [0.05, 0.05]


def test_permanent_4xx_is_returned_after_one_request(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.error(401)])
    out = shell(
        "GET", sim.base("8bitedge") + "/api/v1/me", _policy(sleep), headers={"X-Sim-Key": key}
    )
    assert out.status == 401
    assert sim.count(key=key) == 1
    assert sleep.calls == []


def test_idempotency_conflict_is_retried_after_conflict_delay(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.error(409, "idempotency_conflict")])
    out = shell(
        "POST",
        sim.base("8bitedge") + "/api/v1/games/batch",
        _policy(sleep, conflict_delay=0.03),
        json={"items": [1]},
        headers={"X-Sim-Key": key, "Idempotency-Key": "k-1"},
    )
    assert out.status == 200
    assert sleep.calls == [0.03]


def test_dropped_connection_on_get_is_retried(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.drop()])
    out = shell(
        "GET", sim.base("8bitedge") + "/api/v1/me", _policy(sleep), headers={"X-Sim-Key": key}
    )
    assert out.status == 200
    assert out.attempts[0].error is not None
    assert sim.count(key=key) == 2


def test_dropped_connection_on_post_without_key_is_not_repeated(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.drop()])
    out = shell(
        "POST",
        sim.base("playwave") + "/heartbeat",
        _policy(sleep),
        json={"sessionId": "s"},
        headers={"X-Sim-Key": key},
    )
    assert out.status is None
    assert isinstance(out.error, (httpx.HTTPError, requests.RequestException))
    assert sim.count(key=key) == 1


def test_gameye_session_created_before_a_dropped_answer_is_already_done(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.drop_after_processing()])
    body = {"id": str(uuid.uuid4()), "location": "eu-west", "image": "arena"}
    out = shell(
        "POST",
        sim.base("gameye") + "/session",
        _policy(sleep, vendor="gameye"),
        json=body,
        headers={"X-Sim-Key": key},
    )
    assert out.status == 409
    last = out.attempts[-1].classification
    assert last is not None
    assert last.category is Category.ALREADY_DONE


def test_persistent_connection_errors_raise_the_librarys_own_exception(
    shell: Shell, sleep: RecordingSleep
) -> None:
    with VendorSimulator() as gone:
        url = gone.url + "/ping"
    out = shell("GET", url, _policy(sleep, max_attempts=3))
    assert isinstance(out.error, (httpx.ConnectError, requests.ConnectionError))
    assert len(sleep.calls) == 2


def test_huge_error_body_is_returned_whole(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.huge(3_000_000, status=500)], repeat=True)
    out = shell(
        "GET",
        sim.base("8bitedge") + "/api/v1/me",
        _policy(sleep, max_attempts=2),
        headers={"X-Sim-Key": key},
    )
    assert out.status == 500
    assert len(out.body) == 3_000_000
    assert sim.count(key=key) == 2


# -- region failover -----------------------------------------------------------


def test_capacity_fails_over_by_json_field(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.capacity(region="eu-west", retry_after=0.05)], repeat=True)
    body = {"id": str(uuid.uuid4()), "location": "eu-west", "image": "arena", "env": {"a": 1}}
    out = shell(
        "POST",
        sim.base("gameye") + "/session",
        _policy(sleep, regions=["eu-west", "us-east"], region_locator=JsonField("location")),
        json=body,
        headers={"X-Sim-Key": key},
    )
    assert out.status == 201
    assert [a.region for a in out.attempts] == ["eu-west", "eu-west", "us-east"]
    assert sleep.calls == [0.05]
    sent = [r for r in sim.received if r.key == key]
    first, last = json.loads(sent[0].body), json.loads(sent[-1].body)
    assert last == {**first, "location": "us-east"}


def test_rewritten_body_differs_from_the_original_only_in_the_region(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.capacity(region="eu-west")], repeat=True)
    raw = b'{"image": "arena",  "location" : "eu-west", "id": "s-1", "nested": {"location": "x"}}'
    out = shell(
        "POST",
        sim.base("gameye") + "/session",
        _policy(sleep, regions=["eu-west", "us-east"], capacity_retries=0),
        content=raw,
        headers={"X-Sim-Key": key, "Content-Type": "application/json"},
    )
    assert out.status == 201
    sent = [r for r in sim.received if r.key == key]
    assert sent[0].body == raw
    assert sent[1].body == raw.replace(b'"eu-west"', b'"us-east"')
    assert sent[1].headers["content-length"] == str(len(sent[1].body))


def test_capacity_fails_over_by_header(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.capacity(region="eu-west")], repeat=True)
    out = shell(
        "GET",
        sim.base("gameye") + "/session",
        _policy(
            sleep,
            regions=["eu-west", "us-east"],
            region_locator=Header("X-Region"),
            capacity_retries=0,
        ),
        headers={"X-Sim-Key": key, "X-Region": "eu-west"},
    )
    assert out.status == 200
    assert [a.region for a in out.attempts] == ["eu-west", "us-east"]
    assert [r.headers["x-region"] for r in sim.received if r.key == key] == ["eu-west", "us-east"]


def test_capacity_fails_over_by_query_parameter(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.capacity(region="eu-west")], repeat=True)
    out = shell(
        "GET",
        sim.base("gameye") + "/session?region=eu-west&x=1",
        _policy(
            sleep,
            regions=["eu-west", "us-east"],
            region_locator=QueryParam("region"),
            capacity_retries=0,
        ),
        headers={"X-Sim-Key": key},
    )
    assert out.status == 200
    assert [r.query for r in sim.received if r.key == key] == [
        "region=eu-west&x=1",
        "region=us-east&x=1",
    ]


def test_capacity_fails_over_by_host_map(shell: Shell, sleep: RecordingSleep) -> None:
    with VendorSimulator() as eu, VendorSimulator() as us:
        eu.fail_all(Reply.capacity())
        hosts = HostMap({"eu-west": eu.base("gameye"), "us-east": us.base("gameye")})
        out = shell(
            "GET",
            eu.base("gameye") + "/session",
            _policy(
                sleep, regions=["eu-west", "us-east"], region_locator=hosts, capacity_retries=0
            ),
            headers={"Authorization": "Bearer t"},
        )
        assert out.status == 200
        assert eu.count() == 1
        assert us.count() == 1
        assert us.received[0].headers["authorization"] == "Bearer t"


def test_every_region_full_returns_the_last_420(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    sim.fail_all(Reply.capacity())
    out = shell(
        "POST",
        sim.base("gameye") + "/session",
        _policy(
            sleep, regions=["eu-west", "us-east", "ap-south"], capacity_retries=0, max_attempts=10
        ),
        json={"id": "s", "location": "eu-west", "image": "i"},
    )
    assert out.status == 420
    assert [a.region for a in out.attempts] == ["eu-west", "us-east", "ap-south"]


def test_deadline_stops_before_a_wait_that_would_cross_it(
    shell: Shell, sim: VendorSimulator, sleep: RecordingSleep
) -> None:
    key = _key()
    sim.script(key, [Reply.rate_limited(retry_after=5)], repeat=True)
    out = shell(
        "GET",
        sim.base("8bitedge") + "/api/v1/me",
        _policy(sleep, deadline=1.0),
        headers={"X-Sim-Key": key},
    )
    assert out.status == 429
    assert sleep.calls == []
    assert sim.count(key=key) == 1
