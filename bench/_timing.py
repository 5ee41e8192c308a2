"""The one timer every benchmark section uses."""

import time

import numpy as np


def median_s(fn, repeats, inner=1):
    """Median seconds per call over ``repeats`` timings of ``inner`` calls (after one warm call)."""
    fn()  # warm-up: JIT compile or cache load
    times = []
    for _ in range(max(1, int(repeats))):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return float(np.median(times))
