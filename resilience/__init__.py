"""HTTP calls to game-server platforms that survive the failures the vendors document.

Drop-in transports (:class:`ResilientAdapter` for requests,
:class:`ResilientTransport` / :class:`AsyncResilientTransport` for httpx), event
hooks that raise typed errors, pluggable vendor detectors and one sans-IO
policy engine.
"""

import logging as _logging

from resilience import regions, stores
from resilience._version import __version__
from resilience.core.classification import Category, Classification
from resilience.core.classifier import classify
from resilience.core.engine import Attempt, RetryEvent
from resilience.core.policy import Policy, PolicyOptions
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
from resilience.strategies.rate_limit import RateLimit

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
