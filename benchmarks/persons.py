#!/usr/bin/env python
"""Full benchmark: Table (b), latency against persons per frame (PAVE-Net Table 2 layout).

    python benchmarks/persons.py            # full settings -> benchmarks/results/persons.{md,json,png}
    python benchmarks/persons.py --quick    # the settings of `edgepose bench`

The measuring code is edgepose/bench/persons.py (shared with `edgepose bench`); see its docstring.
"""

import sys

from edgepose.bench.tables import script_main

if __name__ == "__main__":
    sys.exit(script_main("persons", sys.argv[1:]))
