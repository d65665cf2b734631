"""The public API's types catch mistakes: ``tests/typing/`` under ``mypy --strict``.

``tests/typing/api.py`` uses the API as users write it and must pass;
``tests/typing/misuse.py`` holds mistakes, each under a ``# expect: <text>``
comment, and mypy must report each of them and nothing else. mypy runs once
over the folder per test session (once in all for the xdist workers).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "typing"
ROOT = HERE.parent.parent
EXPECT = re.compile(r"^\s*#\s*expect:\s*(?P<text>.+?)\s*$")
ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*)$")

Errors = dict[tuple[str, int], list[str]]


def _expectations() -> Iterator[tuple[str, int, str]]:
    """``(file name, line, text)`` for each ``# expect:`` comment, line of the code below it."""
    for path in sorted(HERE.glob("*.py")):
        pending: list[str] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = EXPECT.match(line)
            if found:
                pending.append(found["text"])
            elif line.strip() and not line.lstrip().startswith("#"):
                yield from ((path.name, number, text) for text in pending)
                pending = []


EXPECTED = list(_expectations())

# The first test of each worker waits for mypy's report (about 20 s on an idle
# machine, without a cache; minutes on a loaded one): the subprocess's own
# timeout, not the suite's default per-test one, bounds it.
pytestmark = pytest.mark.timeout(400)


def _run_mypy() -> str:
    env = {**os.environ, "MYPYPATH": str(ROOT)}  # this checkout, not an installed copy
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-pretty", "--no-error-summary", str(HERE)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode not in (0, 1):  # 2: mypy itself failed
        pytest.fail(f"mypy did not run:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """mypy's report, computed once and shared by the xdist workers of this run."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _run_mypy()
    shared = tmp_path_factory.getbasetemp().parent  # one per run, shared by its workers
    report = shared / "typing-mypy.txt"
    try:
        import fcntl
    except ImportError:  # no POSIX locks: each worker runs its own
        return _run_mypy()
    with (shared / "typing-mypy.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not report.exists():
            report.write_text(_run_mypy(), encoding="utf-8")
    return report.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> Errors:
    """Each error mypy reports under ``tests/typing/``, by ``(file name, line)``."""
    errors: Errors = {}
    for line in _mypy_output(tmp_path_factory).splitlines():
        found = ERROR.match(line)
        if found:
            key = (Path(found["file"]).name, int(found["line"]))
            errors.setdefault(key, []).append(found["message"])
    return errors


def test_the_public_api_as_users_write_it_type_checks(mypy_errors: Errors) -> None:
    reported = {key: messages for key, messages in mypy_errors.items() if key[0] == "api.py"}
    assert reported == {}


@pytest.mark.parametrize(
    ("file", "line", "text"),
    EXPECTED,
    ids=[f"{file}:{line}" for file, line, _ in EXPECTED],
)
def test_a_mistake_is_a_type_error(mypy_errors: Errors, file: str, line: int, text: str) -> None:
    messages = mypy_errors.get((file, line), [])
    assert any(text in message for message in messages), messages


def test_no_error_is_reported_where_none_is_expected(mypy_errors: Errors) -> None:
    expected = {(file, line) for file, line, _ in EXPECTED}
    unexpected = {key: m for key, m in mypy_errors.items() if key not in expected}
    assert unexpected == {}


def test_every_mistake_file_expects_errors() -> None:
    assert {file for file, _, _ in EXPECTED} == {
        path.name for path in HERE.glob("*.py") if path.name != "api.py"
    }
