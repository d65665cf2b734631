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
    parser.parse_args(argv)
    from resilience.detectors import registered_detectors

    print(f"resilience {__version__}")
    print("detectors: " + ", ".join(d.name for d in registered_detectors()) + ", generic")
    return 0


if __name__ == "__main__":
    sys.exit(main())
