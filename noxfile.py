"""Sessions per supported Python: ``nox`` (all of them) or ``nox -s compat-3.12``.

The README's test command runs the whole suite on the interpreter at hand;
these sessions run the core and the shells on the other supported versions,
each in a fresh virtual environment, so a syntax or typing feature newer than
3.10 cannot slip in.
"""

from __future__ import annotations

import nox

nox.options.error_on_missing_interpreters = True

#: The core and the shells: decisions, classification, every transport and hook.
CORE_AND_SHELLS = [
    "tests/test_engine.py",
    "tests/test_classify.py",
    "tests/test_retry_after.py",
    "tests/test_backoff.py",
    "tests/test_policy.py",
    "tests/test_pipeline.py",
    "tests/test_httpx_transport.py",
    "tests/test_async_transport.py",
    "tests/test_requests_adapter.py",
    "tests/test_hooks.py",
    "tests/test_drop_in.py",
    "tests/test_hedging.py",
]


@nox.session(python=["3.10", "3.12", "3.13"])
def compat(session: nox.Session) -> None:
    """The core and shell tests on another supported Python."""
    session.install(
        "-e",
        ".[httpx2]",
        "pytest",
        "pytest-timeout",
        "pytest-xdist",
        "pytest-asyncio",
        "hypothesis",
        "responses",
        "trio",
        "trustme",
    )
    session.run("python", "-m", "pytest", "-n", "2", "-q", *CORE_AND_SHELLS, *session.posargs)
