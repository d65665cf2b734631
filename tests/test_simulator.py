"""Tests of resilience.testing, the embedded vendor simulator, with stdlib clients only."""

from __future__ import annotations

import contextlib
import http.client
import json
import resource
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from resilience.testing import RecordedRequest, Reply, VendorSimulator, _plugin

pytest_plugins = ["pytester"]

# The fixture of the pytest plugin, made visible here whether or not the
# package's pytest11 entry point is installed.
vendor_simulator = _plugin.vendor_simulator


@pytest.fixture
def sim(vendor_simulator: VendorSimulator) -> VendorSimulator:
    """The plugin's simulator under a short name."""
    return vendor_simulator


@dataclass
class Answer:
    """A response read in full."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _connect(sim: VendorSimulator) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)


def _send(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    payload: Any = None,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    all_headers = dict(headers or {})
    if payload is not None:
        body = json.dumps(payload).encode()
        all_headers.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=all_headers)
    response = conn.getresponse()
    return Answer(response.status, response.headers, response.read())


def call(
    sim: VendorSimulator,
    method: str,
    path: str,
    payload: Any = None,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """Send one request on a fresh connection and read the answer."""
    with contextlib.closing(_connect(sim)) as conn:
        return _send(conn, method, path, payload, body=body, headers=headers)


def raw_exchange(sim: VendorSimulator, data: bytes) -> bytes:
    """Write bytes on a raw socket and read until the server closes."""
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def session_body(session_id: str = "s1", location: str = "eu-west") -> dict[str, str]:
    return {"id": session_id, "location": location, "image": "game:1"}


def playwave_session(sim: VendorSimulator) -> str:
    session_id = call(sim, "POST", "/playwave/verify", {"ott": "ott-1"}).json()["sessionId"]
    assert isinstance(session_id, str)
    return session_id


def error_code(answer: Answer) -> str:
    """Extract the machine code from any of the three vendor envelopes."""
    data = answer.json()
    code = data["code"] if "statusCode" in data else data["error"]["code"]
    assert isinstance(code, str)
    return code


# --- lifecycle -----------------------------------------------------------------------


def test_url_is_loopback_with_ephemeral_port(sim: VendorSimulator) -> None:
    assert sim.url == f"http://127.0.0.1:{sim.port}"
    assert sim.port > 0
    assert not sim.url.endswith("/")


def test_base_appends_vendor_prefix(sim: VendorSimulator) -> None:
    assert sim.base("gameye") == sim.url + "/gameye"
    assert sim.base("8bitedge") == sim.url + "/8bitedge"
    assert sim.base("playwave") == sim.url + "/playwave"


def test_base_rejects_unknown_vendor(sim: VendorSimulator) -> None:
    with pytest.raises(ValueError, match="unknown vendor"):
        sim.base("acme")


def test_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="not been started"):
        _ = VendorSimulator().url


def test_context_manager_starts_and_stops() -> None:
    with VendorSimulator() as sim:
        assert call(sim, "GET", "/ping").status == 200
    with pytest.raises(ConnectionRefusedError):
        call(sim, "GET", "/ping")


def test_start_and_stop_are_fast() -> None:
    best_start = best_stop = float("inf")
    for _ in range(3):
        sim = VendorSimulator()
        began = time.perf_counter()
        sim.start()
        started = time.perf_counter()
        sim.stop()
        stopped = time.perf_counter()
        best_start = min(best_start, started - began)
        best_stop = min(best_stop, stopped - started)
    assert best_start < 0.05
    assert best_stop < 0.05


def test_stop_is_idempotent() -> None:
    sim = VendorSimulator().start()
    sim.stop()
    sim.stop()
    VendorSimulator().stop()


def test_stop_closes_keep_alive_connections_and_leaves_no_thread() -> None:
    threads_before = threading.active_count()
    sim = VendorSimulator().start()
    conns = [_connect(sim) for _ in range(5)]
    try:
        for conn in conns:
            assert _send(conn, "GET", "/ping").status == 200
        sim.stop()
        assert threading.active_count() == threads_before
        with pytest.raises((http.client.HTTPException, OSError)):
            _send(conns[0], "GET", "/ping")
    finally:
        for conn in conns:
            conn.close()


def test_stop_interrupts_a_slow_reply() -> None:
    sim = VendorSimulator().start()
    sim.script("slow", [Reply.slow(30)])
    outcome: list[object] = []

    def client() -> None:
        try:
            outcome.append(call(sim, "GET", "/ping", headers={"X-Sim-Key": "slow"}).status)
        except (http.client.HTTPException, OSError) as exc:
            outcome.append(exc)

    worker = threading.Thread(target=client)
    worker.start()
    deadline = time.monotonic() + 5
    while sim.count(key="slow") == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    began = time.perf_counter()
    sim.stop()
    assert time.perf_counter() - began < 1.0
    worker.join(5)
    assert not worker.is_alive()
    assert outcome


def test_restart_gets_a_new_port_and_keeps_state() -> None:
    sim = VendorSimulator().start()
    try:
        assert call(sim, "POST", "/gameye/session", session_body()).status == 201
        sim.stop()
        sim.start()
        assert call(sim, "POST", "/gameye/session", session_body()).status == 409
    finally:
        sim.stop()


def test_plugin_provides_a_started_vendor_simulator_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import urllib.request

        def test_fixture(vendor_simulator):
            with urllib.request.urlopen(vendor_simulator.url + "/ping") as response:
                assert response.status == 200
        """
    )
    result = pytester.runpytest_inprocess(
        "-p",
        "no:resilience",
        "-p",
        "resilience.testing._plugin",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-p",
        "no:benchmark",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )
    result.assert_outcomes(passed=1)


# --- transport ---------------------------------------------------------------------


def test_ping_answers_ok_through_urllib(sim: VendorSimulator) -> None:
    with urllib.request.urlopen(sim.url + "/ping", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read()) == {"ok": True}


def test_keep_alive_serves_many_requests_on_one_connection(sim: VendorSimulator) -> None:
    with contextlib.closing(_connect(sim)) as conn:
        for _ in range(20):
            assert _send(conn, "GET", "/ping").body == b'{"ok":true}'
        sock = conn.sock
        assert _send(conn, "GET", "/8bitedge/api/v1/me").status == 200
        assert conn.sock is sock


def test_content_length_matches_the_body(sim: VendorSimulator) -> None:
    with contextlib.closing(_connect(sim)) as conn:
        for path in ("/ping", "/gameye/session", "/playwave/nope", "/nowhere"):
            answer = _send(conn, "GET", path)
            assert int(answer.headers["Content-Length"]) == len(answer.body)


def test_small_responses_are_not_delayed_by_nagle(sim: VendorSimulator) -> None:
    with contextlib.closing(_connect(sim)) as conn:
        began = time.perf_counter()
        for i in range(50):
            _send(conn, "POST", "/gameye/session", session_body(f"s{i}"))
        assert time.perf_counter() - began < 1.0


def test_sustains_thousands_of_requests_per_second_over_keep_alive(
    sim: VendorSimulator,
) -> None:
    with contextlib.closing(_connect(sim)) as conn:
        began = time.perf_counter()
        for _ in range(2000):
            _send(conn, "GET", "/ping")
        assert time.perf_counter() - began < 4.0
    assert sim.count(path="/ping") == 2000


def test_concurrent_clients_are_all_served_and_recorded(sim: VendorSimulator) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        with contextlib.closing(_connect(sim)) as conn:
            got = [_send(conn, "GET", "/ping").status for _ in range(20)]
        with lock:
            statuses.extend(got)

    workers = [threading.Thread(target=client) for _ in range(50)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert statuses == [200] * 1000
    assert sim.count() == 1000


def test_a_thousand_simultaneous_connections(sim: VendorSimulator) -> None:
    soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    total = 1000 if soft_limit < 0 or soft_limit >= 2600 else max(50, soft_limit // 3)
    request = b"GET /ping HTTP/1.1\r\nHost: sim\r\n\r\n"
    socks: list[socket.socket] = []
    try:
        for _ in range(total):
            sock = socket.create_connection(("127.0.0.1", sim.port), timeout=20)
            socks.append(sock)
        for sock in socks:
            sock.sendall(request)
        for sock in socks:
            with sock.makefile("rb") as stream:
                assert stream.readline().startswith(b"HTTP/1.1 200")
    finally:
        for sock in socks:
            sock.close()
    assert sim.count(path="/ping") == total


def test_head_request_gets_headers_only(sim: VendorSimulator) -> None:
    with contextlib.closing(_connect(sim)) as conn:
        answer = _send(conn, "HEAD", "/ping")
        assert answer.status == 200
        assert answer.headers["Content-Length"] == "11"
        assert answer.body == b""
        assert _send(conn, "GET", "/ping").body == b'{"ok":true}'


def test_chunked_request_body_is_read(sim: VendorSimulator) -> None:
    pieces = [b'{"id": "chunky", ', b'"location": "eu-west"}']
    with contextlib.closing(_connect(sim)) as conn:
        conn.request("POST", "/gameye/session", body=iter(pieces), encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 201
        assert json.loads(response.read())["id"] == "chunky"
        assert _send(conn, "GET", "/ping").status == 200
    assert sim.received[0].headers["transfer-encoding"] == "chunked"
    assert sim.received[0].body == b"".join(pieces)


def test_missing_content_length_means_an_empty_body(sim: VendorSimulator) -> None:
    data = raw_exchange(
        sim, b"POST /gameye/session HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 422 ")
    assert sim.received[0].body == b""


def test_invalid_content_length_is_a_400_and_closes(sim: VendorSimulator) -> None:
    data = raw_exchange(sim, b"POST /ping HTTP/1.1\r\nHost: sim\r\nContent-Length: ten\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in head
    assert "Content-Length" in json.loads(body)["error"]


def test_bad_chunk_size_is_a_400(sim: VendorSimulator) -> None:
    data = raw_exchange(
        sim,
        b"POST /ping HTTP/1.1\r\nHost: sim\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nab\r\n0\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 400 ")


def test_garbage_request_line_gets_a_json_400(sim: VendorSimulator) -> None:
    data = raw_exchange(sim, b"\x00\xffGARBAGE \x01 WHAT/9\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert "error" in json.loads(body)


def test_client_vanishing_mid_body_does_not_hurt_the_server(sim: VendorSimulator) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as sock:
        sock.sendall(b"POST /ping HTTP/1.1\r\nHost: sim\r\nContent-Length: 100\r\n\r\n{")
    assert call(sim, "GET", "/ping").status == 200


def test_handler_exception_becomes_a_json_500(
    sim: VendorSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(req: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sim._vendors["gameye"], "handle", explode)
    answer = call(sim, "GET", "/gameye/session")
    assert answer.status == 500
    assert answer.headers["Content-Type"] == "application/json"
    assert "boom" in answer.json()["detail"]


def test_bad_input_writes_nothing_to_stderr(
    sim: VendorSimulator, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw_exchange(sim, b"NONSENSE\r\n\r\n")
    raw_exchange(sim, b"POST /ping HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: sim\r\n")

    def explode(req: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sim._vendors["playwave"], "handle", explode)
    call(sim, "POST", "/playwave/verify", {"ott": "x"})
    call(sim, "GET", "/ping")
    assert capfd.readouterr().err == ""


# --- Gameye ------------------------------------------------------------------------


def test_gameye_create_session_answers_201_with_host_and_port(sim: VendorSimulator) -> None:
    answer = call(sim, "POST", "/gameye/session", session_body("a1", "us-east"))
    assert answer.status == 201
    data = answer.json()
    assert data["id"] == "a1"
    assert data["location"] == "us-east"
    assert data["host"] == "127.0.0.1"
    assert isinstance(data["port"], dict)


def test_gameye_duplicate_session_id_is_409_conflict(sim: VendorSimulator) -> None:
    call(sim, "POST", "/gameye/session", session_body("dup"))
    answer = call(sim, "POST", "/gameye/session", session_body("dup"))
    assert answer.status == 409
    assert answer.json()["code"] == "CONFLICT"
    assert "session already exists" in answer.json()["message"]


def test_gameye_missing_location_is_422(sim: VendorSimulator) -> None:
    answer = call(sim, "POST", "/gameye/session", {"id": "x", "image": "i"})
    assert answer.status == 422
    assert answer.json()["code"] == "INVALID_REQUEST"


def test_gameye_non_json_body_is_422(sim: VendorSimulator) -> None:
    answer = call(sim, "POST", "/gameye/session", body=b"\xff{not json")
    assert answer.status == 422


def test_gameye_delete_session_is_204_then_404(sim: VendorSimulator) -> None:
    call(sim, "POST", "/gameye/session", session_body("gone"))
    first = call(sim, "DELETE", "/gameye/session/gone")
    assert first.status == 204
    assert first.body == b""
    second = call(sim, "DELETE", "/gameye/session/gone")
    assert second.status == 404
    assert second.json()["code"] == "NOT_FOUND"


def test_gameye_list_sessions(sim: VendorSimulator) -> None:
    call(sim, "POST", "/gameye/session", session_body("one"))
    call(sim, "POST", "/gameye/session", session_body("two"))
    sessions = call(sim, "GET", "/gameye/session").json()["sessions"]
    assert [s["id"] for s in sessions] == ["one", "two"]


def test_gameye_error_envelope_has_identifier_path_and_timestamp(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.error(500)])
    data = call(sim, "POST", "/gameye/session", session_body(), headers={"X-Sim-Key": "k"}).json()
    assert data["statusCode"] == 500
    assert data["code"] == "INTERNAL_ERROR"
    assert data["message"]
    assert uuid.UUID(data["identifier"]).version == 4
    assert data["path"] == "/session"
    assert data["timestamp"].endswith("Z")


# --- 8bitedge ----------------------------------------------------------------------


def test_8bitedge_me_reports_quota(sim: VendorSimulator) -> None:
    data = call(sim, "GET", "/8bitedge/api/v1/me").json()
    assert data["organization"]
    assert data["plan"]
    assert data["quota"]["used"] >= 1
    assert data["quota"]["limit"] > data["quota"]["used"]


def test_8bitedge_every_response_carries_a_request_id(sim: VendorSimulator) -> None:
    success = call(sim, "GET", "/8bitedge/api/v1/me")
    failure = call(sim, "GET", "/8bitedge/api/v1/nope")
    assert failure.status == 404
    ids = [success.headers["X-Request-Id"], failure.headers["X-Request-Id"]]
    assert all(uuid.UUID(value).version == 4 for value in ids)
    assert ids[0] != ids[1]


def test_8bitedge_batch_returns_one_result_per_item(sim: VendorSimulator) -> None:
    answer = call(sim, "POST", "/8bitedge/api/v1/games/batch", {"items": [{"a": 1}, {"b": 2}]})
    assert answer.status == 200
    assert len(answer.json()["results"]) == 2


def test_8bitedge_batch_over_50_items_is_batch_too_large(sim: VendorSimulator) -> None:
    answer = call(sim, "POST", "/8bitedge/api/v1/games/batch", {"items": list(range(75))})
    assert answer.status == 422
    assert answer.json()["error"]["code"] == "batch_too_large"
    assert answer.json()["error"]["details"] == {"max_items": 50, "received": 75}


def test_8bitedge_batch_without_items_is_validation_failed(sim: VendorSimulator) -> None:
    answer = call(sim, "POST", "/8bitedge/api/v1/games/batch", {"things": []})
    assert answer.status == 422
    assert answer.json()["error"]["code"] == "validation_failed"


def test_8bitedge_idempotency_key_replays_the_stored_response(sim: VendorSimulator) -> None:
    headers = {"Idempotency-Key": "idem-1"}
    first = call(sim, "POST", "/8bitedge/api/v1/games/batch", {"items": [1]}, headers=headers)
    second = call(sim, "POST", "/8bitedge/api/v1/games/batch", {"items": [1]}, headers=headers)
    assert second.status == first.status == 200
    assert second.body == first.body
    assert second.headers["Idempotent-Replayed"] == "true"


def test_8bitedge_idempotency_key_reused_with_another_body_is_422(sim: VendorSimulator) -> None:
    headers = {"Idempotency-Key": "idem-2"}
    call(sim, "POST", "/8bitedge/api/v1/games/batch", {"items": [1]}, headers=headers)
    answer = call(sim, "POST", "/8bitedge/api/v1/games/batch", {"items": [2]}, headers=headers)
    assert answer.status == 422
    assert answer.json()["error"]["code"] == "idempotency_key_reuse"


# --- Playwave ----------------------------------------------------------------------


def test_playwave_verify_heartbeat_and_end(sim: VendorSimulator) -> None:
    verify = call(sim, "POST", "/playwave/verify", {"ott": "ott-1"})
    assert verify.status == 200
    assert verify.json()["success"] is True
    session_id = verify.json()["sessionId"]
    beat = call(sim, "POST", "/playwave/heartbeat", {"sessionId": session_id})
    assert beat.json() == {"success": True, "result": "OK"}
    end = call(sim, "POST", "/playwave/session/end", {"sessionId": session_id})
    assert end.json() == {"success": True}


def test_playwave_verify_without_ott_is_400_bad_request(sim: VendorSimulator) -> None:
    answer = call(sim, "POST", "/playwave/verify", {})
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "BAD_REQUEST"


def test_playwave_heartbeat_of_unknown_session_is_404(sim: VendorSimulator) -> None:
    answer = call(sim, "POST", "/playwave/heartbeat", {"sessionId": "nope"})
    assert answer.status == 404
    assert answer.json()["error"]["code"] == "SESSION_NOT_FOUND"


def test_playwave_heartbeat_after_end_is_410(sim: VendorSimulator) -> None:
    session_id = playwave_session(sim)
    call(sim, "POST", "/playwave/session/end", {"sessionId": session_id})
    answer = call(sim, "POST", "/playwave/heartbeat", {"sessionId": session_id})
    assert answer.status == 410
    assert answer.json()["error"]["code"] == "SESSION_ENDED"


def test_playwave_second_end_is_409_already_ended(sim: VendorSimulator) -> None:
    session_id = playwave_session(sim)
    call(sim, "POST", "/playwave/session/end", {"sessionId": session_id})
    answer = call(sim, "POST", "/playwave/session/end", {"sessionId": session_id})
    assert answer.status == 409
    assert answer.json()["error"]["code"] == "ALREADY_ENDED"


def test_playwave_error_envelope(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.error(503))
    data = call(sim, "POST", "/playwave/heartbeat", {"sessionId": "x"}).json()
    assert data["success"] is False
    assert data["error"]["code"] == "INTERNAL_ERROR"
    assert data["error"]["message"]
    assert data["error"]["timestamp"].endswith("Z")


# --- unknown routes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/gameye/nope", "NOT_FOUND"),
        ("/8bitedge/api/v2/nope", "not_found"),
        ("/playwave/nope", "NOT_FOUND"),
    ],
)
def test_unknown_route_under_a_vendor_prefix_is_a_vendor_404(
    sim: VendorSimulator, path: str, code: str
) -> None:
    answer = call(sim, "GET", path)
    assert answer.status == 404
    assert error_code(answer) == code


def test_unknown_path_outside_the_prefixes_is_a_generic_404(sim: VendorSimulator) -> None:
    answer = call(sim, "GET", "/elsewhere")
    assert answer.status == 404
    assert answer.json() == {"error": "not found"}


# --- scripts -----------------------------------------------------------------------


def test_key_script_is_consumed_in_order_then_normal_behaviour(sim: VendorSimulator) -> None:
    sim.script("k1", [Reply.error(503), Reply.error(502)])
    headers = {"X-Sim-Key": "k1"}
    statuses = [call(sim, "GET", "/ping", headers=headers).status for _ in range(3)]
    assert statuses == [503, 502, 200]


def test_script_without_matching_key_does_not_apply(sim: VendorSimulator) -> None:
    sim.script("k1", [Reply.error(503)])
    assert call(sim, "GET", "/ping", headers={"X-Sim-Key": "other"}).status == 200
    assert call(sim, "GET", "/ping").status == 200


def test_repeat_keeps_answering_the_last_reply(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.error(500), Reply.error(503)], repeat=True)
    headers = {"X-Sim-Key": "k"}
    statuses = [call(sim, "GET", "/ping", headers=headers).status for _ in range(4)]
    assert statuses == [500, 503, 503, 503]


def test_scripting_a_key_again_replaces_its_queue(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.error(500), Reply.error(500)])
    sim.script("k", [Reply.error(418)])
    headers = {"X-Sim-Key": "k"}
    statuses = [call(sim, "GET", "/ping", headers=headers).status for _ in range(2)]
    assert statuses == [418, 200]


def test_route_script_applies_only_to_requests_without_a_key(sim: VendorSimulator) -> None:
    sim.script_route("POST", "/gameye/session", [Reply.error(420), Reply.error(420)])
    keyed = call(sim, "POST", "/gameye/session", session_body("a"), headers={"X-Sim-Key": "z"})
    assert keyed.status == 201
    assert call(sim, "GET", "/gameye/session").status == 200
    unkeyed = call(sim, "POST", "/gameye/session", session_body("b"))
    assert unkeyed.status == 420
    assert unkeyed.json()["code"] == "CAPACITY_UNAVAILABLE"


def test_fail_all_hits_every_request_until_cleared(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.error(503))
    assert call(sim, "GET", "/ping").status == 503
    assert call(sim, "GET", "/8bitedge/api/v1/me").status == 503
    sim.fail_all(None)
    assert call(sim, "GET", "/ping").status == 200


def test_priority_is_fail_all_then_key_then_route(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.error(502)], repeat=True)
    sim.script_route("GET", "/ping", [Reply.error(504)], repeat=True)
    sim.fail_all(Reply.error(503))
    assert call(sim, "GET", "/ping", headers={"X-Sim-Key": "k"}).status == 503
    sim.fail_all(None)
    assert call(sim, "GET", "/ping", headers={"X-Sim-Key": "k"}).status == 502
    assert call(sim, "GET", "/ping").status == 504


def test_scripts_reject_non_reply_items(sim: VendorSimulator) -> None:
    with pytest.raises(TypeError, match="Reply"):
        sim.script("k", [503])  # type: ignore[list-item]


# --- replies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "status", "code"),
    [
        ("/gameye/session", 401, "UNAUTHORIZED"),
        ("/gameye/session", 403, "QUOTA_EXCEEDED"),
        ("/gameye/session", 404, "NOT_FOUND"),
        ("/gameye/session", 409, "CONFLICT"),
        ("/gameye/session", 420, "CAPACITY_UNAVAILABLE"),
        ("/gameye/session", 422, "INVALID_REQUEST"),
        ("/gameye/session", 500, "INTERNAL_ERROR"),
        ("/gameye/session", 502, "SERVICE_UNAVAILABLE"),
        ("/gameye/session", 503, "SERVICE_UNAVAILABLE"),
        ("/8bitedge/api/v1/me", 401, "unauthorized"),
        ("/8bitedge/api/v1/me", 402, "quota_exceeded"),
        ("/8bitedge/api/v1/me", 403, "insufficient_scope"),
        ("/8bitedge/api/v1/me", 404, "not_found"),
        ("/8bitedge/api/v1/me", 409, "idempotency_conflict"),
        ("/8bitedge/api/v1/me", 422, "validation_failed"),
        ("/8bitedge/api/v1/me", 429, "rate_limit_exceeded"),
        ("/8bitedge/api/v1/me", 500, "server_error"),
        ("/8bitedge/api/v1/me", 501, "not_implemented"),
        ("/8bitedge/api/v1/me", 502, "server_error"),
        ("/8bitedge/api/v1/me", 503, "server_error"),
        ("/8bitedge/api/v1/me", 504, "server_error"),
        ("/playwave/verify", 400, "BAD_REQUEST"),
        ("/playwave/verify", 401, "INVALID_API_KEY"),
        ("/playwave/verify", 404, "SESSION_NOT_FOUND"),
        ("/playwave/verify", 409, "ALREADY_ENDED"),
        ("/playwave/verify", 410, "SESSION_ENDED"),
        ("/playwave/verify", 429, "RATE_LIMITED"),
        ("/playwave/verify", 500, "INTERNAL_ERROR"),
        ("/playwave/verify", 502, "INTERNAL_ERROR"),
        ("/playwave/verify", 504, "INTERNAL_ERROR"),
    ],
)
def test_error_defaults_to_the_vendors_documented_code(
    sim: VendorSimulator, prefix: str, status: int, code: str
) -> None:
    sim.fail_all(Reply.error(status))
    answer = call(sim, "POST", prefix, {})
    assert answer.status == status
    assert error_code(answer) == code


def test_error_takes_custom_code_message_details_and_headers(sim: VendorSimulator) -> None:
    sim.fail_all(
        Reply.error(
            403,
            "account_inactive",
            "Organization disabled.",
            details={"org": "o1"},
            headers={"X-Extra": "yes"},
        )
    )
    answer = call(sim, "GET", "/8bitedge/api/v1/me")
    assert answer.status == 403
    assert answer.json() == {
        "error": {
            "code": "account_inactive",
            "message": "Organization disabled.",
            "details": {"org": "o1"},
        }
    }
    assert answer.headers["X-Extra"] == "yes"


def test_error_outside_vendor_prefixes_uses_a_generic_body(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.error(503))
    assert call(sim, "GET", "/ping").json() == {"error": "service unavailable"}


@pytest.mark.parametrize(
    ("value", "header"),
    [
        (0.05, "0.05"),
        (2, "2"),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ],
)
def test_retry_after_is_sent_verbatim(
    sim: VendorSimulator, value: float | str, header: str
) -> None:
    sim.fail_all(Reply.error(503, retry_after=value))
    assert call(sim, "GET", "/gameye/session").headers["Retry-After"] == header


def test_rate_limited_8bitedge_has_details_and_retry_after(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.rate_limited())
    answer = call(sim, "GET", "/8bitedge/api/v1/me")
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "0.05"
    assert answer.json()["error"]["code"] == "rate_limit_exceeded"
    assert answer.json()["error"]["details"] == {"window": "minute", "limit": 120}


def test_rate_limited_playwave_uses_its_envelope(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.rate_limited(retry_after=1))
    answer = call(sim, "POST", "/playwave/heartbeat", {"sessionId": "x"})
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "RATE_LIMITED"


def test_capacity_without_region_always_answers_420(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.capacity(retry_after=0.01))
    answer = call(sim, "POST", "/gameye/session", session_body())
    assert answer.status == 420
    assert answer.headers["Retry-After"] == "0.01"


def test_capacity_applies_only_to_its_region_from_the_body(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.capacity("eu-west"))
    assert call(sim, "POST", "/gameye/session", session_body("a", "eu-west")).status == 420
    assert call(sim, "POST", "/gameye/session", session_body("b", "us-east")).status == 201


def test_region_is_read_from_header_then_query(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.when("eu-west", Reply.error(503)))
    assert call(sim, "GET", "/ping", headers={"X-Region": "eu-west"}).status == 503
    assert call(sim, "GET", "/ping?region=eu-west").status == 503
    assert call(sim, "GET", "/ping?region=us-east").status == 200
    assert call(sim, "GET", "/ping").status == 200


def test_when_not_matching_waits_in_the_script_by_default(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.capacity("eu-west")])
    headers = {"X-Sim-Key": "k"}
    other = call(sim, "POST", "/gameye/session", session_body("a", "us-east"), headers=headers)
    first = call(sim, "POST", "/gameye/session", session_body("b", "eu-west"), headers=headers)
    second = call(sim, "POST", "/gameye/session", session_body("b", "eu-west"), headers=headers)
    assert [other.status, first.status, second.status] == [201, 420, 201]


def test_when_with_consume_is_used_up_by_a_non_matching_request(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.capacity("eu-west", consume=True)])
    headers = {"X-Sim-Key": "k"}
    other = call(sim, "POST", "/gameye/session", session_body("a", "us-east"), headers=headers)
    then = call(sim, "POST", "/gameye/session", session_body("b", "eu-west"), headers=headers)
    assert [other.status, then.status] == [201, 201]


def test_business_reason_on_verify(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.business(reason="OTT_EXPIRED"))
    answer = call(sim, "POST", "/playwave/verify", {"ott": "x"})
    assert answer.status == 200
    assert answer.json() == {"success": True, "reason": "OTT_EXPIRED"}


def test_business_result_on_heartbeat(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.business(result="CHARGE_EXHAUSTED"))
    answer = call(sim, "POST", "/playwave/heartbeat", {"sessionId": "x"})
    assert answer.status == 200
    assert answer.json() == {"success": True, "result": "CHARGE_EXHAUSTED"}


def test_drop_closes_the_connection_without_an_answer(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.drop()])
    with pytest.raises(http.client.RemoteDisconnected):
        call(sim, "GET", "/ping", headers={"X-Sim-Key": "k"})
    assert sim.count(key="k") == 1


def test_drop_after_processing_creates_the_session_so_a_retry_conflicts(
    sim: VendorSimulator,
) -> None:
    sim.script("k", [Reply.drop_after_processing()])
    headers = {"X-Sim-Key": "k"}
    with pytest.raises(http.client.RemoteDisconnected):
        call(sim, "POST", "/gameye/session", session_body("once"), headers=headers)
    retry = call(sim, "POST", "/gameye/session", session_body("once"), headers=headers)
    assert retry.status == 409
    assert retry.json()["code"] == "CONFLICT"


def test_drop_after_processing_then_idempotent_retry_replays(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.drop_after_processing()])
    headers = {"X-Sim-Key": "k", "Idempotency-Key": "idem-drop"}
    path = "/8bitedge/api/v1/games/batch"
    with pytest.raises(http.client.RemoteDisconnected):
        call(sim, "POST", path, {"items": [1]}, headers=headers)
    retry = call(sim, "POST", path, {"items": [1]}, headers=headers)
    assert retry.status == 200
    assert retry.headers["Idempotent-Replayed"] == "true"


def test_slow_waits_then_answers_normally(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.slow(0.005)])
    began = time.perf_counter()
    answer = call(sim, "GET", "/ping", headers={"X-Sim-Key": "k"})
    assert time.perf_counter() - began >= 0.005
    assert answer.json() == {"ok": True}


def test_slow_then_answers_the_given_reply(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.slow(0.001, Reply.error(504))])
    assert call(sim, "GET", "/ping", headers={"X-Sim-Key": "k"}).status == 504


def test_huge_streams_a_body_of_the_exact_size(sim: VendorSimulator) -> None:
    size = 5 * 64 * 1024 + 123
    sim.fail_all(Reply.huge(size))
    with contextlib.closing(_connect(sim)) as conn:
        answer = _send(conn, "GET", "/gameye/session")
        assert answer.status == 500
        assert len(answer.body) == size == int(answer.headers["Content-Length"])
        assert answer.headers["Content-Type"].startswith("text/plain")
        with pytest.raises(ValueError):  # noqa: PT011 - any JSON decoding error
            json.loads(answer.body)
        sim.fail_all(None)
        assert _send(conn, "GET", "/ping").status == 200


def test_raw_sends_exactly_the_given_bytes(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.raw(502, b'\xff\xfe{"error": {"co'))
    answer = call(sim, "GET", "/8bitedge/api/v1/me")
    assert answer.status == 502
    assert answer.body == b'\xff\xfe{"error": {"co'


def test_raw_with_a_larger_content_length_truncates_the_body(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.raw(500, b'{"err', headers={"Content-Length": "100"}))
    with contextlib.closing(_connect(sim)) as conn:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead):
            response.read()


def test_ok_with_a_body_sends_it(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.ok({"custom": 1}, status=202, headers={"X-Extra": "1"}))
    answer = call(sim, "POST", "/gameye/session", session_body())
    assert answer.status == 202
    assert answer.json() == {"custom": 1}
    assert answer.headers["X-Extra"] == "1"


def test_ok_without_a_body_runs_the_normal_behaviour(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.error(503), Reply.ok()])
    headers = {"X-Sim-Key": "k"}
    call(sim, "POST", "/gameye/session", session_body("ok1"), headers=headers)
    answer = call(sim, "POST", "/gameye/session", session_body("ok1"), headers=headers)
    assert answer.status == 201
    assert answer.json()["id"] == "ok1"


def test_ok_turns_a_normal_failure_into_a_minimal_success(sim: VendorSimulator) -> None:
    sim.fail_all(Reply.ok())
    answer = call(sim, "POST", "/playwave/heartbeat", {"sessionId": "unknown"})
    assert answer.status == 200
    assert answer.json() == {"success": True}


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Reply.error(99), ValueError, "status"),
        (lambda: Reply.error(1000), ValueError, "status"),
        (lambda: Reply.slow(-1), ValueError, "seconds"),
        (lambda: Reply.huge(-1), ValueError, "size"),
        (lambda: Reply.error(503, headers={"X-Bad": "a\r\nb"}), ValueError, "CR"),
        (lambda: Reply.error(503, headers={"Bad Name": "x"}), ValueError, "header name"),
        (lambda: Reply.ok({"x": object()}), TypeError, "JSON"),
        (lambda: Reply.raw(200, "text"), TypeError, "bytes"),
    ],
)
def test_reply_constructors_validate_their_arguments(
    make: Callable[[], Reply], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make()


def test_reply_is_frozen_and_has_a_short_repr() -> None:
    reply = Reply.error(503, retry_after=1)
    assert repr(reply) == "Reply.error(status=503, retry_after='1')"
    with pytest.raises(AttributeError):
        reply.status = 500  # type: ignore[misc]


# --- recording ---------------------------------------------------------------------


def test_received_records_each_request(sim: VendorSimulator) -> None:
    before = time.monotonic()
    call(
        sim,
        "POST",
        "/gameye/session?dry=1",
        session_body("rec"),
        headers={"X-Sim-Key": "k9", "X-Custom": "v"},
    )
    after = time.monotonic()
    [seen] = sim.received
    assert isinstance(seen, RecordedRequest)
    assert seen.method == "POST"
    assert seen.path == "/gameye/session"
    assert seen.query == "dry=1"
    assert seen.headers["x-custom"] == "v"
    assert seen.json() == session_body("rec")
    assert seen.key == "k9"
    assert before <= seen.at <= after


def test_received_keeps_arrival_order(sim: VendorSimulator) -> None:
    with contextlib.closing(_connect(sim)) as conn:
        for path in ("/ping", "/gameye/session", "/playwave/x"):
            _send(conn, "GET", path)
    assert [seen.path for seen in sim.received] == ["/ping", "/gameye/session", "/playwave/x"]


def test_count_filters_are_anded(sim: VendorSimulator) -> None:
    call(sim, "GET", "/ping", headers={"X-Sim-Key": "a"})
    call(sim, "POST", "/ping", headers={"X-Sim-Key": "a"})
    call(sim, "GET", "/ping", headers={"X-Sim-Key": "b"})
    call(sim, "GET", "/gameye/session")
    assert sim.count() == 4
    assert sim.count(key="a") == 2
    assert sim.count(path="/ping") == 3
    assert sim.count(method="get") == 3
    assert sim.count(key="a", method="GET") == 1
    assert sim.count(key="b", path="/gameye/session") == 0


def test_recorded_body_is_cut_at_one_mebibyte(sim: VendorSimulator) -> None:
    big = b"x" * ((1 << 20) + 10)
    assert call(sim, "POST", "/ping", body=big).status == 404
    assert len(sim.received[0].body) == 1 << 20


def test_recording_can_be_turned_off() -> None:
    with VendorSimulator(record=False) as sim:
        call(sim, "GET", "/ping")
        assert sim.received == []


def test_reset_clears_scripts_outage_records_and_state(sim: VendorSimulator) -> None:
    call(sim, "POST", "/gameye/session", session_body("again"))
    sim.script("k", [Reply.error(500)])
    sim.script_route("GET", "/ping", [Reply.error(500)])
    sim.fail_all(Reply.error(503))
    sim.reset()
    assert sim.received == []
    assert call(sim, "GET", "/ping", headers={"X-Sim-Key": "k"}).status == 200
    assert call(sim, "GET", "/ping").status == 200
    assert call(sim, "POST", "/gameye/session", session_body("again")).status == 201


# --- server-side rate limit ----------------------------------------------------------

ME = "/8bitedge/api/v1/me"


def key(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}"}


def retry_after(answer: Answer) -> float:
    value = answer.headers["Retry-After"]
    assert value is not None
    return float(value)


def test_rate_limit_refuses_the_request_over_the_limit_with_the_8bitedge_envelope(
    sim: VendorSimulator,
) -> None:
    sim.enforce_rate_limit(2, 60)
    assert [call(sim, "GET", ME, headers=key("a")).status for _ in range(2)] == [200, 200]
    answer = call(sim, "GET", ME, headers=key("a"))
    assert answer.status == 429
    assert answer.json() == {
        "error": {
            "code": "rate_limit_exceeded",
            "message": "Rate limit exceeded for the minute window.",
            "details": {"window": "minute", "limit": 2},
        }
    }
    assert 59.0 < retry_after(answer) <= 60.0
    assert answer.headers["X-Request-Id"]


def test_rate_limit_retry_after_is_fractional_seconds_until_a_slot_frees(
    sim: VendorSimulator,
) -> None:
    sim.enforce_rate_limit(1, 0.3)
    before = time.monotonic()
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    time.sleep(0.1)
    answer = call(sim, "GET", ME, headers=key("a"))
    after = time.monotonic()
    assert answer.status == 429
    header = answer.headers["Retry-After"]
    assert header is not None
    assert "." in header
    assert len(header.partition(".")[2]) <= 3
    # The slot frees 0.3 s after the admitted request, which arrived after
    # ``before`` and at least 0.1 s before the refused one.
    assert before + 0.3 - after - 0.001 <= float(header) <= 0.2 + 0.001


def test_rate_limit_sliding_window_admits_again_after_retry_after(sim: VendorSimulator) -> None:
    sim.enforce_rate_limit(2, 0.3)
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    refused = call(sim, "GET", ME, headers=key("a"))
    assert refused.status == 429
    time.sleep(retry_after(refused))
    assert call(sim, "GET", ME, headers=key("a")).status == 200


def test_rate_limit_sliding_window_frees_one_slot_at_a_time(sim: VendorSimulator) -> None:
    """The oldest admitted request leaves the window first; the next one later."""
    sim.enforce_rate_limit(2, 0.6)
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    time.sleep(0.3)
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    refused = call(sim, "GET", ME, headers=key("a"))
    assert refused.status == 429
    assert retry_after(refused) <= 0.31
    time.sleep(retry_after(refused))
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    again = call(sim, "GET", ME, headers=key("a"))
    assert again.status == 429
    assert retry_after(again) > 0.1


def test_rate_limit_fixed_window_frees_every_slot_when_the_window_ends(
    sim: VendorSimulator,
) -> None:
    sim.enforce_rate_limit(2, 0.4, window="fixed")
    statuses = [call(sim, "GET", ME, headers=key("a")).status for _ in range(3)]
    if statuses != [200, 200, 429]:  # the first window ended between the calls
        time.sleep(0.4)
        statuses = [call(sim, "GET", ME, headers=key("a")).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = call(sim, "GET", ME, headers=key("a"))
    assert refused.status == 429
    time.sleep(retry_after(refused))
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    assert call(sim, "GET", ME, headers=key("a")).status == 200


def test_rate_limit_counts_each_key_on_its_own(sim: VendorSimulator) -> None:
    sim.enforce_rate_limit(1, 60)
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    assert call(sim, "GET", ME, headers=key("a")).status == 429
    assert call(sim, "GET", ME, headers=key("b")).status == 200
    assert call(sim, "GET", ME, headers=key("b")).status == 429
    # Requests without the header share one count of their own.
    assert call(sim, "GET", ME).status == 200
    assert call(sim, "GET", ME).status == 429


def test_rate_limit_counts_one_key_across_connections_and_routes(sim: VendorSimulator) -> None:
    """A key is counted wherever it comes from, as a vendor counts it across workers."""
    sim.enforce_rate_limit(3, 60)
    with contextlib.closing(_connect(sim)) as one, contextlib.closing(_connect(sim)) as two:
        assert _send(one, "GET", ME, headers=key("a")).status == 200
        assert _send(two, "GET", ME, headers=key("a")).status == 200
    assert call(sim, "GET", "/ping", headers=key("a")).status == 200
    assert call(sim, "GET", ME, headers=key("a")).status == 429


def test_rate_limit_reads_the_key_from_the_header_given(sim: VendorSimulator) -> None:
    sim.enforce_rate_limit(1, 60, key_header="X-Api-Key")
    assert call(sim, "GET", ME, headers={"x-api-key": "k1", **key("same")}).status == 200
    assert call(sim, "GET", ME, headers={"X-API-KEY": "k2", **key("same")}).status == 200
    assert call(sim, "GET", ME, headers={"X-Api-Key": "k1"}).status == 429
    assert sim.rate_limit == (1, 60.0, "x-api-key", "sliding")


def test_rate_limit_answers_in_the_envelope_of_each_vendor(sim: VendorSimulator) -> None:
    sim.enforce_rate_limit(1, 60)
    assert call(sim, "GET", "/gameye/session", headers=key("g")).status == 200
    gameye = call(sim, "GET", "/gameye/session", headers=key("g"))
    assert gameye.status == 429
    assert gameye.json()["statusCode"] == 429
    assert "details" not in gameye.json()
    assert call(sim, "POST", "/playwave/verify", {"ott": "o"}, headers=key("p")).status == 200
    playwave = call(sim, "POST", "/playwave/verify", {"ott": "o"}, headers=key("p"))
    assert playwave.status == 429
    assert error_code(playwave) == "RATE_LIMITED"
    assert playwave.json()["success"] is False
    assert retry_after(playwave) > 0


def test_rate_limit_comes_before_scripts_and_outages(sim: VendorSimulator) -> None:
    """A refused request consumes no scripted reply; an admitted one still counts."""
    sim.enforce_rate_limit(1, 60)
    sim.script("k", [Reply.error(500), Reply.error(503)])
    headers = {"X-Sim-Key": "k", **key("a")}
    assert call(sim, "GET", ME, headers=headers).status == 500
    assert call(sim, "GET", ME, headers=headers).status == 429
    sim.enforce_rate_limit(None)
    assert call(sim, "GET", ME, headers=headers).status == 503
    sim.enforce_rate_limit(1, 60)
    sim.fail_all(Reply.error(503))
    assert call(sim, "GET", ME, headers=key("b")).status == 503
    assert call(sim, "GET", ME, headers=key("b")).status == 429


def test_rate_limit_refusal_has_no_side_effect(sim: VendorSimulator) -> None:
    sim.enforce_rate_limit(1, 60)
    assert call(sim, "POST", "/gameye/session", session_body("s1"), headers=key("a")).status == 201
    refused = call(sim, "POST", "/gameye/session", session_body("s2"), headers=key("a"))
    assert refused.status == 429
    sessions = call(sim, "GET", "/gameye/session", headers=key("b")).json()["sessions"]
    assert [s["id"] for s in sessions] == ["s1"]


def test_rate_limit_only_counts_admitted_requests(sim: VendorSimulator) -> None:
    """Knocking while refused does not push the free slot further away."""
    sim.enforce_rate_limit(1, 0.3)
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    first = retry_after(call(sim, "GET", ME, headers=key("a")))
    for _ in range(5):
        assert call(sim, "GET", ME, headers=key("a")).status == 429
    assert retry_after(call(sim, "GET", ME, headers=key("a"))) <= first


def test_rate_limit_ends_with_none_and_with_reset(sim: VendorSimulator) -> None:
    sim.enforce_rate_limit(1, 60)
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    assert call(sim, "GET", ME, headers=key("a")).status == 429
    sim.enforce_rate_limit(None)
    assert sim.rate_limit is None
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    sim.enforce_rate_limit(1, 60)
    sim.reset()
    assert sim.rate_limit is None
    assert [call(sim, "GET", ME, headers=key("a")).status for _ in range(3)] == [200] * 3


def test_rate_limit_set_again_starts_from_empty_counts(sim: VendorSimulator) -> None:
    sim.enforce_rate_limit(1, 60)
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    assert call(sim, "GET", ME, headers=key("a")).status == 429
    sim.enforce_rate_limit(2, 60)
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    assert call(sim, "GET", ME, headers=key("a")).status == 200
    assert call(sim, "GET", ME, headers=key("a")).status == 429


def test_rate_limit_admits_exactly_the_limit_under_concurrency(sim: VendorSimulator) -> None:
    """Counts are kept under the lock: racing clients never get more than the limit."""
    sim.enforce_rate_limit(25, 60)
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        with contextlib.closing(_connect(sim)) as conn:
            for _ in range(10):
                status = _send(conn, "GET", ME, headers=key("shared")).status
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200] * 25 + [429] * 55
    assert sim.count_status(200) == 25
    assert sim.count_status(429) == 55


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"limit": 0}, ValueError, "limit must be >= 1"),
        ({"limit": True}, TypeError, "limit must be an int"),
        ({"limit": 1.5}, TypeError, "limit must be an int"),
        ({"limit": 1, "per": 0}, ValueError, "per must be"),
        ({"limit": 1, "per": float("nan")}, ValueError, "per must be"),
        ({"limit": 1, "per": float("inf")}, ValueError, "per must be"),
        ({"limit": 1, "per": "60"}, TypeError, "per must be"),
        ({"limit": 1, "key_header": ""}, ValueError, "invalid key_header"),
        ({"limit": 1, "key_header": "X-Key:"}, ValueError, "invalid key_header"),
        ({"limit": 1, "key_header": None}, TypeError, "key_header must be a str"),
        ({"limit": 1, "window": "rolling"}, ValueError, "window must be"),
    ],
)
def test_enforce_rate_limit_validates_its_arguments(
    sim: VendorSimulator, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    sim.enforce_rate_limit(3, 60)
    with pytest.raises(error, match=match):
        sim.enforce_rate_limit(**kwargs)
    assert sim.rate_limit == (3, 60.0, "authorization", "sliding")


@pytest.mark.parametrize(
    ("per", "window"),
    [(1, "second"), (60, "minute"), (3600, "hour"), (86_400, "day"), (0.5, "0.5s")],
)
def test_rate_limit_details_name_the_window(sim: VendorSimulator, per: float, window: str) -> None:
    sim.enforce_rate_limit(1, per)
    call(sim, "GET", ME, headers=key("a"))
    details = call(sim, "GET", ME, headers=key("a")).json()["error"]["details"]
    assert details == {"window": window, "limit": 1}


# --- answers counted by status ---------------------------------------------------------


def test_count_status_counts_the_answers_sent(sim: VendorSimulator) -> None:
    sim.script("k", [Reply.rate_limited(), Reply.error(503), Reply.drop()])
    for _ in range(4):
        with contextlib.suppress(http.client.HTTPException, OSError):
            call(sim, "GET", ME, headers={"X-Sim-Key": "k"})
    assert sim.count_status(429) == 1
    assert sim.count_status(503) == 1
    assert sim.count_status(200) == 1
    assert sim.count_status(500) == 0
    assert sim.count_status() == 3  # the dropped connection got no answer
    assert sim.count() == 4


def test_count_status_works_without_recording() -> None:
    with VendorSimulator(record=False) as sim:
        sim.enforce_rate_limit(1, 60)
        call(sim, "GET", ME, headers=key("a"))
        call(sim, "GET", ME, headers=key("a"))
        assert sim.received == []
        assert (sim.count_status(200), sim.count_status(429), sim.count_status()) == (1, 1, 2)


def test_reset_clears_the_status_counts(sim: VendorSimulator) -> None:
    call(sim, "GET", "/ping")
    assert sim.count_status(200) == 1
    sim.reset()
    assert sim.count_status() == 0
