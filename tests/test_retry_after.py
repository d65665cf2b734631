"""Retry-After: delay-seconds (fractions too), HTTP-dates relative to ``now``, garbage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import requests
from requests.structures import CaseInsensitiveDict

from resilience import classify
from resilience.core.retry_after import parse_retry_after
from resilience.retry.classifier import Classifier

#: Sun, 06 Nov 1994 08:49:37 GMT, the RFC 9110 example date.
RFC_EXAMPLE = 784111777.0
TEN_SECONDS_BEFORE = RFC_EXAMPLE - 10


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), ("0", 0.0), ("1", 1.0), ("86400", 86400.0), ("007", 7.0)],
)
def test_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, RFC_EXAMPLE) == seconds


@pytest.mark.parametrize(("value", "seconds"), [("0.05", 0.05), ("1.5", 1.5), (".5", 0.5)])
def test_fractional_delay_seconds_are_accepted(value: str, seconds: float) -> None:
    assert parse_retry_after(value, RFC_EXAMPLE) == seconds


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_retry_after("  7 \t", RFC_EXAMPLE) == 7.0


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 form
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime form
    ],
    ids=["imf-fixdate", "rfc850", "asctime"],
)
def test_http_date_in_the_future_is_seconds_from_now(value: str) -> None:
    """RFC 9110 §5.6.7: recipients accept all three date forms."""
    assert parse_retry_after(value, TEN_SECONDS_BEFORE) == 10.0


def test_http_date_is_relative_to_the_now_passed_in() -> None:
    value = "Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_retry_after(value, RFC_EXAMPLE - 100) == 100.0
    assert parse_retry_after(value, RFC_EXAMPLE - 0.5) == 0.5


def test_http_date_with_offset_is_honoured() -> None:
    """08:49:37 +0100 is 07:49:37 GMT."""
    value = "Sun, 06 Nov 1994 08:49:37 +0100"
    assert parse_retry_after(value, RFC_EXAMPLE - 3600 - 10) == 10.0


def test_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE + 3600) == 0.0


def test_http_date_equal_to_now_is_zero() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE) == 0.0


@pytest.fixture
def local_time_is_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a local time zone five hours behind GMT."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is not available on this platform")
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_is_new_york")
@pytest.mark.parametrize(
    "value",
    ["Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 -0000"],
    ids=["asctime", "minus-zero"],
)
def test_http_date_without_zone_is_gmt_whatever_the_local_time_zone(value: str) -> None:
    """An HTTP-date is always GMT; read as local time it would be 5 hours off."""
    assert parse_retry_after(value, TEN_SECONDS_BEFORE) == 10.0


@pytest.mark.parametrize(
    "value",
    [
        "-1",
        "-0.5",
        "+5",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "1e5",
        "0x10",
        "5s",
        "1,5",
        "soon",
        "",
        "   ",
        "9" * 400,  # a float overflowing to infinity
        "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Sun, 06 Nov 99999 08:49:37 GMT",
    ],
)
def test_unusable_value_is_none(value: str) -> None:
    assert parse_retry_after(value, RFC_EXAMPLE) is None


def test_absent_value_is_none() -> None:
    assert parse_retry_after(None, RFC_EXAMPLE) is None


def test_huge_but_finite_delay_is_returned_as_is() -> None:
    """Capping is the policy's job (``retry_after_max``), not the parser's."""
    assert parse_retry_after("99999999999", RFC_EXAMPLE) == 99999999999.0


# -- through classify ---------------------------------------------------------------


def _response(library: str, status: int, retry_after: str) -> Any:
    url = "https://api.example.com/x"
    if library == "httpx":
        return httpx.Response(
            status, headers={"Retry-After": retry_after}, request=httpx.Request("GET", url)
        )
    response = requests.Response()
    response.status_code = status
    response._content = b""
    response.headers = CaseInsensitiveDict({"Retry-After": retry_after})
    response.request = requests.Request("GET", url).prepare()
    return response


LIBRARIES = ["requests", "httpx"]


@pytest.mark.parametrize("library", LIBRARIES)
def test_classify_reads_fractional_delay_seconds(library: str) -> None:
    assert classify(_response(library, 429, "0.05")).retry_after == 0.05


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("value", ["-1", "NaN", "inf", "later"])
def test_classify_turns_garbage_into_none(library: str, value: str) -> None:
    assert classify(_response(library, 503, value)).retry_after is None


@pytest.mark.parametrize("library", LIBRARIES)
def test_classify_reads_http_date_relative_to_now(library: str) -> None:
    c = Classifier().classify(
        _response(library, 503, "Sun, 06 Nov 1994 08:49:37 GMT"), now=TEN_SECONDS_BEFORE
    )
    assert c.retry_after == 10.0


@pytest.mark.parametrize("library", LIBRARIES)
def test_classify_reads_past_http_date_as_zero(library: str) -> None:
    assert classify(_response(library, 429, "Sun, 06 Nov 1994 08:49:37 GMT")).retry_after == 0.0


@pytest.mark.parametrize("library", LIBRARIES)
def test_classify_uses_the_wall_clock_by_default(library: str) -> None:
    target = datetime.fromtimestamp(time.time() + 3600, timezone.utc).replace(microsecond=0)
    c = classify(_response(library, 429, format_datetime(target, usegmt=True)))
    assert c.retry_after is not None
    assert 3590 < c.retry_after <= 3600
