"""FaultMix and VendorSimulator.serve_faults: random vendor faults from Python."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import random
import re
from collections.abc import Mapping
from typing import Any

import pytest

from benchmarks._redis import free_port
from resilience.testing import FaultMix, Reply, Served, VendorSimulator, _plugin
from resilience.testing._routes import ROUTES

# The fixture of the pytest plugin, whether or not its entry point is installed.
vendor_simulator = _plugin.vendor_simulator

# --- FaultMix: validation ------------------------------------------------------------------

BAD_MIXES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"server_error": 1.5}, ValueError, "server_error must be between 0 and 1, got 1.5"),
    ({"rate_limited": -0.1}, ValueError, "rate_limited must be between 0 and 1"),
    ({"slow": float("nan")}, ValueError, "slow must be between 0 and 1, got nan"),
    ({"slow": True}, TypeError, "slow must be a number between 0 and 1, not bool"),
    ({"server_error": "0.5"}, TypeError, "server_error must be a number"),
    ({"server_error_status": 404}, ValueError, "server_error_status must be between 500 and 599"),
    ({"server_error_status": 503.0}, TypeError, "server_error_status must be an int"),
    ({"retry_after": -1}, ValueError, "retry_after must be a finite number of seconds >= 0"),
    ({"retry_after": float("inf")}, ValueError, "retry_after must be a finite number"),
    ({"slow_seconds": float("nan")}, ValueError, "slow_seconds must be a finite number"),
    ({"tail": 1.01}, ValueError, "tail must be between 0 and 1, got 1.01"),
    ({"tail": "2%"}, TypeError, "tail must be a number between 0 and 1, not str"),
    ({"tail_seconds": -0.2}, ValueError, "tail_seconds must be a finite number of seconds >= 0"),
    ({"capacity": {"": 0.5}}, ValueError, "capacity has an empty region name"),
    ({"capacity": {"  ": 0.5}}, ValueError, "capacity has an empty region name"),
    ({"capacity": {" eu": 0.5}}, ValueError, "capacity has a region name with spaces"),
    ({"capacity": {1: 0.5}}, TypeError, "capacity must name a region with a str"),
    ({"capacity": {"eu-west": 2}}, ValueError, "capacity['eu-west'] must be between 0 and 1"),
    ({"capacity": [("eu-west", 0.5)]}, TypeError, "capacity must map regions to shares"),
    (
        {"server_error": 0.5, "rate_limited": 0.3, "slow": 0.3},
        ValueError,
        "the shares add up to 1.1 (server_error=0.5 + rate_limited=0.3 + slow=0.3)",
    ),
    (
        {"server_error": 0.6, "capacity": {"eu": 0.1, "us": 0.5}},
        ValueError,
        "the shares add up to 1.1 (server_error=0.6 + capacity['us']=0.5)",
    ),
    (
        {"slow": 0.5, "tail": 0.6},
        ValueError,
        "the shares add up to 1.1 (slow=0.5 + tail=0.6)",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_MIXES, ids=[m for *_, m in BAD_MIXES])
def test_a_bad_value_is_refused_naming_its_field(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        FaultMix(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"server_error": 1},
        {"server_error": 0.1, "rate_limited": 0.2, "slow": 0.7},
        {"server_error": 0.1, "slow": 0.2, "tail": 0.7},
        {"server_error": 0.5, "capacity": {"eu-west": 0.5, "us-east": 0.5}},
        {"retry_after": None},
        {"retry_after": 0, "slow_seconds": 0},
        {"server_error_status": 500},
        {"server_error_status": 599},
    ],
)
def test_shares_that_one_request_can_meet_may_add_up_to_1(kwargs: dict[str, Any]) -> None:
    mix = FaultMix(**kwargs)
    assert sum(share for _, share in mix.bands()) <= 1


def test_a_mix_is_a_value() -> None:
    capacity = {"eu-west": 0.5}
    mix = FaultMix(server_error=0.25, capacity=capacity)
    capacity["eu-west"] = 0.9  # the mix keeps its own copy
    assert mix.capacity == {"eu-west": 0.5}
    with pytest.raises(TypeError):
        mix.capacity["us-east"] = 0.1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        mix.slow = 0.5  # type: ignore[misc]
    same = FaultMix(capacity={"eu-west": 0.5}, server_error=0.25)
    assert mix == same
    assert hash(mix) == hash(same)
    assert dataclasses.replace(mix, slow=0.25) == FaultMix(
        0.25, slow=0.25, capacity={"eu-west": 0.5}
    )
    with pytest.raises(ValueError, match=r"the shares add up to 1\.25"):
        dataclasses.replace(mix, slow=0.5)


def test_shares_are_stored_as_floats() -> None:
    mix = FaultMix(server_error=1, retry_after=2, slow_seconds=1)
    assert [type(v) for v in (mix.server_error, mix.retry_after, mix.slow_seconds)] == [float] * 3


# --- FaultMix: drawing -----------------------------------------------------------------------

# Edges exact in binary: 0.125, 0.375, 0.625, 0.875.
MIX = FaultMix(server_error=0.125, rate_limited=0.25, slow=0.25, capacity={"eu-west": 0.25})


@pytest.mark.parametrize(
    ("draw", "vendor", "region", "fault"),
    [
        (0.0, "gameye", "eu-west", "5xx"),
        (0.1249, "8bitedge", None, "5xx"),
        (0.125, "playwave", None, "429"),
        (0.3749, "gameye", None, "429"),
        (0.375, "gameye", "eu-west", "slow"),
        (0.6249, "8bitedge", None, "slow"),
        (0.625, "gameye", "eu-west", "420"),
        (0.8749, "gameye", "eu-west", "420"),
        (0.875, "gameye", "eu-west", "normal"),
        (0.625, "gameye", "us-east", "normal"),
        (0.625, "gameye", "EU-WEST", "normal"),
        (0.625, "gameye", None, "normal"),
        (0.625, "8bitedge", "eu-west", "normal"),
        (0.625, "playwave", "eu-west", "normal"),
        (0.0, None, "eu-west", "normal"),
        (0.9999, "gameye", "eu-west", "normal"),
    ],
)
def test_a_draw_falls_into_one_band(
    draw: float, vendor: str | None, region: str | None, fault: str
) -> None:
    assert MIX.pick(draw, vendor, region) == fault


@pytest.mark.parametrize(
    ("draw", "fault"),
    [(0.2499, "slow"), (0.25, "tail"), (0.4999, "tail"), (0.5, "420"), (0.75, "normal")],
)
def test_the_tail_band_comes_after_the_slow_band(draw: float, fault: str) -> None:
    mix = FaultMix(slow=0.25, tail=0.25, capacity={"eu-west": 0.25})
    assert mix.pick(draw, "gameye", "eu-west") == fault


@pytest.mark.parametrize(
    ("draw", "factor"),
    [(0.0, 1.0), (0.5, 2**0.5), (0.75, 2.0), (0.96, 5.0), (0.99, 10.0), (0.999999, 10.0)],
)
def test_a_tail_wait_is_a_pareto_draw_from_tail_seconds_capped_at_ten_times(
    draw: float, factor: float
) -> None:
    """P(wait > k * tail_seconds) = 1/k**2, so the draw 1 - 1/k**2 waits k times."""
    assert FaultMix(tail_seconds=0.2).tail_wait(draw) == pytest.approx(0.2 * factor)


@pytest.mark.parametrize(
    ("mix", "fault", "expected"),
    [
        (FaultMix(), "5xx", Reply.error(503)),
        (FaultMix(server_error_status=502), "5xx", Reply.error(502)),
        (FaultMix(), "429", Reply.rate_limited(retry_after="1")),
        (FaultMix(retry_after=1.5), "429", Reply.rate_limited(retry_after="1.5")),
        (FaultMix(retry_after=0.05), "429", Reply.rate_limited(retry_after="0.05")),
        (FaultMix(retry_after=0), "429", Reply.rate_limited(retry_after="0")),
        (FaultMix(retry_after=None), "429", Reply.rate_limited(retry_after=None)),
        (FaultMix(slow_seconds=0.5), "slow", Reply.slow(0.5)),
        (FaultMix(tail_seconds=0.5), "tail", Reply.slow(0.5)),
        (FaultMix(), "420", Reply.capacity()),
        (FaultMix(), "normal", None),
    ],
)
def test_each_fault_is_carried_out_by_a_reply(
    mix: FaultMix, fault: Any, expected: Reply | None
) -> None:
    assert mix.reply(fault) == expected


def test_a_tail_reply_waits_the_wait_of_its_own_draw() -> None:
    mix = FaultMix(tail_seconds=0.1)
    assert mix.reply("tail", 0.75) == Reply.slow(mix.tail_wait(0.75))


@pytest.mark.parametrize(
    ("mix", "text"),
    [
        (FaultMix(), "no faults"),
        (
            FaultMix(server_error=0.1, rate_limited=0.05, retry_after=1.5),
            "5xx 10% (503), 429 5% (Retry-After 1.5)",
        ),
        (FaultMix(rate_limited=1, retry_after=None), "429 100% (no Retry-After)"),
        (
            FaultMix(capacity={"eu-west": 0.5, "us-east": 0}, slow=0.02, slow_seconds=2),
            "420 eu-west 50%, slow 2% (2 s)",
        ),
        (FaultMix(tail=0.02), "tail 2% (0.2 s to 2 s)"),
    ],
)
def test_describe_names_each_fault_served(mix: FaultMix, text: str) -> None:
    assert mix.describe() == text


# --- VendorSimulator.serve_faults ---------------------------------------------------------


def _call(
    sim: VendorSimulator,
    method: str,
    path: str,
    payload: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    with contextlib.closing(conn):
        body = None if payload is None else json.dumps(payload)
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
    return (
        response.status,
        {k.lower(): v for k, v in response.getheaders()},
        json.loads(data) if data else None,
    )


def _me(sim: VendorSimulator, headers: Mapping[str, str] | None = None) -> int:
    return _call(sim, "GET", "/8bitedge/api/v1/me", headers=headers)[0]


def test_a_mix_answers_429_with_retry_after_in_each_vendor_envelope(
    vendor_simulator: VendorSimulator,
) -> None:
    sim = vendor_simulator
    sim.serve_faults(FaultMix(rate_limited=1, retry_after=2.5), seed=1)
    status, headers, body = _call(sim, "GET", "/8bitedge/api/v1/me")
    assert (status, headers["retry-after"], body["error"]["code"]) == (
        429,
        "2.5",
        "rate_limit_exceeded",
    )
    assert body["error"]["details"] == {"window": "minute", "limit": 120}
    status, headers, body = _call(sim, "POST", "/playwave/heartbeat", {"sessionId": "s"})
    assert (status, headers["retry-after"], body["error"]["code"]) == (429, "2.5", "RATE_LIMITED")
    status, headers, body = _call(sim, "GET", "/gameye/session")
    assert (status, headers["retry-after"], body["statusCode"]) == (429, "2.5", 429)
    assert _call(sim, "GET", "/ping")[0] == 200
    assert sim.count_fault("429") == 3
    assert sim.count_fault() == 3


def test_a_mix_applies_after_fail_all_and_scripts(vendor_simulator: VendorSimulator) -> None:
    sim = vendor_simulator
    sim.serve_faults(FaultMix(server_error=1))
    sim.script("k", [Reply.error(418)])
    sim.script_route("GET", "/8bitedge/api/v1/me", [Reply.ok(status=202)])
    assert _me(sim, {"X-Sim-Key": "k"}) == 418
    assert _me(sim) == 202
    assert _me(sim, {"X-Sim-Key": "k"}) == 503  # the script is used up
    assert _me(sim) == 503
    sim.fail_all(Reply.error(504))
    assert _me(sim) == 504
    sim.fail_all(None)
    assert _me(sim) == 503
    assert sim.count_fault("5xx") == 3


def test_the_rate_limit_comes_before_the_mix(vendor_simulator: VendorSimulator) -> None:
    sim = vendor_simulator
    sim.serve_faults(FaultMix(server_error=1))
    sim.enforce_rate_limit(1, per=60)
    assert [_me(sim), _me(sim)] == [503, 429]
    assert sim.count_fault() == 1


def test_420_only_for_gameye_requests_for_the_region(vendor_simulator: VendorSimulator) -> None:
    sim = vendor_simulator
    sim.serve_faults(FaultMix(capacity={"eu-west": 1}))
    eu = {"id": "a", "location": "eu-west", "image": "arena"}
    status, _, body = _call(sim, "POST", "/gameye/session", eu)
    assert (status, body["code"]) == (420, "CAPACITY_UNAVAILABLE")
    assert _call(sim, "POST", "/gameye/session", {**eu, "location": "us-east"})[0] == 201
    assert _call(sim, "GET", "/gameye/session", headers={"X-Region": "eu-west"})[0] == 420
    assert _me(sim, {"X-Region": "eu-west"}) == 200
    assert (sim.count_fault("420"), sim.count_fault("normal")) == (2, 2)


def test_slow_answers_are_normal_answers_after_the_wait() -> None:
    served: list[Served] = []
    with VendorSimulator(on_served=served.append) as sim:
        sim.serve_faults(FaultMix(slow=1, slow_seconds=0.2))
        assert _me(sim) == 200
    assert served[0].fault == "slow"
    assert served[0].seconds >= 0.2


def test_tail_answers_are_normal_answers_after_a_wait_drawn_for_each() -> None:
    """Each tail answer waits what the request's second draw of the seeded sequence gives."""
    served: list[Served] = []
    mix = FaultMix(tail=1, tail_seconds=0.002)
    with VendorSimulator(on_served=served.append) as sim:
        sim.serve_faults(mix, seed=3)
        assert [_me(sim) for _ in range(3)] == [200, 200, 200]
    draws = random.Random(3)
    waits = []
    for _ in range(3):
        draws.random()  # the band
        waits.append(mix.tail_wait(draws.random()))
    assert len(set(waits)) == 3
    assert [s.fault for s in served] == ["tail"] * 3
    assert all(s.seconds >= wait for s, wait in zip(served, waits, strict=True))


def test_a_mix_without_a_tail_draws_once_per_request() -> None:
    """The tail's second draw leaves the sequences of other mixes as their seeds gave them."""
    mix = FaultMix(server_error=0.5, slow=0.25, slow_seconds=0)
    draws = random.Random(4)
    expected = [
        {"5xx": 503, "slow": 200, "normal": 200}[mix.pick(draws.random(), "8bitedge", None)]
        for _ in range(20)
    ]
    with VendorSimulator(record=False) as sim:
        sim.serve_faults(mix, seed=4)
        assert [_me(sim) for _ in range(20)] == expected


def _sequence(seed: int | None, count: int = 40) -> list[int]:
    with VendorSimulator(record=False) as sim:
        sim.serve_faults(FaultMix(server_error=0.3, rate_limited=0.3), seed=seed)
        return [_me(sim) for _ in range(count)]


def test_a_seed_gives_the_same_sequence_again() -> None:
    first = _sequence(5)
    assert set(first) == {200, 429, 503}
    assert _sequence(5) == first
    assert _sequence(6) != first


def test_serving_a_mix_again_restarts_its_sequence(vendor_simulator: VendorSimulator) -> None:
    sim = vendor_simulator
    mix = FaultMix(server_error=0.5)
    sim.serve_faults(mix, seed=9)
    first = [_me(sim) for _ in range(20)]
    sim.serve_faults(mix, seed=9)
    assert [_me(sim) for _ in range(20)] == first
    assert sim.faults is mix


def test_none_and_reset_end_the_mix(vendor_simulator: VendorSimulator) -> None:
    sim = vendor_simulator
    sim.serve_faults(FaultMix(server_error=1))
    assert _me(sim) == 503
    sim.serve_faults(None)
    assert _me(sim) == 200
    sim.serve_faults(FaultMix(server_error=1))
    sim.reset()
    assert sim.faults is None
    assert sim.count_fault() == 0
    assert _me(sim) == 200


@pytest.mark.parametrize(
    ("mix", "seed", "message"),
    [
        ({"server_error": 1}, None, "mix must be a FaultMix or None, not dict"),
        (FaultMix(), "7", "seed must be an int or None, not str"),
        (FaultMix(), True, "seed must be an int or None, not bool"),
    ],
)
def test_serve_faults_checks_its_arguments(
    vendor_simulator: VendorSimulator, mix: Any, seed: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        vendor_simulator.serve_faults(mix, seed=seed)


def test_on_served_reports_each_answer_and_what_chose_it() -> None:
    served: list[Served] = []
    with VendorSimulator(on_served=served.append) as sim:
        sim.serve_faults(FaultMix(server_error=1))
        sim.script("k", [Reply.drop()])
        _me(sim)
        with pytest.raises((http.client.HTTPException, OSError)):
            _me(sim, {"X-Sim-Key": "k"})
        sim.enforce_rate_limit(1, per=60)
        _me(sim)
        _call(sim, "GET", "/ping")  # over the limit
    assert [(s.method, s.path, s.status, s.source, s.fault) for s in served] == [
        ("GET", "/8bitedge/api/v1/me", 503, "mix", "5xx"),
        ("GET", "/8bitedge/api/v1/me", None, "script", None),
        ("GET", "/8bitedge/api/v1/me", 503, "mix", "5xx"),
        ("GET", "/ping", 429, "rate_limit", None),
    ]


def test_an_on_served_error_does_not_change_the_answer() -> None:
    def broken(served: Served) -> None:
        raise RuntimeError("the log is gone")

    with VendorSimulator(on_served=broken) as sim:
        status, _, body = _call(sim, "GET", "/ping")
    assert (status, body) == (200, {"ok": True})


# --- host and port ------------------------------------------------------------------------


def test_a_simulator_listens_on_the_port_it_is_given() -> None:
    port = free_port()
    with VendorSimulator(port=port) as sim:
        assert sim.url == f"http://127.0.0.1:{port}"
        assert _call(sim, "GET", "/ping")[0] == 200


def test_a_simulator_listens_on_ipv6_loopback() -> None:
    try:
        sim = VendorSimulator(host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with contextlib.closing(http.client.HTTPConnection("::1", sim.port, timeout=10)) as conn:
        try:
            assert sim.url == f"http://[::1]:{sim.port}"
            conn.request("GET", "/ping")
            assert conn.getresponse().status == 200
        finally:
            sim.stop()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": -1}, "port must be an int from 0 to 65535, got -1"),
        ({"port": 65536}, "port must be an int from 0 to 65535"),
        ({"port": "80"}, "port must be an int from 0 to 65535"),
        ({"host": ""}, "host must be a non-empty str"),
    ],
)
def test_a_bad_host_or_port_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VendorSimulator(**kwargs)


# --- the routes documented ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in ROUTES])
def test_every_documented_route_is_served(
    vendor_simulator: VendorSimulator, method: str, path: str
) -> None:
    sim = vendor_simulator
    status, _, body = _call(sim, method, path.replace("{id}", "nope"), {})
    not_routed = status == 404 and "No route for" in json.dumps(body)
    assert not not_routed
    assert f"{method:<6} {path}" in (VendorSimulator.__doc__ or "")


def test_an_undocumented_route_is_not_served(vendor_simulator: VendorSimulator) -> None:
    status, _, body = _call(vendor_simulator, "GET", "/8bitedge/api/v1/games")
    assert status == 404
    assert "No route for" in body["error"]["message"]
