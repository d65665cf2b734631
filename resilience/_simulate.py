"""``python -m resilience simulate``: a misbehaving vendor for staging.

Serves the embedded vendor simulator (:class:`~resilience.testing.VendorSimulator`)
with a random fault mix (:class:`~resilience.testing.FaultMix`) chosen by flags
or a JSON scenario file, prints one line per request served, and on SIGINT or
SIGTERM stops (closing open connections), prints a summary and exits 0.

The stdlib and :mod:`resilience.testing` are imported only when the command
runs, so that ``python -m resilience`` starts fast.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from resilience.testing import FaultMix, Served

__all__ = ["add_parser", "run_simulate"]

_DEFAULT_HOST = "127.0.0.1"

# Keys of the scenario file: the long flags without their dashes (``-`` or
# ``_`` inside a name, as one likes), each with the attribute it sets.
_KEYS: Mapping[str, str] = {
    "host": "host",
    "port": "port",
    "5xx": "server_error",
    "5xx_status": "server_error_status",
    "429": "rate_limited",
    "retry_after": "retry_after",
    "420": "capacity",
    "slow": "slow",
    "slow_seconds": "slow_seconds",
    "tail": "tail",
    "tail_seconds": "tail_seconds",
    "seed": "seed",
    "quiet": "quiet",
}
_FLAGS: Mapping[str, str] = {attr: "--" + key.replace("_", "-") for key, attr in _KEYS.items()}
_MIX_FIELDS = (
    "server_error",
    "server_error_status",
    "rate_limited",
    "retry_after",
    "slow",
    "slow_seconds",
    "capacity",
    "tail",
    "tail_seconds",
)


class _UsageError(Exception):
    """A value given on the command line or in the scenario file is wrong."""


# --- values, each checked where it is read (a flag or a key of the file) ----------------


def _share(value: object, what: str) -> float:
    from resilience.testing._faults import check_share

    try:
        return check_share(value, what)
    except (TypeError, ValueError) as exc:
        raise _UsageError(str(exc)) from None


def _seconds(value: object, what: str, *, none: bool = False) -> float | None:
    from resilience.testing._faults import check_seconds

    if none and value is None:
        return None
    try:
        return check_seconds(value, what)
    except (TypeError, ValueError) as exc:
        raise _UsageError(str(exc)) from None


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _UsageError(f"{what} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise _UsageError(f"{what} must be between {low} and {high}, got {value}")
    return value


def _region_share(region: object, share: object, what: str) -> tuple[str, float]:
    from resilience.testing._faults import check_region

    try:
        name = check_region(region, what)
    except (TypeError, ValueError) as exc:
        raise _UsageError(str(exc)) from None
    return name, _share(share, f"{what} {name}")


def _check(attr: str, value: object, what: str) -> object:
    """Check the value of one setting, named ``what`` in errors."""
    if attr in ("server_error", "rate_limited", "slow", "tail"):
        return _share(value, what)
    if attr == "server_error_status":
        return _int(value, what, 500, 599)
    if attr == "port":
        return _int(value, what, 0, 65535)
    if attr == "seed":
        return _int(value, what, -(2**63), 2**63 - 1)
    if attr == "retry_after":
        return _seconds(value, what, none=True)
    if attr in ("slow_seconds", "tail_seconds"):
        return _seconds(value, what)
    if attr == "host":
        if not isinstance(value, str) or not value.strip():
            raise _UsageError(f"{what} must be a non-empty string")
        return value.strip()
    if attr == "quiet":
        if not isinstance(value, bool):
            raise _UsageError(f"{what} must be true or false")
        return value
    if attr == "capacity":
        if not isinstance(value, Mapping):
            raise _UsageError(f'{what} must map regions to shares, like {{"eu-west": 0.5}}')
        return dict(_region_share(region, share, what) for region, share in value.items())
    raise AssertionError(attr)  # pragma: no cover - _KEYS lists every attribute


def _flag_type(attr: str, parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type=``: parse the text, then check it; errors name the flag."""

    def convert(text: str) -> object:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return _check(attr, value, "the value")
        except _UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _seconds_or_none(text: str) -> float | None:
    return None if text.strip().lower() == "none" else float(text)


def _region_flag(text: str) -> tuple[str, float]:
    region, sep, share = text.rpartition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected REGION=SHARE, got {text!r}")
    try:
        number = float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {share!r} in {text!r}") from None
    try:
        return _region_share(region, number, "the value")
    except _UsageError as exc:
        raise argparse.ArgumentTypeError(f"{exc} ({text!r})") from None


# --- the parser ---------------------------------------------------------------------------

_EPILOG = "{routes}"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Writes the routes and the scenario format after the options.

    The routes come from :mod:`resilience.testing`, imported only when the
    help is shown.
    """

    def add_text(self, text: str | None) -> None:
        """Add a paragraph; the epilog becomes the routes and the scenario format.

        Args:
            text: The paragraph.
        """
        if text == _EPILOG:
            from resilience.testing._routes import routes_text

            text = (
                "routes (anything else answers 404 in the vendor's envelope):\n"
                + routes_text()
                + "\n\nscenario file: a JSON object with the flags' names as keys, e.g.\n"
                '  {"5xx": 0.1, "5xx_status": 502, "429": 0.05, "retry_after": 1.5,\n'
                '   "420": {"eu-west": 0.5}, "slow": 0.02, "slow_seconds": 2, "tail": 0.02,\n'
                '   "tail_seconds": 0.2, "seed": 7}\n'
                "flags given on the command line override it (--420 region by region)."
            )
        super().add_text(text)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` command to the subparsers of ``python -m resilience``.

    Args:
        commands: What ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The command's parser.
    """
    parser: argparse.ArgumentParser = commands.add_parser(
        "simulate",
        help="serve the embedded vendor simulator with a fault mix, for staging",
        description=(
            "Serves the embedded vendor simulator (Gameye, 8bitedge, Playwave) over\n"
            "HTTP/1.1 and answers a random share of the requests to vendor routes with\n"
            "faults: 5xx in the vendor's envelope, 429 with Retry-After, Gameye's 420 for\n"
            "chosen regions, slow answers, a heavy tail of late answers. Prints the URL\n"
            "first, then one line per request; Ctrl-C (or SIGTERM) stops it, prints a\n"
            "summary and exits 0.\n\n"
            "A share is a number from 0 to 1. The shares one request can meet (5xx, 429,\n"
            "slow, tail and the largest 420 share) add up to at most 1."
        ),
        epilog=_EPILOG,
        formatter_class=_HelpFormatter,
        # A flag not given sets nothing, so that the scenario file's value stands
        # (and ``--retry-after none`` can still set None).
        argument_default=argparse.SUPPRESS,
    )
    where = parser.add_argument_group("where to listen")
    where.add_argument(
        "--host",
        type=_flag_type("host", str),
        help="address to listen on (default 127.0.0.1; another address is reachable "
        "from other machines and gets a warning: the simulator has no authentication)",
    )
    where.add_argument(
        "--port",
        type=_flag_type("port", int),
        metavar="N",
        help="TCP port (default 0: a free port, printed on the first line)",
    )
    where.add_argument(
        "--scenario",
        metavar="FILE",
        help="JSON file with the settings below (and host, port, seed, quiet)",
    )
    faults = parser.add_argument_group("fault mix (shares of requests to vendor routes)")
    faults.add_argument(
        "--5xx",
        dest="server_error",
        type=_flag_type("server_error", float),
        metavar="SHARE",
        help="share answered with a server error in the vendor's envelope (default 0)",
    )
    faults.add_argument(
        "--5xx-status",
        dest="server_error_status",
        type=_flag_type("server_error_status", int),
        metavar="STATUS",
        help="status of those errors, 500-599 (default 503)",
    )
    faults.add_argument(
        "--429",
        dest="rate_limited",
        type=_flag_type("rate_limited", float),
        metavar="SHARE",
        help="share answered with 429 Too Many Requests (default 0)",
    )
    faults.add_argument(
        "--retry-after",
        type=_flag_type("retry_after", _seconds_or_none),
        metavar="SECONDS",
        help="Retry-After of the 429s, or 'none' to send none (default 1)",
    )
    faults.add_argument(
        "--420",
        dest="capacity",
        action="append",
        type=_region_flag,
        metavar="REGION=SHARE",
        help="share of Gameye requests for REGION (the JSON 'location', else the "
        "X-Region header, else ?region=) answered with 420 no capacity; repeat per region",
    )
    faults.add_argument(
        "--slow",
        type=_flag_type("slow", float),
        metavar="SHARE",
        help="share answered normally but only after --slow-seconds (default 0)",
    )
    faults.add_argument(
        "--slow-seconds",
        type=_flag_type("slow_seconds", float),
        metavar="SECONDS",
        help="the wait of slow answers (default 2)",
    )
    faults.add_argument(
        "--tail",
        type=_flag_type("tail", float),
        metavar="SHARE",
        help="share answered normally after a heavy-tailed wait: at least --tail-seconds, "
        "k times that with probability 1/k^2, at most 10 times that (default 0)",
    )
    faults.add_argument(
        "--tail-seconds",
        type=_flag_type("tail_seconds", float),
        metavar="SECONDS",
        help="the least wait of tail answers (default 0.2)",
    )
    output = parser.add_argument_group("draws and output")
    output.add_argument(
        "--seed",
        type=_flag_type("seed", int),
        metavar="N",
        help="seed of the draws: requests sent one after another meet the same faults "
        "(default: a random seed, printed)",
    )
    output.add_argument(
        "--quiet",
        action="store_true",
        help="print no line per request (the URL and the summary still)",
    )
    return parser


# --- settings: the scenario file, then the flags ------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What the command serves, from the file and the flags."""

    host: str
    port: int
    mix: FaultMix
    seed: int
    quiet: bool


def _read_scenario(path: str) -> dict[str, object]:
    what = f"--scenario {path}"
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as exc:
        raise _UsageError(f"{what}: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise _UsageError(f"{what}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _UsageError(f"{what}: must hold a JSON object, not {type(data).__name__}")
    values: dict[str, object] = {}
    for key, value in data.items():
        attr = _KEYS.get(key.replace("-", "_"))
        if attr is None:
            known = ", ".join(f'"{k}"' for k in _KEYS)
            raise _UsageError(f'{what}: unknown key "{key}"; the keys are {known}')
        values[attr] = _check(attr, value, f'{what}: "{key}"')
    return values


def settings(args: argparse.Namespace) -> Settings:
    """Merge the scenario file and the flags (which win) into checked settings.

    Args:
        args: The parsed command line.

    Returns:
        The settings.

    Raises:
        _UsageError: A value is wrong; the message names the flag or the key.
    """
    import random

    from resilience.testing import FaultMix
    from resilience.testing._faults import check_total

    values: dict[str, Any] = {}
    scenario = getattr(args, "scenario", None)
    if scenario is not None:
        values.update(_read_scenario(scenario))
    for attr in _FLAGS:
        if not hasattr(args, attr):
            continue
        given = getattr(args, attr)
        if attr == "capacity":
            file_capacity = values.get("capacity")
            merged = dict(file_capacity) if isinstance(file_capacity, dict) else {}
            merged.update(given)
            values["capacity"] = merged
        else:
            values[attr] = given
    # The sum is checked here to name the settings as the flags and keys do.
    parts: list[tuple[str, float]] = [
        ("5xx", values.get("server_error", 0.0)),
        ("429", values.get("rate_limited", 0.0)),
        ("slow", values.get("slow", 0.0)),
        ("tail", values.get("tail", 0.0)),
    ]
    capacity: dict[str, float] = values.get("capacity", {})
    if capacity:
        region, share = max(capacity.items(), key=lambda item: item[1])
        parts.append((f"420 {region}", share))
    try:
        check_total(parts)
        mix = FaultMix(**{attr: values[attr] for attr in _MIX_FIELDS if attr in values})
    except (TypeError, ValueError) as exc:
        raise _UsageError(str(exc)) from None
    seed = values.get("seed")
    return Settings(
        host=values.get("host", _DEFAULT_HOST),
        port=values.get("port", 0),
        mix=mix,
        seed=random.SystemRandom().randrange(2**32) if seed is None else seed,
        quiet=bool(values.get("quiet", False)),
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- serving ------------------------------------------------------------------------------


class _Log:
    """Prints one line per request served and counts them, from any thread."""

    def __init__(self, out: TextIO, *, quiet: bool) -> None:
        self._out = out
        self._quiet = quiet
        self._lock = threading.Lock()
        self._open = True
        self.statuses: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def print(self, line: str) -> None:
        """Print a line now; a closed output (``| head``) silences the rest."""
        try:
            print(line, file=self._out, flush=True)
        except (OSError, ValueError):
            self._quiet = True

    def banner(self, *lines: str) -> None:
        """Print ``lines`` together: no request's line comes between them
        (a client may send as soon as it reads the first)."""
        with self._lock:
            self.print("\n".join(lines))

    def served(self, served: Served) -> None:
        """Count one request and print its line.

        Args:
            served: What the simulator answered.
        """
        status = "closed" if served.status is None else str(served.status)
        fault = served.fault if served.source == "mix" and served.fault else served.source
        with self._lock:
            if not self._open:
                return
            self.statuses[status] += 1
            self.faults[fault] += 1
            if self._quiet:
                return
            clock = time.strftime("%H:%M:%S", time.localtime(served.at))
            millis = int(served.at * 1000) % 1000
            self.print(
                f"{clock}.{millis:03d} {served.method} {served.path} {status} {fault}"
                f" {served.seconds:.3f}s"
            )

    def close(self) -> tuple[Counter[str], Counter[str]]:
        """Stop counting and printing; return the counts by status and by fault."""
        with self._lock:
            self._open = False
            return Counter(self.statuses), Counter(self.faults)


def _summary(elapsed: float, statuses: Counter[str], faults: Counter[str]) -> list[str]:
    from resilience.testing._faults import FAULTS

    total = sum(statuses.values())
    by_status = ", ".join(f"{s} x {statuses[s]}" for s in sorted(statuses)) or "-"
    order: dict[str, int] = {name: index for index, name in enumerate(FAULTS)}
    by_fault = (
        ", ".join(f"{f} x {faults[f]}" for f in sorted(faults, key=lambda f: (order.get(f, 99), f)))
        or "-"
    )
    return [
        f"stopped after {elapsed:.1f} s: {total} request{'s' if total != 1 else ''} served",
        f"  by status: {by_status}",
        f"  by fault: {by_fault}",
    ]


def serve(config: Settings, out: TextIO, err: TextIO) -> int:
    """Serve until SIGINT or SIGTERM; print the summary.

    Args:
        config: What to serve.
        out: Where the URL, the request lines and the summary go.
        err: Where warnings and errors go.

    Returns:
        The exit status: 0, or 1 when the address cannot be bound.
    """
    from resilience.testing import VendorSimulator

    if not _is_loopback(config.host):
        print(
            f"warning: --host {config.host} is not a loopback address: anyone who can reach "
            "it can use the simulator, which has no authentication",
            file=err,
            flush=True,
        )
    log = _Log(out, quiet=config.quiet)
    sim = VendorSimulator(record=False, host=config.host, port=config.port, on_served=log.served)
    sim.serve_faults(config.mix, seed=config.seed)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    # Handlers first: a signal sent as soon as the URL is printed must stop us cleanly.
    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        try:
            sim.start()
        except OSError as exc:
            print(
                f"error: cannot listen on {config.host} port {config.port}: {exc.strerror or exc}",
                file=err,
                flush=True,
            )
            return 1
        started = time.monotonic()
        try:
            bases = ", ".join(f"{v}: {sim.base(v)}" for v in ("gameye", "8bitedge", "playwave"))
            log.banner(
                f"vendor simulator on {sim.url} ({bases})",
                f"faults: {config.mix.describe()}; seed {config.seed}; "
                "Ctrl-C stops and prints a summary",
            )
            stop.wait()
        finally:
            sim.stop()
        statuses, faults = log.close()
        for line in _summary(time.monotonic() - started, statuses, faults):
            log.print(line)
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_simulate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run ``python -m resilience simulate``; a wrong value exits 2 through ``parser``.

    Args:
        parser: The command's parser (for usage errors).
        args: The parsed command line.

    Returns:
        The exit status.
    """
    try:
        config = settings(args)
    except _UsageError as exc:
        parser.error(str(exc))
    return serve(config, sys.stdout, sys.stderr)
