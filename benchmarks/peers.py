"""Side-by-side peer benchmark (issue 6): ``python benchmarks/peers.py [--quick] ...``.
The code lives in :mod:`grokescape.bench` (installed); see its docstring."""

import sys

from grokescape.bench import main

if __name__ == "__main__":
    sys.exit(main())
