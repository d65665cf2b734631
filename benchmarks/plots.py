"""``python -m benchmarks.plots``: the charts of a run (see :mod:`benchmarks._plots`)."""

import sys

from benchmarks._plots import main

if __name__ == "__main__":
    sys.exit(main())
