"""Test helpers: an embedded simulator of the game-server vendor APIs.

:class:`VendorSimulator` is a real HTTP/1.1 server on 127.0.0.1 that speaks the
Gameye, 8bitedge and Playwave envelopes and answers with scripted faults
(:class:`Reply`), behind an optional per-key rate limit
(:meth:`VendorSimulator.enforce_rate_limit`) and with a random share of
faults (:class:`FaultMix`, :meth:`VendorSimulator.serve_faults`; ``python -m
resilience simulate`` serves one from the command line). The pytest fixture
``vendor_simulator`` gives a started one.

:func:`running_redis` starts a throwaway ``redis-server`` on 127.0.0.1 for
tests of :class:`~resilience.stores.RedisStore` (:class:`RedisServer` can kill
it mid-test).
"""

from resilience.testing._faults import FaultMix
from resilience.testing._redis import RedisServer, free_port, running_redis
from resilience.testing._replies import Reply
from resilience.testing._simulator import RecordedRequest, Served, VendorSimulator

__all__ = [
    "FaultMix",
    "RecordedRequest",
    "RedisServer",
    "Reply",
    "Served",
    "VendorSimulator",
    "free_port",
    "running_redis",
]
