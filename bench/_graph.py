"""Benchmark of graph.chebyshev_filter against a dense NumPy einsum reference.

Shape: batch 64, 32 nodes (deap32), 5 features in (e.g. DE per band),
16 out, K = 3, float32 -- one DGCNN graph layer. Single thread: BLAS pools
are limited to 1 with threadpoolctl (the Numba kernel is serial).

``run(repeats)`` returns one dict per variant: ``name``, ``us`` (median
microseconds per call over ``repeats`` timed calls, after a warm-up call)
and ``ratio_vs_numpy`` (``us / us_of_numpy_reference``: below 1 is faster
than NumPy). Nothing is printed at import.
"""

import numpy as np

from _timing import median_s

BATCH, NODES, F_IN, F_OUT, K = 64, 32, 5, 16, 3


def _numpy_reference(x, lap, weights):
    """Dense T_k(L~) matrices, then one einsum (what a NumPy user would write)."""
    n = lap.shape[0]
    terms = [np.eye(n, dtype=lap.dtype), lap]
    for _ in range(2, weights.shape[0]):
        terms.append(2 * lap @ terms[-1] - terms[-2])
    t = np.stack(terms[: weights.shape[0]])
    return np.einsum("kij,bjf,kfo->bio", t, x, weights, optimize=True)


def _median_us(fn, repeats):
    return median_s(fn, repeats) * 1e6


def run(repeats: int) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from affectedge.native_kernels import _config
    from affectedge.native_kernels.graph import (
        chebyshev_filter,
        distance_adjacency,
        montage_positions,
        scaled_laplacian,
    )

    rng = np.random.default_rng(0)
    lap = scaled_laplacian(distance_adjacency(montage_positions("deap32"))).astype(np.float32)
    x = rng.standard_normal((BATCH, NODES, F_IN)).astype(np.float32)
    w = rng.standard_normal((K, F_IN, F_OUT)).astype(np.float32)

    rows = []
    with threadpool_limits(limits=1):
        ref_us = _median_us(lambda: _numpy_reference(x, lap, w), repeats)
        variants = []
        if _config.JIT_ENABLED:
            variants.append(("chebyshev_filter[jit]", True))
        variants.append(("chebyshev_filter[numpy-twin]", False))
        previous = _config.STATE.jit
        try:
            for name, jit in variants:
                _config.STATE.jit = jit
                us = _median_us(lambda: chebyshev_filter(x, lap, w), repeats)
                rows.append({"name": name, "us": us, "ratio_vs_numpy": us / ref_us})
        finally:
            _config.STATE.jit = previous
    rows.append({"name": "numpy_einsum_reference", "us": ref_us, "ratio_vs_numpy": 1.0})
    return rows
