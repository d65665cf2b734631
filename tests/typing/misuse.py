"""Mistakes the types must catch; checked by ``tests/test_typing.py``, never run.

``mypy --strict`` must report an error whose message holds ``<text>`` on the
line after each ``# expect: <text>`` comment, and no error anywhere else.
"""

from __future__ import annotations

import asyncio

import httpx
import httpx2

import resilience
import resilience.httpx2


async def alog_retry(event: resilience.RetryEvent) -> None:
    pass


def wants_a_response(response: httpx.Response) -> None:
    pass


# expect: Unexpected keyword argument "max_attempt"
resilience.ResilientTransport(max_attempt=3)
# expect: Unexpected keyword argument "max_attempt"
resilience.AsyncResilientTransport(max_attempt=3)
# expect: Unexpected keyword argument "backof_initial"
resilience.ResilientAdapter(backof_initial=0.1)
# expect: Unexpected keyword argument "max_attempt"
resilience.Policy(max_attempt=3)
# expect: Argument "backoff_initial" to "ResilientAdapter" has incompatible type "str"
resilience.ResilientAdapter(backoff_initial="fast")
# expect: Argument "max_attempts" to "ResilientTransport" has incompatible type "str"
resilience.ResilientTransport(max_attempts="3")
# expect: Argument "deadline" to "Policy" has incompatible type "str"
resilience.Policy(deadline="10s")
# expect: Argument "jitter" to "ResilientTransport" has incompatible type "Literal['ful']"
resilience.ResilientTransport(jitter="ful")
# expect: Argument "idempotency_key" to "ResilientTransport" has incompatible type "str"
resilience.ResilientTransport(idempotency_key="false")
# expect: Argument "vendor_hosts" to "ResilientTransport" has incompatible type "list[str]"
resilience.ResilientTransport(vendor_hosts=["a"])
# expect: "on_retry" to "ResilientTransport" has incompatible type "Callable[[Response], None]"
resilience.ResilientTransport(on_retry=wants_a_response)
# a coroutine function on a sync shell: never awaited
# expect: "on_retry" to "ResilientTransport" has incompatible type "Callable[[RetryEvent], Coroutine
resilience.ResilientTransport(on_retry=alog_retry)
# expect: "on_retry" to "ResilientAdapter" has incompatible type "Callable[[RetryEvent], Coroutine
resilience.ResilientAdapter(on_retry=alog_retry)
# expect: Argument "sleep" to "ResilientTransport" has incompatible type
resilience.ResilientTransport(sleep=asyncio.sleep)
# expect: Argument "rate_limit" to "ResilientTransport" has incompatible type "type[RateLimit]"
resilience.ResilientTransport(rate_limit=resilience.RateLimit)
# expect: Argument 1 to "ResilientTransport" has incompatible type "AsyncHTTPTransport"
resilience.ResilientTransport(httpx.AsyncHTTPTransport())
# expect: Argument 1 to "AsyncResilientTransport" has incompatible type "HTTPTransport"
resilience.AsyncResilientTransport(httpx.HTTPTransport())
# expect: Argument "pool_maxsize" to "ResilientAdapter" has incompatible type "str"
resilience.ResilientAdapter(pool_maxsize="10")
# expect: Unexpected keyword argument "vendr"
resilience.httpx_event_hooks(vendr="gameye")
# expect: Argument "business_codes" to "async_httpx_event_hooks" has incompatible type "str"
resilience.async_httpx_event_hooks(business_codes="yes")
# expect: List item 0 has incompatible type "int"
resilience.requests_response_hook(ignore=[404])
# expect: Argument "transport" to "Client" has incompatible type "ResilientTransport"
httpx2.Client(transport=resilience.ResilientTransport())
# expect: Argument "transport" to "Client" has incompatible type "ResilientTransport"
httpx.Client(transport=resilience.httpx2.ResilientTransport())
# expect: Argument 1 to "ResilientTransport" has incompatible type "MockTransport"
resilience.httpx2.ResilientTransport(httpx.MockTransport(lambda request: httpx.Response(200)))
# expect: Unexpected keyword argument "vendr"
resilience.httpx2.httpx_event_hooks(vendr="gameye")
