"""Shared fixtures: seeded RNG, the real data folder, and the JIT switch.

Kernel tests take the ``kernel_mode`` fixture so that each runs twice: once
through the compiled Numba kernels and once through their NumPy twins (the
path used where numba cannot be imported or AFFECTEDGE_DISABLE_JIT=1).
"""

from pathlib import Path

import numpy as np
import pytest

from affectedge.native_kernels import _config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

MODES = ["jit", "numpy"] if _config.JIT_ENABLED else ["numpy"]


@pytest.fixture(params=MODES)
def kernel_mode(request):
    previous = _config.set_jit(request.param == "jit")
    try:
        yield request.param
    finally:
        _config.STATE.jit = previous


@pytest.fixture
def rng():
    return np.random.default_rng(20261126)


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is not present (it sits beside the repository in CI)")
    return SHARED_DATA
