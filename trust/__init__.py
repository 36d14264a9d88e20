"""`make trust`: fault and load scenarios against the running stack, with figures (docs/TRUST.md).

The benches' helpers (bench/events_bench.py, intake_bench.py, routing_bench.py) are imported as top-level
modules, as the benches import each other: bench/ goes on sys.path here.
"""

import sys
from pathlib import Path

_BENCH = str(Path(__file__).resolve().parent.parent / "bench")
if _BENCH not in sys.path:
    sys.path.insert(0, _BENCH)
