"""The requests adapter (kept at this path; see :mod:`resilience.shells.requests_adapter`)."""

from resilience.shells.requests_adapter import ResilientAdapter

__all__ = ["ResilientAdapter"]
