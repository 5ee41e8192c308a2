"""Input checks shared by the public kernel wrappers.

Each check raises :class:`affectedge.ParameterError` naming the argument, the
expectation, what came, and what to do. No ``assert`` on user input.
"""

import math
import numbers

import numpy as np

from affectedge.errors import ParameterError

__all__ = [
    "NAN_POLICIES",
    "check_choice",
    "check_positive_int",
    "check_rate",
    "check_real",
    "float_dtype",
    "finite_stream_chunk",
    "mono_float_chunk",
    "prepare_signal",
]

NAN_POLICIES = ("raise", "zero", "interpolate")


def check_rate(value, name="sr"):
    """A sample rate: finite and > 0. Returns it as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name}={value!r} must be a positive number of samples per second (Hz)")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ParameterError(
            f"{name}={value!r} must be strictly positive and finite (samples per second, e.g. 16000)"
        )
    return value


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name}={value!r} must be an integer >= {minimum}")
    if value < minimum:
        raise ParameterError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def check_real(value, name, *, minimum=None, maximum=None, strict_min=False, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ParameterError(f"{name}={value!r} must be a finite number")
    value = float(value)
    if minimum is not None and (value < minimum or (strict_min and value == minimum)):
        op = ">" if strict_min else ">="
        raise ParameterError(f"{name}={value!r} must be {op} {minimum}")
    if maximum is not None and value > maximum:
        raise ParameterError(f"{name}={value!r} must be <= {maximum}")
    return value


def check_choice(value, name, choices):
    if value not in choices:
        raise ParameterError(f"{name}={value!r} is not supported; choose one of {', '.join(map(repr, choices))}")
    return value


def float_dtype(x, name, *, audio=True):
    """float32 stays float32, float64 stays float64; anything else is refused."""
    dt = np.asarray(x).dtype
    if dt == np.float32 or dt == np.float64:
        return dt.type
    if np.issubdtype(dt, np.integer):
        if not audio:
            hint = f" Convert it first with {name}.astype(np.float64) (in the sensor's unit, e.g. microvolts)."
        elif dt == np.int16:
            hint = f" Convert it first, e.g. {name}.astype(np.float32) / 32768 for 16-bit PCM."
        else:
            hint = f" Convert it first with {name}.astype(np.float32) (scaled to [-1, 1] for audio)."
        raise ParameterError(f"{name} has dtype {dt}, but float32 or float64 is required.{hint}")
    raise ParameterError(f"{name} has dtype {dt}, but a real float32 or float64 array is required")


def _fix_nonfinite(x, name, nan_policy, axis_label):
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    count = int(bad.sum())
    if nan_policy == "raise":
        first = np.unravel_index(int(np.argmax(bad)), x.shape)
        where = first[0] if x.ndim == 1 else tuple(int(i) for i in first)
        value = x[first]
        raise ParameterError(
            f"{name} contains {value} at {axis_label} {where} ({count} non-finite value"
            f"{'s' if count > 1 else ''} in all); clean the signal, or pass nan_policy='zero' "
            "to replace them with 0 or nan_policy='interpolate' to interpolate linearly"
        )
    x = np.array(x, copy=True)
    if nan_policy == "zero":
        x[bad] = 0
        return x
    # interpolate: per row, linear between the nearest finite neighbours
    rows = x.reshape(-1, x.shape[-1])
    bad_rows = bad.reshape(-1, x.shape[-1])
    idx = np.arange(x.shape[-1])
    for r in range(rows.shape[0]):
        b = bad_rows[r]
        if not b.any():
            continue
        if b.all():
            raise ParameterError(
                f"{name} has no finite value to interpolate from (row {r} is entirely NaN/inf); "
                "use nan_policy='zero' or drop that channel"
            )
        rows[r, b] = np.interp(idx[b], idx[~b], rows[r, ~b])
    return x


def prepare_signal(
    y,
    name="y",
    *,
    ndim=1,
    min_length=1,
    nan_policy="raise",
    what="mono audio",
    length_hint="",
):
    """Validate a signal and return it C-contiguous in its own float dtype.

    ``ndim=1`` expects mono audio (samples,); ``ndim=2`` expects
    (channels, samples).
    """
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    if not isinstance(y, np.ndarray):
        try:
            y = np.asarray(y)
        except Exception as exc:  # ragged lists and the like
            raise ParameterError(f"{name} must be a NumPy array of {what}; could not convert it ({exc})") from exc
    if y.ndim != ndim:
        if ndim == 1 and y.ndim == 2 and min(y.shape) <= 8:
            raise ParameterError(
                f"{name} has shape {y.shape}: it is 2-dimensional (multi-channel) but {what} "
                f"(1-dimensional) is required. Mix down first, e.g. {name}.mean(axis=0) for "
                f"(channels, samples) or {name}.mean(axis=1) for (samples, channels)"
            )
        shape = "(samples,)" if ndim == 1 else "(channels, samples)"
        raise ParameterError(
            f"{name} is {y.ndim}-dimensional with shape {y.shape}, but {what} must be "
            f"{ndim}-dimensional {shape}"
        )
    dtype = float_dtype(y, name, audio="audio" in what)
    if y.size == 0:
        raise ParameterError(f"{name} is empty (shape {y.shape}); {what} with at least {min_length} samples is required")
    n = y.shape[-1]
    if n < min_length:
        raise ParameterError(
            f"{name} has {n} samples, shorter than one frame ({min_length} samples){length_hint}; "
            "pass a longer signal or a smaller frame"
        )
    y = _fix_nonfinite(y, name, nan_policy, "index" if ndim == 1 else "(channel, sample)")
    return np.ascontiguousarray(y, dtype=dtype)


def mono_float_chunk(chunk, dtype):
    """A streaming push's chunk as 1-D audio of the stream's dtype (ParameterError for other shapes/dtypes)."""
    if type(chunk) is not np.ndarray or chunk.ndim != 1 or chunk.dtype != dtype:
        chunk = np.asarray(chunk)
        if chunk.ndim != 1:
            raise ParameterError(
                f"chunk has shape {chunk.shape}; mono audio (1-dimensional) is required. "
                "Mix down multi-channel audio first, e.g. chunk.mean(axis=1)"
            )
        if chunk.dtype not in (np.float32, np.float64):
            raise ParameterError(
                f"chunk has dtype {chunk.dtype}; float audio in [-1, 1] is required "
                "(e.g. pcm.astype(np.float32) / 32768 for 16-bit PCM)"
            )
        chunk = chunk.astype(dtype)
    return chunk


def finite_stream_chunk(chunk, dtype, samples_seen):
    """:func:`mono_float_chunk`, refusing the whole chunk (nothing consumed) when it holds NaN/inf."""
    chunk = mono_float_chunk(chunk, dtype)
    if not np.isfinite(chunk).all():
        bad = int(np.argmax(~np.isfinite(chunk)))
        raise ParameterError(
            f"chunk contains {chunk[bad]} at index {bad} (stream sample {samples_seen + bad}); nothing "
            "from this chunk was consumed. Clean the audio (e.g. np.nan_to_num) before pushing"
        )
    return chunk
