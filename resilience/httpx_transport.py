"""The httpx transports (kept at this path; see :mod:`resilience.shells.httpx_transport`)."""

from resilience.shells.httpx_transport import AsyncResilientTransport, ResilientTransport

__all__ = ["AsyncResilientTransport", "ResilientTransport"]
