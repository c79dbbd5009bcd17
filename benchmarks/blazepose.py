#!/usr/bin/env python
"""Full benchmark: Table (d), BlazePose (MediaPipe) as a peer on the same crops.

    python benchmarks/blazepose.py            # full settings -> benchmarks/results/blazepose.{md,json,png}
    python benchmarks/blazepose.py --quick    # the settings of `edgepose bench`

The measuring code is edgepose/bench/blazepose.py (shared with `edgepose bench`); see its docstring.
"""

import sys

from edgepose.bench.tables import script_main

if __name__ == "__main__":
    sys.exit(script_main("blazepose", sys.argv[1:]))
