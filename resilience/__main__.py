"""``python -m resilience``: the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from resilience._version import __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m resilience",
        description="Resilient transports for game-server vendor APIs.",
    )
    parser.add_argument("--version", action="version", version=f"resilience {__version__}")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser(
        "demo",
        help="play a scripted day of a game backend against the embedded vendor simulator",
        description=(
            "Starts the embedded vendor simulator on 127.0.0.1 and drives scripted faults "
            "for Gameye, 8bitedge and Playwave through requests, httpx and httpx async, "
            "printing what each call went through and how it ended. Needs no network and "
            "no configuration; exits 1 if a call did not end as scripted."
        ),
    )
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.add_argument(
        "--metrics",
        action="store_true",
        help="also print the Prometheus metrics the calls produced (needs prometheus_client)",
    )
    from resilience._simulate import add_parser

    simulate = add_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from resilience._demo import run_demo

        status: int = run_demo(as_json=args.json, metrics=args.metrics)
        return status
    if args.command == "simulate":
        from resilience._simulate import run_simulate

        return run_simulate(simulate, args)
    from resilience.detectors import registered_detectors

    print(f"resilience {__version__}")
    print("detectors: " + ", ".join(d.name for d in registered_detectors()) + ", generic")
    return 0


if __name__ == "__main__":
    sys.exit(main())
