#!/usr/bin/env python
"""Full benchmark: Table (a), ring buffer vs recomputing the window.

    python benchmarks/ring_buffer.py          # full settings -> benchmarks/results/ring_buffer.{md,json,png}
    python benchmarks/ring_buffer.py --quick  # the settings of `edgepose bench`

The measuring code is edgepose/bench/ring.py (shared with `edgepose bench`); see its docstring.
"""

import sys

from edgepose.bench.tables import script_main

if __name__ == "__main__":
    sys.exit(script_main("ring", sys.argv[1:]))
