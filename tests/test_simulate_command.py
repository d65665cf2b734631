"""``python -m resilience simulate``: the simulator served from the command line."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks._redis import free_port
from resilience.__main__ import main
from resilience._simulate import _is_loopback, add_parser, settings
from resilience.testing import FaultMix

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}
FIRST_LINE_TIMEOUT = 20.0
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")


@dataclass
class Simulator:
    """A running ``simulate`` process and what it printed first."""

    process: subprocess.Popen[bytes]
    first_line: str
    port: int
    output: str = ""
    errors: str = ""
    lines: list[str] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """Send one request on a fresh connection; status, headers and JSON body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            body = None if payload is None else json.dumps(payload)
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                json.loads(data) if data else None,
            )
        finally:
            conn.close()

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Send ``signum``, wait for the exit and keep what was printed."""
        self.process.send_signal(signum)
        output, errors = self.process.communicate(timeout=20)
        self.output, self.errors = output.decode(), errors.decode()
        self.lines = self.output.splitlines()
        return self.process.returncode


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "resilience", "simulate", *args]


@contextlib.contextmanager
def simulate(*args: str) -> Iterator[Simulator]:
    """Start ``simulate --port 0`` plus ``args``; wait for its first line; stop it after."""
    process = subprocess.Popen(
        _command("--port", "0", *args) if "--port" not in args else _command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Unbuffered: the first line is read byte by byte, so nothing after it is
        # left in a buffer that communicate() would not see.
        bufsize=0,
        env=ENV,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], FIRST_LINE_TIMEOUT)
        first = process.stdout.readline().decode() if ready else ""
        match = URL.search(first)
        if match is None:
            process.kill()
            out, err = process.communicate(timeout=10)
            pytest.fail(f"no URL on the first line: {first!r}\n{out.decode()}\n{err.decode()}")
        yield Simulator(process, first, int(match.group(1)))
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def _session(location: str, session_id: str | None = None) -> dict[str, str]:
    return {"id": session_id or f"s-{time.monotonic_ns()}", "location": location, "image": "arena"}


# --- starting ----------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["0", "fixed"])
def test_serves_ping_and_prints_every_vendor_base_url_first(port: str) -> None:
    args = ("--port", str(free_port())) if port == "fixed" else ("--port", "0")
    with simulate(*args) as sim:
        url = f"http://127.0.0.1:{sim.port}"
        if port == "fixed":
            assert sim.port == int(args[1])
        assert sim.first_line.split()[3] == url
        for vendor in ("gameye", "8bitedge", "playwave"):
            assert f"{url}/{vendor}" in sim.first_line
        status, _, body = sim.call("GET", "/ping")
        assert (status, body) == (200, {"ok": True})


# --- the fault mix -----------------------------------------------------------------------

ROUTES = {
    "gameye": ("POST", "/gameye/session", _session("eu-west", "s-1")),
    "8bitedge": ("GET", "/8bitedge/api/v1/me", None),
    "playwave": ("POST", "/playwave/verify", {"ott": "ott-1"}),
}


def _code(vendor: str, body: Any) -> str:
    if vendor == "gameye":
        assert set(body) >= {"statusCode", "code", "message", "identifier"}
        return str(body["code"])
    if vendor == "playwave":
        assert body["success"] is False
    return str(body["error"]["code"])


@pytest.mark.parametrize(
    ("vendor", "code"),
    [
        ("gameye", "SERVICE_UNAVAILABLE"),
        ("8bitedge", "server_error"),
        ("playwave", "INTERNAL_ERROR"),
    ],
)
def test_a_mix_of_only_503_answers_503_in_the_vendor_envelope(vendor: str, code: str) -> None:
    method, path, payload = ROUTES[vendor]
    with simulate("--5xx", "1") as sim:
        for _ in range(3):
            status, _, body = sim.call(method, path, payload)
            assert status == 503
            assert _code(vendor, body) == code
        assert sim.call("GET", "/ping")[0] == 200  # the health route is never faulted


@pytest.mark.parametrize(
    ("args", "retry_after"),
    [
        (("--retry-after", "1.5"), "1.5"),
        (("--retry-after", "2"), "2"),
        (("--retry-after", "none"), None),
    ],
)
def test_a_mix_of_only_429_sends_retry_after(
    args: tuple[str, ...], retry_after: str | None
) -> None:
    with simulate("--429", "1", *args) as sim:
        status, headers, body = sim.call("GET", "/8bitedge/api/v1/me")
    assert status == 429
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert headers.get("retry-after") == retry_after


def test_420_hits_only_gameye_requests_for_the_named_region() -> None:
    with simulate("--420", "eu-west=1") as sim:
        status, _, body = sim.call("POST", "/gameye/session", _session("eu-west"))
        assert (status, body["code"]) == (420, "CAPACITY_UNAVAILABLE")
        assert sim.call("GET", "/gameye/session", headers={"X-Region": "eu-west"})[0] == 420
        assert sim.call("GET", "/gameye/session?region=eu-west")[0] == 420
        assert sim.call("POST", "/gameye/session", _session("us-east"))[0] == 201
        assert sim.call("POST", "/gameye/session", _session("EU-WEST"))[0] == 201
        assert sim.call("GET", "/gameye/session")[0] == 200
        assert sim.call("GET", "/8bitedge/api/v1/me", headers={"X-Region": "eu-west"})[0] == 200


def test_slow_answers_wait_then_answer_normally() -> None:
    with simulate("--slow", "1", "--slow-seconds", "0.3") as sim:
        began = time.monotonic()
        status, _, body = sim.call("POST", "/playwave/verify", {"ott": "ott-1"})
        took = time.monotonic() - began
    assert status == 200
    assert body["success"] is True
    assert took >= 0.3


def test_tail_answers_wait_at_least_tail_seconds_then_answer_normally() -> None:
    with simulate("--tail", "1", "--tail-seconds", "0.01") as sim:
        began = time.monotonic()
        status, _, body = sim.call("GET", "/gameye/session")
        took = time.monotonic() - began
        sim.stop()
    assert (status, body) == (200, {"sessions": []})
    assert took >= 0.01
    assert "faults: tail 100% (0.01 s to 0.1 s)" in sim.lines[0]
    assert re.search(r" GET /gameye/session 200 tail 0\.0\d\ds$", sim.output, re.MULTILINE)


def _statuses(*args: str, count: int = 40) -> list[int]:
    with simulate(*args) as sim:
        return [sim.call("GET", "/8bitedge/api/v1/me")[0] for _ in range(count)]


def test_a_seed_gives_the_same_sequence_of_faults_again() -> None:
    mix = ("--5xx", "0.3", "--429", "0.3", "--quiet")
    first = _statuses(*mix, "--seed", "11")
    assert set(first) == {200, 429, 503}
    assert _statuses(*mix, "--seed", "11") == first
    assert _statuses(*mix, "--seed", "12") != first


def test_without_a_seed_the_seed_drawn_is_printed_and_repeats_the_run() -> None:
    mix = ("--5xx", "0.5", "--quiet")
    with simulate(*mix) as sim:
        first = [sim.call("GET", "/8bitedge/api/v1/me")[0] for _ in range(30)]
        sim.stop()
    seed = re.search(r"seed (\d+)", sim.lines[0])
    assert seed is not None
    assert _statuses(*mix, "--seed", seed.group(1), count=30) == first


# --- the scenario file -------------------------------------------------------------------


def test_the_scenario_file_sets_the_mix_and_flags_override_it(tmp_path: Path) -> None:
    scenario = tmp_path / "staging.json"
    scenario.write_text(json.dumps({"5xx": 1, "5xx_status": 502, "retry-after": 3}))
    with simulate("--scenario", str(scenario)) as sim:
        assert sim.call("GET", "/8bitedge/api/v1/me")[0] == 502
    with simulate("--scenario", str(scenario), "--5xx", "0", "--429", "1") as sim:
        status, headers, _ = sim.call("GET", "/8bitedge/api/v1/me")
        assert (status, headers["retry-after"]) == (429, "3")
    with simulate("--scenario", str(scenario), "--5xx-status", "500") as sim:
        assert sim.call("GET", "/8bitedge/api/v1/me")[0] == 500


def test_420_flags_override_the_scenario_region_by_region(tmp_path: Path) -> None:
    scenario = tmp_path / "regions.json"
    scenario.write_text(json.dumps({"420": {"eu-west": 1, "us-east": 1}}))
    with simulate("--scenario", str(scenario)) as sim:
        assert sim.call("POST", "/gameye/session", _session("eu-west"))[0] == 420
        assert sim.call("POST", "/gameye/session", _session("us-east"))[0] == 420
    with simulate("--scenario", str(scenario), "--420", "us-east=0") as sim:
        assert sim.call("POST", "/gameye/session", _session("eu-west"))[0] == 420
        assert sim.call("POST", "/gameye/session", _session("us-east"))[0] == 201


# --- usage errors ------------------------------------------------------------------------

BAD_FLAGS = [
    (["--5xx", "1.5"], "argument --5xx: the value must be between 0 and 1, got 1.5"),
    (["--429", "-0.1"], "argument --429: the value must be between 0 and 1"),
    (["--slow", "nan"], "argument --slow: the value must be between 0 and 1"),
    (["--5xx", "lots"], "argument --5xx: not a number: 'lots'"),
    (["--5xx", "0.6", "--429", "0.6"], "the shares add up to 1.2 (5xx=0.6 + 429=0.6)"),
    (["--slow", "0.5", "--420", "eu-west=0.6"], "(slow=0.5 + 420 eu-west=0.6)"),
    (["--420", "=0.5"], "argument --420: the value has an empty region name"),
    (["--420", " eu-west=0.5"], "argument --420: the value has a region name with spaces"),
    (["--420", "eu-west"], "argument --420: expected REGION=SHARE, got 'eu-west'"),
    (["--420", "eu-west=2"], "argument --420: the value eu-west must be between 0 and 1"),
    (["--5xx-status", "404"], "argument --5xx-status: the value must be between 500 and 599"),
    (["--retry-after", "-1"], "argument --retry-after: the value must be a finite number"),
    (["--slow-seconds", "inf"], "argument --slow-seconds: the value must be a finite number"),
    (["--tail", "1.5"], "argument --tail: the value must be between 0 and 1, got 1.5"),
    (["--tail-seconds", "-1"], "argument --tail-seconds: the value must be a finite number"),
    (["--tail", "0.5", "--slow", "0.6"], "the shares add up to 1.1 (slow=0.6 + tail=0.5)"),
    (["--port", "70000"], "argument --port: the value must be between 0 and 65535"),
    (["--host", " "], "argument --host: the value must be a non-empty string"),
]

BAD_SCENARIOS = [
    ({"5xx": 2}, '"5xx" must be between 0 and 1, got 2'),
    ({"429": "a lot"}, '"429" must be a number between 0 and 1, not str'),
    ({"slow": True}, '"slow" must be a number between 0 and 1, not bool'),
    ({"420": {"": 0.5}}, '"420" has an empty region name'),
    ({"420": ["eu-west"]}, '"420" must map regions to shares'),
    ({"420": {"eu-west": -1}}, '"420" eu-west must be between 0 and 1'),
    ({"slow_seconds": -2}, '"slow_seconds" must be a finite number of seconds >= 0'),
    ({"tail": [0.02]}, '"tail" must be a number between 0 and 1, not list'),
    ({"tail_seconds": "0.2"}, '"tail_seconds" must be a number of seconds, not str'),
    ({"port": "8080"}, '"port" must be an integer, not str'),
    ({"bogus": 1}, 'unknown key "bogus"; the keys are "host", "port", "5xx"'),
    ([0.5], "must hold a JSON object, not list"),
]


def _simulate_parser() -> argparse.ArgumentParser:
    return add_parser(argparse.ArgumentParser().add_subparsers())


def _usage_error(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m resilience simulate")
    return err


@pytest.mark.parametrize(("argv", "message"), BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_a_bad_flag_is_a_usage_error_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in _usage_error(argv, capsys)


@pytest.mark.parametrize(
    ("data", "message"), BAD_SCENARIOS, ids=[json.dumps(d) for d, _ in BAD_SCENARIOS]
)
def test_a_bad_scenario_is_a_usage_error_naming_the_key(
    data: Any, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "bad.json"
    scenario.write_text(json.dumps(data))
    err = _usage_error(["--scenario", str(scenario)], capsys)
    assert f"--scenario {scenario}: " in err
    assert message in err


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read it: No such file or directory"), ("{'5xx': 1}", "not valid JSON")],
)
def test_an_unreadable_scenario_is_a_usage_error(
    content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "scenario.json"
    if content is not None:
        scenario.write_text(content)
    assert message in _usage_error(["--scenario", str(scenario)], capsys)


def test_shares_from_the_file_and_the_flags_add_up_to_at_most_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "mix.json"
    scenario.write_text(json.dumps({"5xx": 0.7, "420": {"eu-west": 0.2, "us-east": 0.1}}))
    err = _usage_error(["--scenario", str(scenario), "--5xx", "0.9"], capsys)
    assert "the shares add up to 1.1 (5xx=0.9 + 420 eu-west=0.2)" in err
    err = _usage_error(["--scenario", str(scenario), "--429", "0.2"], capsys)
    assert "the shares add up to 1.1 (5xx=0.7 + 429=0.2 + 420 eu-west=0.2)" in err


def test_settings_merge_the_file_and_the_flags(tmp_path: Path) -> None:
    scenario = tmp_path / "mix.json"
    scenario.write_text(
        json.dumps(
            {
                "5xx": 0.7,
                "5xx-status": 502,
                "retry_after": None,
                "420": {"eu-west": 0.2, "us-east": 0.1},
                "seed": 3,
                "port": 8080,
                "tail": 0.02,
                "tail-seconds": 0.5,
            }
        )
    )
    argv = ["--scenario", str(scenario), "--5xx", "0.5", "--420", "us-east=0.3", "--quiet"]
    argv += ["--tail-seconds", "0.25"]
    config = settings(_simulate_parser().parse_args(argv))
    assert config.mix == FaultMix(
        server_error=0.5,
        server_error_status=502,
        retry_after=None,
        capacity={"eu-west": 0.2, "us-east": 0.3},
        tail=0.02,
        tail_seconds=0.25,
    )
    assert (config.host, config.port, config.seed, config.quiet) == ("127.0.0.1", 8080, 3, True)


def test_a_usage_error_exits_2_from_the_command_line() -> None:
    done = subprocess.run(
        _command("--5xx", "0.8", "--429", "0.8"),
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "the shares add up to 1.6" in done.stderr
    assert done.stdout == ""


def test_a_port_in_use_fails_with_status_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            _command("--port", str(port)),
            capture_output=True,
            text=True,
            env=ENV,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"error: cannot listen on 127.0.0.1 port {port}" in done.stderr


def test_another_host_than_loopback_is_warned_about() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface: the bind fails after the warning,
    # so the test opens nothing to the network.
    done = subprocess.run(
        _command("--host", "192.0.2.1"),
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.stderr.startswith("warning: --host 192.0.2.1 is not a loopback address")
    assert done.returncode == 1


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("staging.example", False),
    ],
)
def test_loopback_addresses_are_told_apart(host: str, loopback: bool) -> None:
    assert _is_loopback(host) is loopback


# --- stopping ----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_it_with_status_0_and_a_summary(signum: int) -> None:
    with simulate("--5xx", "1") as sim:
        for _ in range(2):
            sim.call("GET", "/8bitedge/api/v1/me")
        sim.call("GET", "/ping")
        assert sim.stop(signum) == 0
    assert sim.errors == ""
    requests = [line for line in sim.lines[1:] if re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line)]
    # Each connection's thread prints its line once it has answered: the lines
    # of requests made one after another may come out in either order.
    assert sorted(line.split()[1:5] for line in requests) == [
        ["GET", "/8bitedge/api/v1/me", "503", "5xx"],
        ["GET", "/8bitedge/api/v1/me", "503", "5xx"],
        ["GET", "/ping", "200", "normal"],
    ]
    assert re.fullmatch(r"stopped after \d+\.\d s: 3 requests served", sim.lines[-3])
    assert sim.lines[-2] == "  by status: 200 x 1, 503 x 2"
    assert sim.lines[-1] == "  by fault: 5xx x 2, normal x 1"


def test_quiet_prints_no_line_per_request() -> None:
    with simulate("--quiet") as sim:
        sim.call("GET", "/ping")
        assert sim.stop() == 0
    assert len(sim.lines) == 4  # the faults, then the summary
    assert sim.lines[-2:] == ["  by status: 200 x 1", "  by fault: normal x 1"]


def test_stopping_closes_open_connections_and_cuts_slow_answers() -> None:
    with simulate("--slow", "1", "--slow-seconds", "60") as sim:
        idle = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
        idle.connect()
        waiting = socket.create_connection(("127.0.0.1", sim.port), timeout=10)
        waiting.sendall(b"GET /8bitedge/api/v1/me HTTP/1.1\r\nHost: x\r\n\r\n")
        # The request must have been read before the signal; nothing tells us, so give it
        # a moment (the slow answer would take a minute).
        time.sleep(0.2)
        began = time.monotonic()
        assert sim.stop() == 0
        took = time.monotonic() - began
        # The slow answer is cut short: answered at once or not at all; either way
        # the connection is closed.
        with waiting:
            received = b""
            while chunk := waiting.recv(65536):
                received += chunk
        assert received == b"" or received.startswith(b"HTTP/1.1 200 ")
        assert idle.sock is not None
        assert idle.sock.recv(65536) == b""
        idle.close()
    assert took < 5
