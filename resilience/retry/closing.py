"""Closing a response that will not be returned, whatever happens: the loop's
abandoned responses and a race's losers alike."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["aclose_quietly", "close_quietly"]

_log = logging.getLogger(__name__)


def close_quietly(close: Callable[[Any], Any], response: Any) -> None:
    """``close(response)``; an error is logged at DEBUG, never raised (the
    connection is already broken, and the error in flight is the one to see)."""
    try:
        close(response)
    except Exception:
        _log.debug("closing a response not returned failed", exc_info=True)


async def aclose_quietly(close: Callable[[Any], Awaitable[Any]], response: Any) -> None:
    """``await close(response)``, shielded from cancellation (a cancelled task
    must still give its connection back); an error is logged, never raised."""
    import anyio

    try:
        with anyio.CancelScope(shield=True):
            await close(response)
    except Exception:
        _log.debug("closing a response not returned failed", exc_info=True)
