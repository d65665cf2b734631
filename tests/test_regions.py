"""Region locators: read the region of a request, rewrite it, touch nothing else."""

from __future__ import annotations

import json

import pytest

from resilience.regions import Header, HostMap, JsonField, QueryParam, RegionLocator, RequestParts

GAMEYE_BODY = (
    b'{"id": "7f1c", "image": "arena", "location" :  "eu-west",\n'
    b' "env": {"location": "eu-west", "MAP": "dust"}, "args": ["--port", "7777"]}'
)

LOCATION = JsonField("location")


def post(body: bytes | None, *headers: tuple[str, str]) -> RequestParts:
    return RequestParts("POST", "https://api.gameye.io/session", tuple(headers), body)


def _value_span(body: bytes, value: bytes, start: int = 0) -> tuple[int, int]:
    index = body.index(value, start)
    return index, index + len(value)


# -- JsonField -------------------------------------------------------------------------


def test_json_field_without_a_name_is_a_type_error() -> None:
    """No field is every vendor's region: the name has no default."""
    with pytest.raises(TypeError):
        JsonField()  # type: ignore[call-arg]


def test_json_field_reads_the_top_level_value() -> None:
    assert LOCATION.region_of(post(GAMEYE_BODY)) == "eu-west"


@pytest.mark.parametrize(
    "body",
    [
        None,
        b"",
        b"not json",
        b'["location", "eu-west"]',
        b'{"env": {"location": "eu-west"}}',
        b'{"location": 3}',
        b'{"location": null}',
        b'{"location": "eu-',
    ],
    ids=["none", "empty", "not-json", "array", "nested-only", "number", "null", "truncated"],
)
def test_json_field_without_a_top_level_string_reads_none(body: bytes | None) -> None:
    assert LOCATION.region_of(post(body)) is None


def test_json_field_rewrite_changes_only_the_value_bytes() -> None:
    before = post(GAMEYE_BODY)
    after = LOCATION.with_region(before, "us-east-1")
    assert after.body is not None
    start, end = _value_span(GAMEYE_BODY, b'"eu-west"')
    assert after.body[:start] == GAMEYE_BODY[:start]
    assert after.body[start : start + len(b'"us-east-1"')] == b'"us-east-1"'
    assert after.body[start + len(b'"us-east-1"') :] == GAMEYE_BODY[end:]


def test_json_field_rewrite_leaves_a_nested_field_of_the_same_name() -> None:
    after = LOCATION.with_region(post(GAMEYE_BODY), "us-east")
    assert after.body is not None
    document = json.loads(after.body)
    assert document["location"] == "us-east"
    assert document["env"]["location"] == "eu-west"


def test_json_field_rewrite_skips_an_earlier_nested_field_with_the_same_value() -> None:
    body = b'{"env": {"location": "eu"}, "location": "eu", "tail": 1}'
    after = LOCATION.with_region(post(body), "us")
    assert after.body == b'{"env": {"location": "eu"}, "location": "us", "tail": 1}'


def test_json_field_rewrite_ignores_the_name_inside_another_key() -> None:
    body = b'{"\\"location": "eu", "location": "eu"}'
    after = LOCATION.with_region(post(body), "us")
    assert after.body == b'{"\\"location": "eu", "location": "us"}'


def test_json_field_rewrite_corrects_content_length() -> None:
    before = post(GAMEYE_BODY, ("Content-Type", "application/json"), ("content-length", "999"))
    after = LOCATION.with_region(before, "ap-southeast-2")
    assert after.body is not None
    assert after.header("Content-Length") == str(len(after.body))
    assert after.header("Content-Type") == "application/json"
    assert [name.lower() for name, _ in after.headers].count("content-length") == 1


def test_json_field_rewrite_of_an_escaped_key_still_sets_the_region() -> None:
    """A key spelled with escapes cannot be found in the bytes; the body is re-encoded."""
    body = b'{"locat\\u0069on": "eu-west", "id": "x"}'
    after = LOCATION.with_region(post(body), "us-east")
    assert after.body is not None
    assert json.loads(after.body) == {"location": "us-east", "id": "x"}


def test_json_field_rewrite_escapes_the_new_value() -> None:
    after = LOCATION.with_region(post(b'{"location": "eu"}'), 'we"ird')
    assert after.body is not None
    assert json.loads(after.body) == {"location": 'we"ird'}


@pytest.mark.parametrize("body", [b"not json", b'{"image": "arena"}', b""])
def test_json_field_rewrite_without_the_field_leaves_the_request_alone(body: bytes) -> None:
    request = post(body, ("Content-Length", str(len(body))))
    assert LOCATION.with_region(request, "us-east") == request


def test_json_field_custom_name() -> None:
    body = b'{"location": "eu", "zone": "z1"}'
    after = JsonField("zone").with_region(post(body), "z2")
    assert after.body == b'{"location": "eu", "zone": "z2"}'


# -- HostMap ---------------------------------------------------------------------------

BASES = {
    "eu-west": "https://eu.api.example",
    "us-east": "https://us.api.example/",
    "eu-west-v2": "https://eu.api.example/v2",
}


def get(url: str, *headers: tuple[str, str]) -> RequestParts:
    return RequestParts("GET", url, tuple(headers))


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://eu.api.example/v1/x", "eu-west"),
        ("https://eu.api.example", "eu-west"),
        ("https://eu.api.example?q=1", "eu-west"),
        ("https://us.api.example/v1/x", "us-east"),
        ("https://eu.api.example/v2/x", "eu-west-v2"),
        ("https://eu.api.example.evil.test/v1/x", None),
        ("https://ap.api.example/v1/x", None),
    ],
)
def test_host_map_reads_the_region_of_the_longest_matching_base(
    url: str, region: str | None
) -> None:
    assert HostMap(BASES).region_of(get(url)) == region


def test_host_map_rewrite_swaps_only_the_base_url() -> None:
    after = HostMap(BASES).with_region(get("https://eu.api.example/v1/x?a=1#f"), "us-east")
    assert after.url == "https://us.api.example/v1/x?a=1#f"


def test_host_map_rewrite_updates_a_host_header() -> None:
    request = get("https://eu.api.example/v1/x", ("Host", "eu.api.example"), ("X-Key", "k"))
    after = HostMap(BASES).with_region(request, "us-east")
    assert after.header("host") == "us.api.example"
    assert after.header("X-Key") == "k"


def test_host_map_rewrite_adds_no_host_header() -> None:
    after = HostMap(BASES).with_region(get("https://eu.api.example/v1/x"), "us-east")
    assert after.header("Host") is None


def test_host_map_rewrite_to_an_unknown_region_leaves_the_request_alone() -> None:
    request = get("https://eu.api.example/v1/x")
    assert HostMap(BASES).with_region(request, "mars") == request


def test_host_map_never_rewrites_a_url_it_does_not_know() -> None:
    """Credentials only ever go to hosts the mapping names."""
    request = get("https://elsewhere.example/v1/x")
    assert HostMap(BASES).with_region(request, "us-east") == request


# -- Header ----------------------------------------------------------------------------


def test_header_reads_the_region_case_insensitively() -> None:
    assert Header("X-Region").region_of(get("https://a.example/", ("x-region", "eu"))) == "eu"


def test_header_without_the_header_reads_none() -> None:
    assert Header().region_of(get("https://a.example/")) is None


def test_header_rewrite_replaces_the_header_and_keeps_the_others() -> None:
    request = get("https://a.example/", ("Accept", "*/*"), ("x-region", "eu"), ("X-Key", "k"))
    after = Header("X-Region").with_region(request, "us")
    assert after.header("X-Region") == "us"
    assert [(k, v) for k, v in after.headers if k.lower() != "x-region"] == [
        ("Accept", "*/*"),
        ("X-Key", "k"),
    ]
    assert [k.lower() for k, _ in after.headers].count("x-region") == 1


def test_header_rewrite_adds_a_missing_header() -> None:
    after = Header("X-Region").with_region(get("https://a.example/"), "us")
    assert after.header("X-Region") == "us"


# -- QueryParam ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://a.example/x?region=eu-west", "eu-west"),
        ("https://a.example/x?a=1&region=eu%20west&b=2", "eu west"),
        ("https://a.example/x?region=", ""),
        ("https://a.example/x?a=1", None),
        ("https://a.example/x", None),
    ],
)
def test_query_param_reads_the_region(url: str, region: str | None) -> None:
    assert QueryParam().region_of(get(url)) == region


def test_query_param_rewrite_replaces_the_value() -> None:
    after = QueryParam().with_region(get("https://a.example/x?a=1&region=eu&b=2"), "us")
    assert after.url == "https://a.example/x?a=1&region=us&b=2"


def test_query_param_rewrite_keeps_other_parameters_byte_for_byte() -> None:
    """A signed URL stays valid: nothing but the region's value changes."""
    url = "https://a.example/x?exp=2026-01-01T00:00:00Z&f=a,b&q=a%20b&flag&sig=x%2fY&region=eu#top"
    after = QueryParam().with_region(get(url), "us-east")
    assert after.url == url.replace("region=eu", "region=us-east")


def test_query_param_rewrite_appends_a_missing_parameter() -> None:
    after = QueryParam().with_region(get("https://a.example/x?a=1#top"), "us")
    assert after.url == "https://a.example/x?a=1&region=us#top"


def test_query_param_rewrite_adds_a_query_when_there_is_none() -> None:
    assert QueryParam().with_region(get("https://a.example/x"), "us").url == (
        "https://a.example/x?region=us"
    )


def test_query_param_rewrite_encodes_the_region() -> None:
    after = QueryParam().with_region(get("https://a.example/x?region=eu"), "us east&1")
    assert QueryParam().region_of(after) == "us east&1"


def test_query_param_rewrite_reads_back() -> None:
    after = QueryParam("zone").with_region(get("https://a.example/x?zone=z1"), "z2")
    assert QueryParam("zone").region_of(after) == "z2"


# -- the protocol -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "locator",
    [LOCATION, HostMap(BASES), Header(), QueryParam()],
    ids=lambda locator: type(locator).__name__,
)
def test_builtin_locators_satisfy_the_protocol(locator: object) -> None:
    assert isinstance(locator, RegionLocator)


def test_with_body_adds_content_length_for_a_non_empty_body() -> None:
    parts = RequestParts("POST", "https://a.example/").with_body(b"12345")
    assert parts.header("content-length") == "5"
