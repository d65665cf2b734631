"""``attempts(response)``: the attempt history of the call that produced a response."""

from __future__ import annotations

from typing import Any

from resilience.core.flow import ATTEMPTS_KEY, Call
from resilience.core.records import Attempt

__all__ = ["attempts"]


def attempts(response: Any) -> list[Attempt]:
    """The :class:`Attempt` records of the call that produced ``response``.

    Works for ``requests.Response`` and ``httpx.Response``; a response that did
    not come through a resilient transport has no history (``[]``).
    """
    extensions = getattr(response, "extensions", None)
    if isinstance(extensions, dict):
        found = extensions.get(ATTEMPTS_KEY)
    else:
        found = getattr(response, "_resilience_attempts", None)
    if isinstance(found, Call):
        return list(found.resolve())
    return list(found) if isinstance(found, tuple) else []
