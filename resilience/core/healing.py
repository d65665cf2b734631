"""Network errors that retrying cannot heal, recognised by their cause.

httpx wraps a certificate that does not verify in ``ConnectError`` and a
client certificate the server wants in ``ReadError``; requests wraps both in
``SSLError`` or ``ConnectionError``. Sending again meets the same certificate:
four TLS handshakes per call instead of one. So every shell looks down the
chain of causes (``__cause__``, ``__context__`` and the ``reason``/``args`` the
libraries keep) for an :class:`ssl.SSLError`.

Not every ``SSLError`` is permanent: an EOF in the middle of a handshake
(``SSLEOFError``), a clean close (``SSLZeroReturnError``) or a failed system
call (``SSLSyscallError``) is a dropped connection, which may heal.
"""

from __future__ import annotations

import ssl

__all__ = ["tls_failure"]

_TRANSIENT_TLS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
_MAX_DEPTH = 16


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps, breadth first, each once, at most 16 deep."""
    seen: list[BaseException] = []
    queue: list[object] = [error]
    while queue and len(seen) < _MAX_DEPTH:
        item = queue.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        # urllib3 keeps the cause in ``reason``; requests in ``args[0]``.
        queue += [item.__cause__, item.__context__, getattr(item, "reason", None)]
        queue += [a for a in item.args[:2] if isinstance(a, BaseException)]
    return seen


def tls_failure(error: BaseException) -> bool:
    """Whether ``error`` comes from a TLS failure that sending again cannot change
    (a certificate that does not verify, a client certificate refused or missing,
    no protocol or cipher in common)."""
    return any(
        isinstance(e, ssl.SSLError) and not isinstance(e, _TRANSIENT_TLS) for e in _causes(error)
    )
