"""One place for every Numba setting the kernels use.

* ``JIT_ENABLED`` is False when numba cannot be imported (32-bit Raspberry Pi
  OS has no llvmlite wheels) or when ``AFFECTEDGE_DISABLE_JIT=1`` is set; the
  public wrappers then call each kernel's NumPy twin, with the same results.
* Compiled kernels are cached in ``AFFECTEDGE_CACHE_DIR`` (default: the user's
  cache dir, ``~/.cache/affectedge/numba`` on Linux). When that directory is
  not writable (read-only installs), kernels compile in memory only and one
  warning says so.
* fastmath is on without ``nnan``/``ninf``: sensor dropouts arrive as NaN and
  must not be optimised away.
"""

import os
import tempfile
import warnings
from pathlib import Path

__all__ = [
    "CACHE",
    "CACHE_DIR",
    "FASTMATH",
    "HAVE_NUMBA_FFT",
    "JIT_ENABLED",
    "JIT_DISABLED_REASON",
    "njit",
]

# Everything fastmath allows except the NaN/inf assumptions.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "affectedge" / "numba"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe"):
            pass
        return True
    except OSError:
        return False


CACHE_DIR = Path(os.environ.get("AFFECTEDGE_CACHE_DIR") or _default_cache_dir())
CACHE = _writable(CACHE_DIR)
if not CACHE:
    warnings.warn(
        f"affectedge: the kernel cache directory {str(CACHE_DIR)!r} is not writable; "
        "kernels will compile in memory on every start. Set AFFECTEDGE_CACHE_DIR "
        "to a writable directory to keep compiled kernels between runs.",
        RuntimeWarning,
        stacklevel=2,
    )

JIT_DISABLED_REASON = ""
if os.environ.get("AFFECTEDGE_DISABLE_JIT", "").strip() not in ("", "0", "false", "False"):
    JIT_DISABLED_REASON = "AFFECTEDGE_DISABLE_JIT is set"
    numba = None
else:
    try:
        import numba
    except ImportError as exc:  # e.g. no llvmlite wheel for this platform
        numba = None
        JIT_DISABLED_REASON = f"numba cannot be imported ({exc})"

JIT_ENABLED = numba is not None

HAVE_NUMBA_FFT = False
if JIT_ENABLED:
    if CACHE:
        # Numba reads config.CACHE_DIR when a cached function is created, so
        # this works even if numba was imported before affectedge. (Setting
        # the NUMBA_CACHE_DIR variable instead would leak into subprocesses.)
        numba.config.CACHE_DIR = str(CACHE_DIR)
    try:  # registers np.fft inside @njit (pocketfft); optional
        import rocket_fft  # noqa: F401

        HAVE_NUMBA_FFT = True
    except ImportError:
        HAVE_NUMBA_FFT = False


def njit(func=None, **overrides):
    """``numba.njit`` with the project's flags; the identity when JIT is off.

    With JIT off the decorated function is never called by the public API
    (wrappers dispatch to the NumPy twins), but it stays importable.
    """

    def wrap(f):
        if not JIT_ENABLED:
            return f
        options = {"cache": CACHE, "fastmath": set(FASTMATH), "nogil": True, "error_model": "numpy"}
        options.update(overrides)
        return numba.njit(**options)(f)

    return wrap(func) if func is not None else wrap


class _State:
    """Runtime switch read by the wrappers on every call (tests flip it)."""

    jit = JIT_ENABLED


STATE = _State()


def use_jit() -> bool:
    """True when the wrappers should call the compiled kernels."""
    return STATE.jit


def set_jit(enabled: bool) -> bool:
    """Turn compiled kernels on or off at run time; returns the previous value.

    Turning them on when numba is unavailable is refused.
    """
    from affectedge.errors import ParameterError

    if enabled and not JIT_ENABLED:
        raise ParameterError(f"cannot enable the JIT: {JIT_DISABLED_REASON}")
    previous = STATE.jit
    STATE.jit = bool(enabled)
    return previous
