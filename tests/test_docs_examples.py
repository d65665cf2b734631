"""Every Python example of the documentation runs as shown.

Each ```python block of ``docs/*.md`` (but the contract, which shows
signatures) runs in a fresh interpreter against this
checkout; a block that defines ``test_`` functions runs under pytest instead. A
block right after an ``<!-- not run -->`` line is only shown (it needs a
service the tests do not start, such as a proxy). A block that reads the
``REDIS_URL`` environment variable, as a user's code would, gets the URL of a
``redis-server`` the test starts, and must have used it.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._redis import running_redis

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python\n(?P<code>.*?)^```$", re.DOTALL | re.MULTILINE)
NEEDS = re.compile(r"^(?:import|from) (respx|pytest_httpx|httpx2|openai)\b", re.MULTILINE)
NEEDS_REDIS = re.compile(r"\bREDIS_URL\b")


def _examples() -> list[tuple[str, int, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        if page.name == "contract.md":
            continue
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip().splitlines()
            if before and before[-1].strip() == "<!-- not run -->":
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append((page.name, line, match["code"]))
    return found


EXAMPLES = _examples()


@pytest.mark.parametrize(
    ("page", "line", "code"),
    EXAMPLES,
    ids=[f"{page}:{line}" for page, line, _ in EXAMPLES],
)
def test_the_example_runs(page: str, line: int, code: str, tmp_path: Path) -> None:
    for module in NEEDS.findall(code):
        pytest.importorskip(module)
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}  # this checkout, not an installed copy
    if re.search(r"^def test_|^async def test_", code, re.MULTILINE):
        script = tmp_path / "test_example.py"
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    else:
        script = tmp_path / "example.py"
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, str(script)]
    with contextlib.ExitStack() as stack:
        redis_url = None
        if NEEDS_REDIS.search(code):
            redis_url = stack.enter_context(running_redis()).url
            env["REDIS_URL"] = redis_url
            before = _commands_served(redis_url)
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{page}:{line}\n{done.stdout}\n{done.stderr}"
        if redis_url is not None:  # a store that cannot reach Redis falls back quietly
            assert _commands_served(redis_url) > before + 1, f"{page}:{line} did not use Redis"


def _commands_served(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def test_the_pages_hold_examples() -> None:
    assert {page for page, _, _ in EXAMPLES} >= {"getting-started.md", "recipes.md"}
