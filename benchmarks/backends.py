#!/usr/bin/env python
"""Full benchmark: Table (c), runtimes x precisions on this CPU.

    python benchmarks/backends.py            # full settings -> benchmarks/results/backends.{md,json,png}
    python benchmarks/backends.py --quick    # the settings of `edgepose bench`

The measuring code is edgepose/bench/backends.py (shared with `edgepose bench`); see its docstring.
"""

import sys

from edgepose.bench.tables import script_main

if __name__ == "__main__":
    sys.exit(script_main("backends", sys.argv[1:]))
