"""HTTP calls to game-server platforms that survive the failures the vendors document.

Drop-in transports (:class:`ResilientAdapter` for requests,
:class:`ResilientTransport` / :class:`AsyncResilientTransport` for httpx, and
their httpx2 counterparts in :mod:`resilience.httpx2`), event hooks that raise
typed errors, pluggable vendor detectors and one sans-IO policy engine.
"""

import importlib as _importlib
import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from resilience._version import __version__

if _TYPE_CHECKING:
    from resilience import regions, stores
    from resilience.core.classification import Category, Classification
    from resilience.core.records import Attempt, RetryEvent
    from resilience.detectors import Detector, register_detector, registered_detectors
    from resilience.errors import (
        BusinessRejected,
        CapacityUnavailable,
        CircuitOpen,
        ClientError,
        Conflict,
        Forbidden,
        InvalidRequest,
        NotFound,
        NotImplementedByServer,
        QuotaExhausted,
        RateLimited,
        ResilienceError,
        ServerError,
        SessionLost,
        Unauthorized,
    )
    from resilience.retry.classifier import classify
    from resilience.retry.policy import Policy, PolicyOptions
    from resilience.shells.history import attempts
    from resilience.shells.hooks import (
        async_httpx_event_hooks,
        httpx_event_hooks,
        requests_response_hook,
    )
    from resilience.shells.httpx_transport import AsyncResilientTransport, ResilientTransport
    from resilience.shells.requests_adapter import ResilientAdapter
    from resilience.strategies.breaker import CircuitBreaker
    from resilience.strategies.budget import RetryBudget
    from resilience.strategies.hedge import Hedge
    from resilience.strategies.rate_limit import RateLimit

# Where each public name lives. They are imported on first use (PEP 562), so
# that ``import resilience`` costs a process next to nothing until it is used.
_ERRORS = (
    "BusinessRejected CapacityUnavailable CircuitOpen ClientError Conflict Forbidden "
    "InvalidRequest NotFound NotImplementedByServer QuotaExhausted RateLimited "
    "ResilienceError ServerError SessionLost Unauthorized"
)
_HOMES: dict[str, str] = {
    **dict.fromkeys(_ERRORS.split(), "resilience.errors"),
    **dict.fromkeys(("Category", "Classification"), "resilience.core.classification"),
    **dict.fromkeys(("Attempt", "RetryEvent"), "resilience.core.records"),
    **dict.fromkeys(
        ("Detector", "register_detector", "registered_detectors"), "resilience.detectors"
    ),
    **dict.fromkeys(
        ("async_httpx_event_hooks", "httpx_event_hooks", "requests_response_hook"),
        "resilience.shells.hooks",
    ),
    **dict.fromkeys(
        ("AsyncResilientTransport", "ResilientTransport"), "resilience.shells.httpx_transport"
    ),
    "ResilientAdapter": "resilience.shells.requests_adapter",
    "attempts": "resilience.shells.history",
    "classify": "resilience.retry.classifier",
    "Policy": "resilience.retry.policy",
    "PolicyOptions": "resilience.retry.policy",
    "CircuitBreaker": "resilience.strategies.breaker",
    "RetryBudget": "resilience.strategies.budget",
    "Hedge": "resilience.strategies.hedge",
    "RateLimit": "resilience.strategies.rate_limit",
}
_MODULES = frozenset(
    {"regions", "stores", "detectors", "errors", "hooks", "instrumentation", "testing"}
)


def __getattr__(name: str) -> _Any:
    if name in _MODULES:
        value: _Any = _importlib.import_module(f"resilience.{name}")
    elif name in _HOMES:
        value = getattr(_importlib.import_module(_HOMES[name]), name)
    else:
        raise AttributeError(f"module 'resilience' has no attribute {name!r}")
    globals()[name] = value  # once found, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# A library logs; the application decides where it goes.
_logging.getLogger("resilience").addHandler(_logging.NullHandler())

__all__ = [
    "AsyncResilientTransport",
    "Attempt",
    "BusinessRejected",
    "CapacityUnavailable",
    "Category",
    "CircuitBreaker",
    "CircuitOpen",
    "Classification",
    "ClientError",
    "Conflict",
    "Detector",
    "Forbidden",
    "Hedge",
    "InvalidRequest",
    "NotFound",
    "NotImplementedByServer",
    "Policy",
    "PolicyOptions",
    "QuotaExhausted",
    "RateLimit",
    "RateLimited",
    "ResilienceError",
    "ResilientAdapter",
    "ResilientTransport",
    "RetryBudget",
    "RetryEvent",
    "ServerError",
    "SessionLost",
    "Unauthorized",
    "__version__",
    "async_httpx_event_hooks",
    "attempts",
    "classify",
    "httpx_event_hooks",
    "regions",
    "register_detector",
    "registered_detectors",
    "requests_response_hook",
    "stores",
]
