"""The main job: ``python -m resilience demo``."""

from __future__ import annotations

import json
import subprocess
import sys

from resilience._demo import play
from resilience.testing import VendorSimulator


def _demo(*options: str) -> subprocess.CompletedProcess[str]:
    """``python -m resilience demo`` with ``options``, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "resilience", "demo", *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _report(call: str) -> dict[str, object]:
    with VendorSimulator() as sim:
        reports = {r.call: r for r in play(sim)}
    return {
        "statuses": reports[call].statuses,
        "waits": reports[call].waits,
        "regions": reports[call].regions,
        "outcome": reports[call].outcome,
    }


def test_demo_exits_zero_and_prints_a_table_per_vendor() -> None:
    done = _demo()
    assert done.returncode == 0, done.stdout + done.stderr
    for vendor in ("gameye", "8bitedge", "playwave"):
        assert f"\n{vendor}\n" in done.stdout
    assert "every call ended as scripted" in done.stdout


def test_demo_json_reports_every_call_as_expected() -> None:
    done = _demo("--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    assert all(call["as_expected"] for call in result["calls"])


def test_demo_shows_failover_from_the_full_region() -> None:
    report = _report("start a session; eu-west is full")
    assert report["statuses"] == ["420", "420", "201"]
    assert report["regions"] == ["eu-west", "eu-west", "us-east"]
    assert report["waits"] == [0.05, 0.0]


def test_demo_honours_retry_after_on_rate_limits() -> None:
    report = _report("read the account; rate limited twice")
    assert report["statuses"] == ["429", "429", "200"]
    assert report["waits"] == [0.05, 0.05]


def test_demo_does_not_retry_a_permanent_4xx() -> None:
    report = _report("read the account; key revoked")
    assert report["statuses"] == ["401"]
    assert report["outcome"] == "raised Unauthorized (unauthorized)"


def test_demo_reports_a_lost_answer_followed_by_409_as_already_done() -> None:
    report = _report("start a session; the answer is lost")
    assert report["statuses"] == ["RemoteProtocolError", "409"]
    assert report["outcome"] == "409 already_done"


def test_demo_prints_the_prometheus_metrics_of_its_calls_on_request() -> None:
    done = _demo("--metrics")
    assert done.returncode == 0, done.stdout + done.stderr
    for vendor in ("gameye", "8bitedge", "playwave"):
        assert f'resilience_calls_total{{outcome="success",vendor="{vendor}"}}' in done.stdout
    assert 'resilience_attempts_total{category="transient"' in done.stdout
