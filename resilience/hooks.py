"""Event hooks that raise typed errors (kept at this path; see :mod:`resilience.shells.hooks`)."""

from resilience.shells.hooks import (
    HookOptions,
    async_httpx_event_hooks,
    httpx_event_hooks,
    requests_response_hook,
)

__all__ = ["HookOptions", "async_httpx_event_hooks", "httpx_event_hooks", "requests_response_hook"]
