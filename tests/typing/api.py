"""The public API as users write it: this file must pass ``mypy --strict``.

Checked by ``tests/test_typing.py``; never run.
"""

from __future__ import annotations

import asyncio
import time

import anyio
import httpx
import httpx2
import openai
import requests

import resilience
import resilience.httpx2
from resilience.regions import Header, HostMap, JsonField, QueryParam
from resilience.stores import MemoryStore, RedisStore
from resilience.testing import Reply, VendorSimulator


def log_retry(event: resilience.RetryEvent) -> None:
    print(event.attempt, event.delay, event.reason, event.next_region)


async def alog_retry(event: resilience.RetryEvent) -> None:
    await anyio.sleep(0)


policy = resilience.Policy(
    max_attempts=3,
    backoff_initial=0.1,
    backoff_multiplier=2,
    backoff_max=5.0,
    jitter="equal",
    respect_retry_after=True,
    retry_after_max=30,
    deadline=10.0,
    attempt_timeout=2.5,
    retry_non_idempotent=False,
    idempotency_key=True,
    regions=["eu-west", "us-east"],
    region_locator=JsonField("location"),
    capacity_retries=0,
    conflict_delay=1.0,
    vendor="gameye",
    vendor_hosts={"api.gameye.example": "gameye"},
    on_retry=alog_retry,
    retry_budget=resilience.RetryBudget(),
    circuit_breaker=True,
    rate_limit=resilience.RateLimit(per_minute=120, key="key-id"),
    store=MemoryStore(),
)
attempts_allowed: int = policy.max_attempts

# requests
session = requests.Session()
session.mount(
    "https://",
    resilience.ResilientAdapter(max_attempts=5, on_retry=log_retry, pool_maxsize=20),
)
session.mount("http://", resilience.ResilientAdapter(policy=policy, sleep=time.sleep))
session.hooks["response"].append(resilience.requests_response_hook(vendor="8bitedge"))

# httpx, sync
client = httpx.Client(
    transport=resilience.ResilientTransport(
        region_locator=HostMap({"eu-west": "https://eu.example", "us-east": "https://us.example"}),
        regions=("eu-west", "us-east"),
        circuit_breaker=resilience.CircuitBreaker(failure_ratio=0.5),
        on_retry=log_retry,
    ),
    event_hooks=resilience.httpx_event_hooks(ignore=[resilience.Category.NOT_FOUND]),
)
wrapped = resilience.ResilientTransport(httpx.HTTPTransport(retries=0), policy=policy)
mocked = resilience.ResilientTransport(
    transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    sleep=lambda seconds: None,
    on_retry=lambda event: print(event.url),
    region_locator=Header("X-Region"),
)
resilience.ResilientTransport(region_locator=QueryParam("region"), on_retry=None)

# httpx, async: plain and coroutine functions alike
aclient = httpx.AsyncClient(
    transport=resilience.AsyncResilientTransport(
        on_retry=alog_retry, sleep=asyncio.sleep, deadline=5
    ),
    event_hooks=resilience.async_httpx_event_hooks(business_codes=False),
)
resilience.AsyncResilientTransport(on_retry=log_retry, sleep=anyio.sleep)

# httpx2, sync and async, and the OpenAI SDK built on it
client2 = httpx2.Client(
    transport=resilience.httpx2.ResilientTransport(max_attempts=3, on_retry=log_retry),
    event_hooks=resilience.httpx2.httpx_event_hooks(vendor="generic"),
)
wrapped2 = resilience.httpx2.ResilientTransport(httpx2.HTTPTransport(retries=0), policy=policy)
aclient2 = httpx2.AsyncClient(
    transport=resilience.httpx2.AsyncResilientTransport(on_retry=alog_retry, sleep=anyio.sleep),
    event_hooks=resilience.httpx2.async_httpx_event_hooks(ignore=["not_found"]),
)
ai = openai.OpenAI(
    http_client=httpx2.Client(transport=resilience.httpx2.ResilientTransport()), max_retries=0
)
aai = openai.AsyncOpenAI(
    http_client=httpx2.AsyncClient(transport=resilience.httpx2.AsyncResilientTransport()),
    max_retries=0,
)


def inspect2(response: httpx2.Response) -> list[resilience.Attempt]:
    c: resilience.Classification = resilience.classify(response)
    print(c.category)
    return resilience.attempts(response)


# options built apart, then unpacked
options: resilience.PolicyOptions[None] = {"max_attempts": 2, "jitter": "none"}
resilience.ResilientTransport(**options)
resilience.AsyncResilientTransport(**options)

# a fleet
fleet = resilience.ResilientTransport(
    rate_limit=resilience.RateLimit(per_minute=120, per_day=10_000, key="my-api-key-id"),
    store=RedisStore("redis://127.0.0.1:6379/0"),
)


def inspect(response: httpx.Response) -> str | None:
    c: resilience.Classification = resilience.classify(response, vendor="gameye")
    history: list[resilience.Attempt] = resilience.attempts(response)
    if c.category is resilience.Category.CAPACITY and history:
        return history[-1].region
    return c.trace_id


def typed_errors() -> None:
    try:
        client.post("https://api.gameye.example/session", json={"id": "s1"})
    except resilience.CapacityUnavailable as exc:
        print(exc.code, exc.trace_id, resilience.attempts(exc.response))


def simulate() -> None:
    with VendorSimulator() as sim:
        sim.script("k1", [Reply.error(503), Reply.rate_limited(0.05)])
        sim.script_route("POST", "/gameye/session", [Reply.capacity("eu-west")])
        print(sim.base("8bitedge"), sim.count(key="k1"))
