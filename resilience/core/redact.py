"""Keep credentials out of logs, errors and events."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["SECRET_HEADERS", "redact_url"]

#: Header names never shown.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)

# Query parameters that carry credentials (compared lower-case, "-" as "_").
_SECRET_PARAMS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "client_secret",
        "code",
        "key",
        "password",
        "secret",
        "sig",
        "signature",
        "token",
        "ott",
    }
)


def _is_secret(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    return lowered in _SECRET_PARAMS or lowered.endswith(("_token", "_key", "_secret", "password"))


def redact_url(url: object) -> str:
    """``url`` without userinfo and with credential query values masked."""
    text = str(url)
    try:
        split = urlsplit(text)
    except ValueError:
        return "<unparseable url>"
    netloc = split.netloc
    if "@" in netloc:
        netloc = netloc.rsplit("@", 1)[1]
    query = split.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret(k) for k, _ in pairs):
            query = urlencode(
                [(k, "[redacted]" if _is_secret(k) else v) for k, v in pairs], safe="[]"
            )
    if netloc == split.netloc and query == split.query:
        return text
    return urlunsplit(split._replace(netloc=netloc, query=query))
