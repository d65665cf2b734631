"""What the core hands out: per-attempt records, events and decisions (plain values)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from resilience.core.classification import Classification

__all__ = ["Action", "Attempt", "Decision", "ErrorKind", "RetryEvent", "UNSAFE_METHODS"]

#: Methods whose repetition may repeat a side effect (RFC 9110 §9.2.2).
UNSAFE_METHODS = frozenset({"POST", "PATCH"})


class ErrorKind(enum.Enum):
    """What a network error says about whether the request was processed."""

    CONNECT = "connect"
    """Not sent (connection refused, connect timeout): safe to retry any method."""
    UNKNOWN = "unknown"
    """Sent, answer lost (read timeout, dropped connection): may have been processed."""
    FATAL = "fatal"
    """Retrying cannot help (TLS verification, invalid URL): never retried."""


class Action(enum.Enum):
    """What the shell does next."""

    RETURN = "return"
    """The answer is final: hand it to the caller."""
    RETRY = "retry"
    """Wait ``delay`` seconds, then send again (to ``region``)."""
    GIVE_UP = "give_up"
    """Would retry but may not: hand the last answer (or error) to the caller."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a call, as :func:`resilience.attempts` reports it.

    Attributes:
        number: 1-based.
        status: the HTTP status, or ``None`` after a network error.
        error: the network error's class name, or ``None``.
        delay: seconds waited before this attempt.
        region: the region it was sent to, when regions are in use.
        classification: the verdict on the answer, or ``None`` after an error.
        outcome: what followed: ``"return"``, ``"retry"``, ``"failover"``,
            why the call stopped (``"max_attempts reached"``, ...), or, for a
            hedged attempt that did not win, ``"cancelled"`` (still in flight
            when another answer won) or ``"superseded"`` (its answer was not
            usable, and another attempt was still in flight).
        reason: why it was sent: ``"first"``, ``"retry"``, ``"failover"``, or
            ``"hedge"`` (a copy of a late attempt).
    """

    number: int
    status: int | None
    error: str | None
    delay: float
    region: str | None
    classification: Classification | None
    outcome: str = "return"
    reason: str = "first"


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Given to ``on_retry`` before each wait.

    Attributes:
        attempt: the number of the attempt that just failed.
        delay: seconds about to be waited.
        classification: the verdict on its answer, or ``None`` after an error.
        error: the network error's class name, or ``None``.
        method: the request method.
        url: the request URL, credentials removed.
        region: the region of the failed attempt.
        next_region: the region of the next one (equal unless failing over).
        reason: ``"retry"`` or ``"failover"``.
    """

    attempt: int
    delay: float
    classification: Classification | None
    error: str | None
    method: str
    url: str
    region: str | None
    next_region: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The core's answer about one attempt.

    Attributes:
        action: return, retry or give up.
        delay: seconds to wait before the next attempt (``RETRY`` only).
        region: the region of the next attempt.
        reason: ``"retry"``/``"failover"``, or why the call ends.
        classification: the attempt's classification as finally understood
            (a Gameye 409 after an unknown outcome becomes ``ALREADY_DONE``).
        event: what ``on_retry`` receives (``RETRY`` only).
    """

    action: Action
    delay: float = 0.0
    region: str | None = None
    reason: str = "return"
    classification: Classification | None = None
    event: RetryEvent | None = None
